// CRAM-MD5 (alias HMAC-MD5): Dovecot stores the two HMAC-MD5 states after the key blocks,
// outer then inner, each as four little-endian words (32 bytes, hex). node:crypto hides MD5's
// internal state, so the single compression step needed is written out here.

import { createHash } from 'node:crypto';
import { secretEqual } from './equal.js';
import { decodeDigest, encodeDigest } from './scheme.js';
import type { Scheme } from './types.js';

const S = [7, 12, 17, 22, 5, 9, 14, 20, 4, 11, 16, 23, 6, 10, 15, 21];
const K = Array.from({ length: 64 }, (_, i) => Math.floor(Math.abs(Math.sin(i + 1)) * 2 ** 32) >>> 0);

/** MD5's compression function over one 64-byte block, starting from the standard IV. */
function md5State(block: Buffer): Buffer {
  const iv = [0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476];
  let [a, b, c, d] = iv as [number, number, number, number];
  for (let i = 0; i < 64; i++) {
    let f: number;
    let g: number;
    if (i < 16) {
      f = (b & c) | (~b & d);
      g = i;
    } else if (i < 32) {
      f = (d & b) | (~d & c);
      g = (5 * i + 1) % 16;
    } else if (i < 48) {
      f = b ^ c ^ d;
      g = (3 * i + 5) % 16;
    } else {
      f = c ^ (b | ~d);
      g = (7 * i) % 16;
    }
    const s = S[(i >> 4) * 4 + (i % 4)]!;
    const x = (a + f + K[i]! + block.readUInt32LE(g * 4)) >>> 0;
    a = d;
    d = c;
    c = b;
    b = (b + ((x << s) | (x >>> (32 - s)))) >>> 0;
  }
  const out = Buffer.alloc(16);
  [a, b, c, d].forEach((v, i) => {
    out.writeUInt32LE((v + iv[i]!) >>> 0, i * 4);
  });
  return out;
}

function cramContext(pw: Buffer): Buffer {
  const key = Buffer.alloc(64);
  (pw.length > 64 ? createHash('md5').update(pw).digest() : pw).copy(key);
  const pad = (byte: number) => Buffer.from(key.map((k) => k ^ byte));
  return Buffer.concat([md5State(pad(0x5c)), md5State(pad(0x36))]);
}

export const cramMd5Scheme: Scheme = {
  name: 'CRAM-MD5',
  binary: true,
  verify: (pw, s) => secretEqual(cramContext(pw), decodeDigest('CRAM-MD5', s.data, s.encoding, 'hex', 32)),
  hash: (pw, enc) => encodeDigest(cramContext(pw), enc ?? 'hex'),
};
