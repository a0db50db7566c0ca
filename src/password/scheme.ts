// The stored-password format, as Dovecot reads it: `{SCHEME}data`, `{SCHEME.B64}` /
// `{SCHEME.HEX}` for an explicit encoding, a bare crypt string (`$6$…`, `$2y$…`,
// `$argon2id$…`, as Django, Laravel and friends write them), or else `default_scheme`.
// Pure string work: no hashing here. Errors name the problem, never the hash.

export type Encoding = 'b64' | 'hex';

export interface StoredPassword {
  /** Upper-case scheme name as written (or implied), without the encoding suffix. */
  scheme: string;
  /** Explicit `.b64` / `.hex` suffix, if any. */
  encoding: Encoding | undefined;
  /** Everything after the `}` (or the whole string for a bare hash). */
  data: string;
}

/** A stored hash that cannot be checked. The message is safe to log: it never quotes the hash. */
export class BadHashError extends Error {
  constructor(
    readonly scheme: string,
    reason: string,
  ) {
    super(reason);
  }
}

// Prefixes libxcrypt understands and that no plaintext or digest plausibly starts with.
const cryptPrefix = /^\$(1|5|6|2[abxy]|y|gy|7|sha1|md5)\$/;
const argonPrefix = /^\$(argon2id|argon2i)\$/;

export function parseStored(stored: string, defaultScheme: string): StoredPassword {
  if (stored.startsWith('{')) {
    const end = stored.indexOf('}');
    if (end > 0) {
      return { ...splitSchemeName(stored.slice(1, end)), data: stored.slice(end + 1) };
    }
    // Like Dovecot: a `{` without `}` is no prefix at all; the default scheme applies.
  }
  const argon = argonPrefix.exec(stored);
  if (argon) return { scheme: argon[1]!.toUpperCase(), encoding: undefined, data: stored };
  if (cryptPrefix.test(stored)) return { scheme: 'CRYPT', encoding: undefined, data: stored };
  const { scheme, encoding } = splitSchemeName(defaultScheme);
  return { scheme, encoding, data: stored };
}

/** `SHA512.HEX` → scheme and encoding; used for default_scheme and for `mailmapd hash -s`. */
export function splitSchemeName(name: string): { scheme: string; encoding: Encoding | undefined } {
  const upper = name.toUpperCase();
  const dot = upper.lastIndexOf('.');
  if (dot < 0) return { scheme: upper, encoding: undefined };
  const suffix = upper.slice(dot + 1);
  const scheme = upper.slice(0, dot);
  if (suffix === 'B64' || suffix === 'BASE64') return { scheme, encoding: 'b64' };
  if (suffix === 'HEX') return { scheme, encoding: 'hex' };
  throw new BadHashError(scheme, `unknown encoding suffix .${suffix.slice(0, 16)}`);
}

const hexRe = /^(?:[0-9a-fA-F]{2})*$/;
const b64Re = /^[A-Za-z0-9+/]*={0,2}$/;

/**
 * Decodes a digest the way Dovecot's password_decode does: an explicit suffix wins; without
 * one, a string exactly twice the raw length is hex, anything else base64 (hex falls back to
 * base64, since some lengths are valid as both). `rawLength` 0 = variable (salted schemes).
 */
export function decodeDigest(scheme: string, data: string, encoding: Encoding | undefined, fallback: Encoding, rawLength: number): Buffer {
  let enc = encoding ?? fallback;
  if (encoding === undefined && rawLength > 0) enc = data.length === rawLength * 2 ? 'hex' : 'b64';
  let raw: Buffer | undefined;
  if (enc === 'hex' && hexRe.test(data)) raw = Buffer.from(data, 'hex');
  if (raw === undefined) {
    const trimmed = data.trim();
    if (!b64Re.test(trimmed) || trimmed.replace(/=+$/, '').length % 4 === 1) throw new BadHashError(scheme, 'digest is neither valid hex nor base64');
    raw = Buffer.from(trimmed, 'base64');
  }
  if (rawLength > 0 && raw.length !== rawLength) throw new BadHashError(scheme, `digest has ${raw.length} bytes, expected ${rawLength}`);
  return raw;
}

export function encodeDigest(raw: Buffer, encoding: Encoding): string {
  return encoding === 'hex' ? raw.toString('hex') : raw.toString('base64');
}
