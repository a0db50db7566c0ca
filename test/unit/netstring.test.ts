// The netstring codec on its own: any split of a stream of pipelined netstrings decodes to
// the same payloads in the same order; garbage never throws and is reported; a length
// prefix over the limit is refused as soon as its digits say so, before any allocation.

import fc from 'fast-check';
import { describe, expect, it, vi } from 'vitest';
import { createNetstringDecoder, encodeNetstring, encodeNetstringBytes, type NetstringError } from '../../src/socketmap/netstring.js';

function decodeChunks(chunks: Buffer[], max: number): { payloads: Buffer[]; error: NetstringError | undefined } {
  const payloads: Buffer[] = [];
  // The window is only valid during the call: copy, as a consumer must.
  const d = createNetstringDecoder(max, (buf, s, e) => payloads.push(Buffer.from(buf.subarray(s, e))));
  let error: NetstringError | undefined;
  for (const c of chunks) {
    error = d.push(c);
    if (error) break;
  }
  return { payloads, error };
}

/** Cuts `stream` at the given points (any values; normalised into range). */
function split(stream: Buffer, cuts: number[]): Buffer[] {
  const points = [...new Set(cuts.map((c) => (stream.length === 0 ? 0 : c % (stream.length + 1))))].sort((a, b) => a - b);
  const out: Buffer[] = [];
  let prev = 0;
  for (const p of [...points, stream.length]) {
    out.push(stream.subarray(prev, p));
    prev = p;
  }
  return out;
}

const payloadsArb = fc.array(
  fc.uint8Array({ maxLength: 300 }).map((a) => Buffer.from(a)),
  { maxLength: 20 },
);

describe('netstring decoder', () => {
  it('decodes any split of a pipelined stream to the same payloads, in order', () => {
    fc.assert(
      fc.property(payloadsArb, fc.array(fc.nat(), { maxLength: 40 }), (payloads, cuts) => {
        const stream = Buffer.concat(payloads.map(encodeNetstringBytes));
        const r = decodeChunks(split(stream, cuts), 300);
        expect(r.error).toBeUndefined();
        expect(r.payloads).toEqual(payloads);
      }),
      { numRuns: 500 },
    );
  });

  it('reads only up to `end` of a reused buffer, whatever stale bytes lie after it', () => {
    // The socketmap server reads every connection into one shared buffer and passes its fill.
    fc.assert(
      fc.property(payloadsArb, fc.array(fc.nat(), { maxLength: 40 }), fc.uint8Array({ minLength: 1, maxLength: 64 }), (payloads, cuts, stale) => {
        const stream = Buffer.concat(payloads.map(encodeNetstringBytes));
        const got: Buffer[] = [];
        const d = createNetstringDecoder(300, (buf, s, e) => got.push(Buffer.from(buf.subarray(s, e))));
        const shared = Buffer.alloc(stream.length + stale.length);
        for (const piece of split(stream, cuts)) {
          piece.copy(shared);
          Buffer.from(stale).copy(shared, piece.length);
          expect(d.push(shared, piece.length)).toBeUndefined();
        }
        expect(got).toEqual(payloads);
      }),
      { numRuns: 300 },
    );
  });

  it('decodes one byte at a time', () => {
    fc.assert(
      fc.property(payloadsArb, (payloads) => {
        const stream = Buffer.concat(payloads.map(encodeNetstringBytes));
        const bytes = [...stream].map((b) => Buffer.from([b]));
        expect(decodeChunks(bytes, 300).payloads).toEqual(payloads);
      }),
      { numRuns: 100 },
    );
  });

  it('never throws on random garbage, and reports it the same way whatever the split', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 400 }), fc.array(fc.nat(), { maxLength: 20 }), (garbage, cuts) => {
        const whole = decodeChunks([Buffer.from(garbage)], 100);
        const pieces = decodeChunks(split(Buffer.from(garbage), cuts), 100);
        expect(pieces).toEqual(whole);
      }),
      { numRuns: 1000 },
    );
  });

  it('answers the good requests before garbage, then gives the stream up for good', () => {
    fc.assert(
      fc.property(payloadsArb, fc.constantFrom('x', ':', '01:a,', '3:abc;', '-1:', ' 1:a,', '2:a,;'), (payloads, bad) => {
        const good = Buffer.concat(payloads.map(encodeNetstringBytes));
        const d = createNetstringDecoder(300, () => {});
        expect(d.push(good)).toBeUndefined();
        const err = d.push(Buffer.from(bad));
        expect(err === 'bad_length' || err === 'bad_terminator').toBe(true);
        // Once failed, the decoder stays failed: nothing after the garbage is trusted.
        expect(d.push(encodeNetstringBytes(Buffer.from('domains x')))).toBe(err);
      }),
      { numRuns: 100 },
    );
  });

  it('refuses a length prefix over the limit from its digits alone, before allocating anything', () => {
    const alloc = vi.spyOn(Buffer, 'allocUnsafe');
    try {
      const seen: string[] = [];
      const d = createNetstringDecoder(4096, (b, s, e) => seen.push(b.toString('latin1', s, e)));
      expect(d.push(Buffer.from('409'))).toBeUndefined();
      expect(d.push(Buffer.from('7'))).toBe('too_long'); // 4097: no colon needed to know
      expect(alloc).not.toHaveBeenCalled();
      expect(createNetstringDecoder(4096, () => {}).push(Buffer.from('99999999999999999999999999:'))).toBe('too_long');
      expect(alloc).not.toHaveBeenCalled();
      expect(seen).toEqual([]);
    } finally {
      alloc.mockRestore();
    }
  });

  it('accepts a payload of exactly the limit, whole or split', () => {
    const payload = Buffer.alloc(4096, 0x61);
    const stream = encodeNetstringBytes(payload);
    expect(decodeChunks([stream], 4096)).toEqual({ payloads: [payload], error: undefined });
    expect(decodeChunks(split(stream, [3, 5, 2000]), 4096)).toEqual({ payloads: [payload], error: undefined });
    expect(decodeChunks([encodeNetstringBytes(Buffer.alloc(4097))], 4096).error).toBe('too_long');
  });

  it('knows when no netstring is half received', () => {
    const d = createNetstringDecoder(100, () => {});
    expect(d.idle).toBe(true);
    d.push(Buffer.from('5:ab'));
    expect(d.idle).toBe(false);
    d.push(Buffer.from('cde,'));
    expect(d.idle).toBe(true);
    d.push(Buffer.from('1'));
    expect(d.idle).toBe(false);
  });

  it('decodes the empty netstring', () => {
    expect(decodeChunks([Buffer.from('0:,0:,')], 10).payloads).toEqual([Buffer.alloc(0), Buffer.alloc(0)]);
    expect(decodeChunks([Buffer.from('0:'), Buffer.from(',')], 10).payloads).toEqual([Buffer.alloc(0)]);
  });
});

describe('netstring encoder', () => {
  it('counts UTF-8 bytes, not characters', () => {
    expect(encodeNetstring('OK example.org/jörg/')).toBe('21:OK example.org/jörg/,');
    expect(encodeNetstring('')).toBe('0:,');
    fc.assert(
      fc.property(fc.string({ unit: 'grapheme', maxLength: 50 }), (s) => {
        const bytes = Buffer.from(encodeNetstring(s), 'utf8');
        expect(decodeChunks([bytes], 1000).payloads.map((p) => p.toString('utf8'))).toEqual([s]);
      }),
    );
  });
});
