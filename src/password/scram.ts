// SCRAM-SHA-1 and SCRAM-SHA-256 as Dovecot stores them (RFC 5802/7677 verifiers):
// `iterations,salt_b64,StoredKey_b64,ServerKey_b64`. A plaintext password is checked by
// deriving StoredKey = H(HMAC(SaltedPassword, "Client Key")).

import { createHash, createHmac, pbkdf2Sync, randomBytes } from 'node:crypto';
import { secretEqual } from './equal.js';
import { BadHashError } from './scheme.js';
import type { Scheme } from './types.js';

const MAX_ITERATIONS = 10_000_000;
const b64 = '[A-Za-z0-9+/]+={0,2}';
const format = new RegExp(`^(\\d{1,8}),(${b64}),(${b64}),(${b64})$`);

function keys(pw: Buffer, salt: Buffer, iterations: number, alg: 'sha1' | 'sha256', size: number) {
  const salted = pbkdf2Sync(pw, salt, iterations, size, alg);
  const clientKey = createHmac(alg, salted).update('Client Key').digest();
  return {
    storedKey: createHash(alg).update(clientKey).digest(),
    serverKey: createHmac(alg, salted).update('Server Key').digest(),
  };
}

function scram(name: string, alg: 'sha1' | 'sha256', size: number): Scheme {
  return {
    name,
    verify(pw, s) {
      const m = format.exec(s.data);
      if (!m) throw new BadHashError(name, 'expected iterations,salt,StoredKey,ServerKey');
      const iterations = Number(m[1]);
      if (iterations < 1 || iterations > MAX_ITERATIONS) throw new BadHashError(name, 'iterations out of range');
      const want = Buffer.from(m[3]!, 'base64');
      if (want.length !== size) throw new BadHashError(name, 'StoredKey has the wrong length');
      return secretEqual(keys(pw, Buffer.from(m[2]!, 'base64'), iterations, alg, size).storedKey, want);
    },
    hash(pw) {
      const salt = randomBytes(16);
      const iterations = 4096;
      const k = keys(pw, salt, iterations, alg, size);
      return `${iterations},${salt.toString('base64')},${k.storedKey.toString('base64')},${k.serverKey.toString('base64')}`;
    },
  };
}

export const scramSchemes: Scheme[] = [scram('SCRAM-SHA-1', 'sha1', 20), scram('SCRAM-SHA-256', 'sha256', 32)];
