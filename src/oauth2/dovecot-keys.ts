// Dovecot 2.4 checks bearer tokens itself (`oauth2 { }` with local validation) and looks
// each signing key up in a dict as `shared/<azp>/<alg>/<kid>` (lib-oauth2/oauth2-jwt.c:
// `azp` is the token's client, "default" when it names none; `kid` is "default" when the
// token names none; `/` and `%` in both are written %2f and %25). The value is the public
// key in PEM. This answers those keys from the provider's JWKS that the daemon already
// holds, so Dovecot never needs the keys copied by hand — and a rotation at the provider
// reaches Dovecot as soon as the daemon has fetched it.

import { createPublicKey } from 'node:crypto';
import type { JWK } from 'jose';
import type { KeySource } from './keys.js';

const unescapeId = (s: string): string => s.replace(/%2f/gi, '/').replace(/%25/g, '%');

/** Whether a JWK can verify `alg` (Dovecot 2.4: RS*, PS*, ES*; it has no EdDSA). */
function fits(key: JWK, alg: string): boolean {
  if (key.use !== undefined && key.use !== 'sig') return false;
  if (key.alg !== undefined) return key.alg === alg;
  if (/^(RS|PS)(256|384|512)$/.test(alg)) return key.kty === 'RSA';
  const curve = { ES256: 'P-256', ES384: 'P-384', ES512: 'P-521' }[alg];
  return curve !== undefined && key.kty === 'EC' && key.crv === curve;
}

/** The PEM for a `shared/<azp>/<alg>/<kid>` dict key, or undefined (not one of ours, or unknown). */
export function dovecotKeyLookup(keys: KeySource): (dictKey: string) => string | undefined {
  return (dictKey) => {
    const m = /^shared\/[^/]+\/([A-Z0-9]+)\/([^/]+)$/.exec(dictKey);
    if (m === null) return undefined;
    const alg = m[1]!;
    const kid = unescapeId(m[2]!);
    const set = keys.current()?.keys ?? [];
    // "default": the token names no key; then only a provider with a single usable key is unambiguous.
    const usable = set.filter((k) => fits(k, alg));
    const key =
      kid === 'default' && !usable.some((k) => k.kid === 'default') ? (usable.length === 1 ? usable[0] : undefined) : usable.find((k) => k.kid === kid);
    if (key === undefined) {
      // A key the provider may just have added: fetched for the next try (at most every 10 s).
      void keys.refresh();
      return undefined;
    }
    try {
      return createPublicKey({ key: key as import('node:crypto').JsonWebKey, format: 'jwk' })
        .export({ type: 'spki', format: 'pem' })
        .toString();
    } catch {
      return undefined;
    }
  };
}
