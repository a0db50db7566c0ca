// The crypt(3) family: CRYPT (whatever crypt understands, and bare `$6$…`/`$2y$…` strings),
// MD5-CRYPT, SHA256-CRYPT, SHA512-CRYPT and BLF-CRYPT, all verified by calling crypt with
// the stored string as the setting and comparing the result.

import { randomBytes } from 'node:crypto';
import { cryptBackend } from './native.js';
import { secretEqual } from './equal.js';
import { BadHashError } from './scheme.js';
import type { Scheme } from './types.js';

/** Cost of new bcrypt hashes: Laravel's default; Dovecot's own 5 is too cheap today. */
const BCRYPT_COST = 10;

function cryptScheme(name: string, prefix: string, cost: number): Scheme {
  return {
    name,
    verify(pw, s) {
      // crypt(3) takes a C string: a password with a NUL byte can never be the one stored.
      if (pw.includes(0)) return false;
      const out = cryptBackend.crypt(pw, s.data);
      if (out === null) {
        // crypt(3) also refuses the phrase, not only the setting: libxcrypt answers nothing
        // for a password of 512 bytes or more. A setting that takes the empty phrase is
        // sound, so the password is what was refused — a mismatch, never a broken account.
        if (cryptBackend.crypt(Buffer.alloc(0), s.data) !== null) return false;
        const why = cryptBackend.native ? 'crypt(3) rejected the stored setting' : 'this crypt variant needs the native crypt binding (not built)';
        throw new BadHashError(name, why);
      }
      return secretEqual(out, s.data);
    },
    hash(pw) {
      const setting = cryptBackend.gensalt(prefix, cost, randomBytes(16));
      const out = setting === null ? null : cryptBackend.crypt(pw, setting);
      if (out === null) throw new Error(`${name}: cannot create a hash (${cryptBackend.native ? 'crypt(3) refused' : 'native crypt binding not built'})`);
      return out;
    },
  };
}

export const cryptSchemes: Scheme[] = [
  // New {CRYPT} hashes are bcrypt, as Dovecot 2.3's doveadm pw makes them.
  cryptScheme('CRYPT', '$2y$', BCRYPT_COST),
  cryptScheme('MD5-CRYPT', '$1$', 0),
  cryptScheme('SHA256-CRYPT', '$5$', 0),
  cryptScheme('SHA512-CRYPT', '$6$', 0),
  cryptScheme('BLF-CRYPT', '$2y$', BCRYPT_COST),
];
