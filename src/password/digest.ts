// Plaintext and plain digest schemes: PLAIN/CLEAR, PLAIN-TRUNC, PLAIN-MD5, LDAP-MD5, SHA1,
// SHA256, SHA512 and their salted forms SMD5, SSHA, SSHA256, SSHA512 (digest || salt).
// Cheap, but still verified in the workers like everything else.

import { createHash, randomBytes } from 'node:crypto';
import { secretEqual } from './equal.js';
import { BadHashError, decodeDigest, encodeDigest, type Encoding, type StoredPassword } from './scheme.js';
import type { Scheme } from './types.js';

const plain = (name: string): Scheme => ({
  name,
  cheap: true,
  verify: (pw, s) => secretEqual(pw, Buffer.from(s.data, 'utf8')),
  hash: (pw) => pw.toString('utf8'),
});

// `{PLAIN-TRUNC}N-password`: the password was cut to N bytes when it was stored.
const plainTrunc: Scheme = {
  name: 'PLAIN-TRUNC',
  verify(pw, s) {
    const m = /^(\d{1,6})-/.exec(s.data);
    if (!m) throw new BadHashError('PLAIN-TRUNC', 'missing length prefix');
    const limit = Number(m[1]);
    const rest = Buffer.from(s.data.slice(m[0].length), 'utf8');
    if (rest.length > limit) throw new BadHashError('PLAIN-TRUNC', 'stored password longer than its length prefix');
    const candidate = rest.length === limit ? pw.subarray(0, limit) : pw;
    return secretEqual(candidate, rest);
  },
  hash: (pw) => `${pw.length}-${pw.toString('utf8')}`,
};

function digest(name: string, algorithm: string, size: number, encoding: Encoding): Scheme {
  return {
    name,
    binary: true,
    cheap: true,
    verify(pw, s: StoredPassword) {
      const want = decodeDigest(name, s.data, s.encoding, encoding, size);
      return secretEqual(createHash(algorithm).update(pw).digest(), want);
    },
    hash: (pw, enc) => encodeDigest(createHash(algorithm).update(pw).digest(), enc ?? encoding),
  };
}

function salted(name: string, algorithm: string, size: number): Scheme {
  return {
    name,
    binary: true,
    cheap: true,
    verify(pw, s) {
      const raw = decodeDigest(name, s.data, s.encoding, 'b64', 0);
      if (raw.length <= size) throw new BadHashError(name, 'salted digest too short');
      const salt = raw.subarray(size);
      const got = createHash(algorithm).update(pw).update(salt).digest();
      return secretEqual(got, raw.subarray(0, size));
    },
    hash(pw, enc) {
      const salt = randomBytes(8);
      const d = createHash(algorithm).update(pw).update(salt).digest();
      return encodeDigest(Buffer.concat([d, salt]), enc ?? 'b64');
    },
  };
}

export const digestSchemes: Scheme[] = [
  plain('PLAIN'),
  plain('CLEAR'),
  plainTrunc,
  digest('PLAIN-MD5', 'md5', 16, 'hex'),
  digest('LDAP-MD5', 'md5', 16, 'b64'),
  digest('SHA1', 'sha1', 20, 'b64'),
  digest('SHA256', 'sha256', 32, 'b64'),
  digest('SHA512', 'sha512', 64, 'b64'),
  salted('SMD5', 'md5', 16),
  salted('SSHA', 'sha1', 20),
  salted('SSHA256', 'sha256', 32),
  salted('SSHA512', 'sha512', 64),
];
