// The shared secret (`http_secret`) on the HTTP listener, as Dovecot's auth policy client
// and the Lua door send it: `Authorization: Bearer <secret>`. The scheme name is
// case-insensitive (RFC 9110 §11.1); the token is compared in constant time.

import { secretEqual } from '../password/equal.js';
import type { HttpRequest } from './server.js';

/** True when `secret` is empty (no secret configured) or the request carries it. */
export function hasBearerSecret(req: HttpRequest, secret: string): boolean {
  if (secret === '') return true;
  const h = req.headers.authorization;
  const m = typeof h === 'string' ? /^Bearer\s+(.+)$/i.exec(h.trim()) : null;
  // The same comparison whether or not a token was sent at all.
  const given = m?.[1];
  return secretEqual(given ?? '', secret) && given !== undefined;
}
