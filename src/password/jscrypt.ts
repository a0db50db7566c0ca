// Pure-JavaScript crypt(3) for when the native binding could not be built: SHA512-CRYPT,
// SHA256-CRYPT (Drepper's algorithm) and MD5-CRYPT on node:crypto. Several times slower
// than libxcrypt, and no bcrypt at all, so native.ts logs loudly when this is in use.

import { createHash } from 'node:crypto';

const itoa64 = './0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';

function b64From24(b2: number, b1: number, b0: number, n: number): string {
  let w = (b2 << 16) | (b1 << 8) | b0;
  let out = '';
  for (let i = 0; i < n; i++) {
    out += itoa64[w & 0x3f];
    w >>>= 6;
  }
  return out;
}

/** Repeats `block` to exactly `len` bytes. */
function stretch(block: Buffer, len: number): Buffer {
  const out = Buffer.alloc(len);
  for (let i = 0; i < len; i += block.length) block.copy(out, i, 0, Math.min(block.length, len - i));
  return out;
}

const sha512Order = [
  [0, 21, 42],
  [22, 43, 1],
  [44, 2, 23],
  [3, 24, 45],
  [25, 46, 4],
  [47, 5, 26],
  [6, 27, 48],
  [28, 49, 7],
  [50, 8, 29],
  [9, 30, 51],
  [31, 52, 10],
  [53, 11, 32],
  [12, 33, 54],
  [34, 55, 13],
  [56, 14, 35],
  [15, 36, 57],
  [37, 58, 16],
  [59, 17, 38],
  [18, 39, 60],
  [40, 61, 19],
  [62, 20, 41],
] as const;
const sha256Order = [
  [0, 10, 20],
  [21, 1, 11],
  [12, 22, 2],
  [3, 13, 23],
  [24, 4, 14],
  [15, 25, 5],
  [6, 16, 26],
  [27, 7, 17],
  [18, 28, 8],
  [9, 19, 29],
] as const;

function shaCrypt(id: '5' | '6', pw: Buffer, setting: string): string | null {
  const m = /^\$[56]\$(?:rounds=(\d{1,9})\$)?([^$]{0,16})[^$]*(?:\$.*)?$/.exec(setting);
  if (!m) return null;
  const alg = id === '6' ? 'sha512' : 'sha256';
  const custom = m[1] !== undefined;
  const rounds = custom ? Math.min(999_999_999, Math.max(1000, Number(m[1]))) : 5000;
  const salt = Buffer.from(m[2]!, 'latin1');
  const H = () => createHash(alg);

  const B = H().update(pw).update(salt).update(pw).digest();
  const a = H().update(pw).update(salt).update(stretch(B, pw.length));
  for (let n = pw.length; n > 0; n >>= 1) a.update(n & 1 ? B : pw);
  let C = a.digest();
  const dp = H();
  for (let i = 0; i < pw.length; i++) dp.update(pw);
  const P = stretch(dp.digest(), pw.length);
  const ds = H();
  for (let i = 0; i < 16 + C[0]!; i++) ds.update(salt);
  const S = stretch(ds.digest(), salt.length);
  for (let i = 0; i < rounds; i++) {
    const h = H();
    h.update(i & 1 ? P : C);
    if (i % 3) h.update(S);
    if (i % 7) h.update(P);
    h.update(i & 1 ? C : P);
    C = h.digest();
  }
  let out = `$${id}$${custom ? `rounds=${m[1]}$` : ''}${m[2]}$`;
  if (id === '6') {
    for (const [x, y, z] of sha512Order) out += b64From24(C[x]!, C[y]!, C[z]!, 4);
    out += b64From24(0, 0, C[63]!, 2);
  } else {
    for (const [x, y, z] of sha256Order) out += b64From24(C[x]!, C[y]!, C[z]!, 4);
    out += b64From24(0, C[31]!, C[30]!, 3);
  }
  return out;
}

function md5Crypt(pw: Buffer, setting: string): string | null {
  const m = /^\$1\$([^$]{0,8})/.exec(setting);
  if (!m) return null;
  const salt = Buffer.from(m[1]!, 'latin1');
  const H = () => createHash('md5');
  const alt = H().update(pw).update(salt).update(pw).digest();
  const ctx = H().update(pw).update('$1$').update(salt);
  for (let n = pw.length; n > 0; n -= 16) ctx.update(alt.subarray(0, Math.min(n, 16)));
  for (let n = pw.length; n > 0; n >>= 1) ctx.update(n & 1 ? Buffer.alloc(1) : pw.subarray(0, 1));
  let f = ctx.digest();
  for (let i = 0; i < 1000; i++) {
    const h = H();
    h.update(i & 1 ? pw : f);
    if (i % 3) h.update(salt);
    if (i % 7) h.update(pw);
    h.update(i & 1 ? f : pw);
    f = h.digest();
  }
  let out = `$1$${m[1]}$`;
  for (const [x, y, z] of [
    [0, 6, 12],
    [1, 7, 13],
    [2, 8, 14],
    [3, 9, 15],
    [4, 10, 5],
  ] as const)
    out += b64From24(f[x]!, f[y]!, f[z]!, 4);
  return out + b64From24(0, 0, f[11]!, 2);
}

/** crypt(3) for `$6$`, `$5$` and `$1$`; null for any other setting (bcrypt, DES, yescrypt). */
export function jsCrypt(pw: Buffer, setting: string): string | null {
  if (pw.includes(0)) return null;
  if (setting.startsWith('$6$')) return shaCrypt('6', pw, setting);
  if (setting.startsWith('$5$')) return shaCrypt('5', pw, setting);
  if (setting.startsWith('$1$')) return md5Crypt(pw, setting);
  return null;
}

/** Salt for the fallback: 16 (SHA) or 8 (MD5) characters of crypt's base64 alphabet. */
export function jsGensalt(prefix: string, random: Buffer): string | null {
  const len = prefix === '$1$' ? 8 : 16;
  if (!['$1$', '$5$', '$6$'].includes(prefix) || random.length < len) return null;
  let salt = '';
  for (let i = 0; i < len; i++) salt += itoa64[random[i]! & 0x3f];
  return prefix + salt;
}
