// Password hashes in the mailbox table without their scheme's prefix: `{SHA512-CRYPT}$6$`
// is 17 of a SHA512-CRYPT hash's 120 bytes, the same in every mailbox of a directory. A
// stored hash that starts with one of the prefixes below is kept as \x01, the prefix's
// code, and the rest; any other is kept as it is, or, when it starts with \x01 itself
// (PostgreSQL text may hold it), escaped as \x01 \x1f and the hash.
//
// The list is part of the on-disk snapshot's format (format.ts): only ever append to it.
// A longer prefix comes before one it starts with, since the first match wins.

const prefixes = [
  '{SHA512-CRYPT}$6$rounds=',
  '{SHA512-CRYPT}$6$',
  '{SHA256-CRYPT}$5$',
  '{BLF-CRYPT}$2y$',
  '{BLF-CRYPT}$2b$',
  '{ARGON2ID}$argon2id$v=19$',
  '{ARGON2I}$argon2i$v=19$',
  '{MD5-CRYPT}$1$',
  '{CRYPT}$6$',
  '{CRYPT}$5$',
  '{CRYPT}$2y$',
  '{CRYPT}$1$',
  '{SSHA512}',
  '{SSHA256}',
  '{SSHA}',
  '{CRYPT}',
  '$6$rounds=',
  '$6$',
  '$5$',
  '$2y$',
  '$2b$',
  '$argon2id$v=19$',
  '$argon2i$v=19$',
  '$1$',
  '{SHA512-CRYPT}',
  '{BLF-CRYPT}',
  '{ARGON2ID}',
  '{PLAIN}',
] as const;

const MARK = '\u0001';
const ESCAPED = '\u001f';
const CODE0 = 0x20;

/** The stored form of a hash (or of any value: one without a known prefix is kept). */
export function packHash(value: string): string {
  for (let i = 0; i < prefixes.length; i++) if (value.startsWith(prefixes[i]!)) return MARK + String.fromCharCode(CODE0 + i) + value.slice(prefixes[i]!.length);
  return value.startsWith(MARK) ? MARK + ESCAPED + value : value;
}

export function unpackHash(stored: string): string {
  if (!stored.startsWith(MARK)) return stored;
  const code = stored.charCodeAt(1);
  if (code === ESCAPED.charCodeAt(0)) return stored.slice(2);
  const prefix = prefixes[code - CODE0];
  if (prefix === undefined) throw new RangeError(`stored hash with unknown prefix code ${code}`);
  return prefix + stored.slice(2);
}
