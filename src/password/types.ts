// One interface every password scheme family implements (one file per family: digest,
// crypt, argon2, pbkdf2, scram, cram-md5), so verify.ts and hash.ts never switch on names.

import type { Encoding, StoredPassword } from './scheme.js';

export interface Scheme {
  /** Canonical Dovecot name; also the `scheme` metrics label, so the set stays bounded. */
  readonly name: string;
  /** True when the data is a binary digest that `.B64` / `.HEX` may re-encode. */
  readonly binary?: boolean;
  /** True for a plain or salted digest: microseconds to check, so a login tries it before a slow hash (auth/credentials.ts). */
  readonly cheap?: boolean;
  /** Throws BadHashError when the stored data is malformed for this scheme. */
  verify(password: Buffer, stored: StoredPassword): boolean | Promise<boolean>;
  /** The data part of a new `{NAME}data` hash. */
  hash(password: Buffer, encoding: Encoding | undefined): string | Promise<string>;
}
