// Password hashes in the mailbox table in fewer bytes: without their scheme's prefix
// (`{SHA512-CRYPT}$6$` is 17 of a SHA512-CRYPT hash's 120 bytes, the same in every mailbox
// of a directory), and the hash proper at the bits its alphabet needs (packHash). The
// password is read back only for a login, never on a socketmap lookup.
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
const BITS = '\u0002';
const ESCAPED = '\u001f';
const CODE0 = 0x20;
/** The code of "no known prefix" in the bit-packed form. */
const NO_PREFIX = 0x7f;

// The alphabets a hash's last part is written in, each packed at its bits per character:
// hex, crypt's base 64 (SHA-crypt, MD5-crypt; bcrypt's is the same set), standard base 64
// (Argon2, {SSHA}). The list, like the prefixes, is append only.
const alphabets = [
  '0123456789abcdef',
  './0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz',
  'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/',
] as const;
const bitsOf = (alphabet: string) => (alphabet.length === 16 ? 4 : 6);
const symbols = alphabets.map((a) => {
  const t = new Int8Array(128).fill(-1);
  for (let i = 0; i < a.length; i++) t[a.charCodeAt(i)] = i;
  return t;
});

export interface StoredHash {
  stored: string;
  /** The stored form is bytes, one char each (byte-table.ts LATIN1_VALUE), not text. */
  latin1: boolean;
}

function prefixOf(value: string): number {
  for (let i = 0; i < prefixes.length; i++) if (value.startsWith(prefixes[i]!)) return i;
  return -1;
}

/** Where packHash builds the byte form: one string is made of it at the end (a load packs millions). */
const scratch = Buffer.allocUnsafeSlow(512);

/**
 * value[from, end) as `bits`-bit symbols of alphabet `a`, packed into scratch from `at`;
 * the end of what it wrote, or -1 when a char is not in the alphabet.
 */
function packBits(value: string, from: number, a: number, at: number): number {
  const table = symbols[a]!;
  const bits = bitsOf(alphabets[a]!);
  let len = at;
  let acc = 0;
  let n = 0;
  for (let i = from; i < value.length; i++) {
    const c = value.charCodeAt(i);
    const v = c < 128 ? table[c]! : -1;
    if (v < 0) return -1;
    acc = ((acc << bits) | v) & 0xffff;
    n += bits;
    if (n >= 8) {
      n -= 8;
      scratch[len++] = acc >>> n; // a Buffer keeps the low 8 bits
    }
  }
  if (n > 0) scratch[len++] = acc << (8 - n);
  return len;
}

/** The byte form of packHash, or undefined when the value does not fit it. */
function bitPacked(value: string, p: number): string | undefined {
  const start = p < 0 ? 0 : prefixes[p]!.length;
  // The hash proper: after the last `$` (crypt's separator) or `}` (a scheme without one).
  const tailStart = Math.max(start, value.lastIndexOf('$') + 1, value.lastIndexOf('}') + 1);
  const count = value.length - tailStart;
  if (count === 0 || count > 255 || 4 + value.length - start > scratch.length || value.startsWith(MARK) || value.startsWith(BITS)) return undefined;
  scratch[0] = BITS.charCodeAt(0);
  scratch[1] = p < 0 ? NO_PREFIX : CODE0 + p;
  scratch[3] = count;
  let at = 4;
  for (let i = start; i < tailStart; i++) {
    const c = value.charCodeAt(i);
    if (c > 0xff) return undefined;
    scratch[at++] = c;
  }
  for (let a = 0; a < alphabets.length; a++) {
    const end = packBits(value, tailStart, a, at);
    if (end >= 0) {
      scratch[2] = a;
      return scratch.toString('latin1', 0, end);
    }
  }
  return undefined;
}

function unpackBits(packed: string, count: number, a: number): string {
  const alphabet = alphabets[a]!;
  const bits = bitsOf(alphabet);
  let out = '';
  let acc = 0;
  let n = 0;
  for (let i = 0; out.length < count; ) {
    if (n < bits) {
      acc = ((acc << 8) | packed.charCodeAt(i++)) & 0xffff;
      n += 8;
    }
    n -= bits;
    out += alphabet[(acc >>> n) & ((1 << bits) - 1)];
  }
  return out;
}

/**
 * The stored form of a hash (or of any value). A value whose last `$`- or `}`-separated part is
 * written in one of the alphabets above is stored as bytes: \x02, the prefix's code, the
 * alphabet's, the part's length, the text between prefix and part, then the part at 4 or 6
 * bits a character (a SHA512-CRYPT hash: 120 bytes become 85). Else a known prefix is
 * replaced by \x01 and its code; else the value is kept (escaped when it starts with \x01
 * or \x02).
 */
export function packHash(value: string): StoredHash {
  const p = prefixOf(value);
  const bytes = bitPacked(value, p);
  if (bytes !== undefined) return { stored: bytes, latin1: true };
  if (p >= 0) return { stored: MARK + String.fromCharCode(CODE0 + p) + value.slice(prefixes[p]!.length), latin1: false };
  return { stored: value.startsWith(MARK) || value.startsWith(BITS) ? MARK + ESCAPED + value : value, latin1: false };
}

const prefixFor = (code: number): string => {
  if (code === NO_PREFIX) return '';
  const prefix = prefixes[code - CODE0];
  if (prefix === undefined) throw new RangeError(`stored hash with unknown prefix code ${code}`);
  return prefix;
};

export function unpackHash(stored: string): string {
  if (stored.startsWith(BITS)) {
    const a = stored.charCodeAt(2);
    const count = stored.charCodeAt(3);
    const packedLen = Math.ceil((count * bitsOf(alphabets[a]!)) / 8);
    const end = stored.length - packedLen;
    return prefixFor(stored.charCodeAt(1)) + stored.slice(4, end) + unpackBits(stored.slice(end), count, a);
  }
  if (!stored.startsWith(MARK)) return stored;
  const code = stored.charCodeAt(1);
  if (code === ESCAPED.charCodeAt(0)) return stored.slice(2);
  return prefixFor(code) + stored.slice(2);
}
