// Every scheme mailmapd knows, by Dovecot name, with Dovecot's aliases.

import { argonSchemes } from './argon2.js';
import { cramMd5Scheme } from './cram-md5.js';
import { cryptSchemes } from './crypt.js';
import { digestSchemes } from './digest.js';
import { pbkdf2Scheme } from './pbkdf2.js';
import { scramSchemes } from './scram.js';
import type { Scheme } from './types.js';

const registry = new Map<string, Scheme>();
for (const s of [...digestSchemes, ...cryptSchemes, ...argonSchemes, pbkdf2Scheme, ...scramSchemes, cramMd5Scheme]) registry.set(s.name, s);

// Dovecot's {MD5} (md5_verify in its password-scheme.c): an MD5-CRYPT string when it starts
// with `$1$`, else a PLAIN-MD5 digest, hex or base64 — Modoboa 1.0's "md5" scheme stored
// `{MD5}` + the hex digest. New {MD5} hashes are MD5-CRYPT, as Dovecot makes them.
const md5Crypt = registry.get('MD5-CRYPT')!;
const plainMd5 = registry.get('PLAIN-MD5')!;
registry.set('MD5', {
  name: 'MD5',
  verify: (pw, s) => (s.data.startsWith('$1$') ? md5Crypt : plainMd5).verify(pw, s),
  hash: (pw, enc) => md5Crypt.hash(pw, enc),
});

// Dovecot's other names for the same schemes.
const aliases: Record<string, string> = { CLEARTEXT: 'PLAIN', 'DES-CRYPT': 'CRYPT', SHA: 'SHA1', 'HMAC-MD5': 'CRAM-MD5' };

export function findScheme(name: string): Scheme | undefined {
  const upper = name.toUpperCase();
  return registry.get(aliases[upper] ?? upper);
}

export const schemeNames: readonly string[] = [...registry.keys()];
