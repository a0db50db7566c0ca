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

// Dovecot's other names for the same schemes ({MD5} is MD5-CRYPT there, not a digest).
const aliases: Record<string, string> = { CLEARTEXT: 'PLAIN', 'DES-CRYPT': 'CRYPT', SHA: 'SHA1', MD5: 'MD5-CRYPT', 'HMAC-MD5': 'CRAM-MD5' };

export function findScheme(name: string): Scheme | undefined {
  const upper = name.toUpperCase();
  return registry.get(aliases[upper] ?? upper);
}

export const schemeNames: readonly string[] = [...registry.keys()];
