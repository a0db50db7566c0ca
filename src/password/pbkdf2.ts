// Dovecot's PBKDF2: `$1$salt$rounds$hex`, PBKDF2-HMAC-SHA1 over the salt's characters,
// 20 bytes of output in lower-case hex.

import { pbkdf2Sync, randomBytes } from 'node:crypto';
import { secretEqual } from './equal.js';
import { BadHashError } from './scheme.js';
import type { Scheme } from './types.js';

const MAX_ROUNDS = 10_000_000;
const saltChars = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789./';

function randomSalt(length: number): string {
  let s = '';
  for (const b of randomBytes(length)) s += saltChars[b & 0x3f];
  return s;
}

export const pbkdf2Scheme: Scheme = {
  name: 'PBKDF2',
  verify(pw, s) {
    const m = /^\$1\$([^$]+)\$(\d{1,8})\$([0-9a-fA-F]+)$/.exec(s.data);
    if (!m) throw new BadHashError('PBKDF2', 'expected $1$salt$rounds$hex');
    const rounds = Number(m[2]);
    if (rounds < 1 || rounds > MAX_ROUNDS) throw new BadHashError('PBKDF2', 'rounds out of range');
    const want = Buffer.from(m[3]!, 'hex');
    if (want.length === 0 || want.length > 64) throw new BadHashError('PBKDF2', 'bad digest length');
    return secretEqual(pbkdf2Sync(pw, m[1]!, rounds, want.length, 'sha1'), want);
  },
  hash(pw) {
    const salt = randomSalt(16);
    const rounds = 5000;
    return `$1$${salt}$${rounds}$${pbkdf2Sync(pw, salt, rounds, 20, 'sha1').toString('hex')}`;
  },
};
