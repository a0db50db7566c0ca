// The directory's off-heap table must behave exactly like a Map of strings, through
// growth, deletions, replacements and the compactions they trigger, and must give the
// memory of replaced and deleted entries back.

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { createByteTable, type ByteTable } from '../src/directory/byte-table.js';
import { createAliasTable, createMailboxTable } from '../src/directory/tables.js';

type Op = { put: [string, string | null, number, number] } | { del: string };

function apply(t: ByteTable, model: Map<string, [string | null, number, number]>, op: Op) {
  if ('put' in op) {
    const [k, v, n, f] = op.put;
    t.put(k, v, n, f);
    model.set(k, [v, n, f]);
  } else {
    expect(t.delete(op.del)).toBe(model.delete(op.del));
  }
}

function expectSame(t: ByteTable, model: Map<string, [string | null, number, number]>) {
  expect(t.size).toBe(model.size);
  for (const [k, [v, n, f]] of model) {
    const id = t.find(k);
    expect(id, k).toBeGreaterThanOrEqual(0);
    expect(t.value(id)).toBe(v);
    expect(t.num(id)).toBe(n);
    expect(t.flags(id)).toBe(f);
  }
  expect([...t.keys()].sort()).toEqual([...model.keys()].sort());
}

// Few distinct keys so that operations collide, replace and delete each other's entries;
// keys in several scripts because the table hashes and compares UTF-8 bytes.
const key = fc.oneof(
  fc.integer({ min: 0, max: 300 }).map((i) => `user${i}@d${i % 7}.test`),
  fc.constantFrom('', '@example.org', 'jörg@example.org', 'jorg@example.org', '用户@例子.测试', 'a\u0000b@x', '😀@x'),
);
const value = fc.oneof(
  fc.constant(null),
  fc.string({ maxLength: 40 }),
  fc.string({ unit: 'grapheme', maxLength: 20 }),
  // Long values fill 1 MiB chunks quickly, and some get a chunk of their own.
  fc.integer({ min: 1, max: 300_000 }).map((n) => 'x'.repeat(n)),
);
const op: fc.Arbitrary<Op> = fc.oneof(
  { weight: 3, arbitrary: fc.tuple(key, value, fc.double({ noNaN: true }), fc.integer({ min: 0, max: 0x7f })).map((put) => ({ put })) },
  { weight: 1, arbitrary: key.map((del) => ({ del })) },
);

describe('byte table', () => {
  it('behaves like a Map through any sequence of puts and deletes', () => {
    fc.assert(
      fc.property(fc.array(op, { maxLength: 400 }), (ops) => {
        const t = createByteTable({ numbers: true });
        const model = new Map<string, [string | null, number, number]>();
        for (const o of ops) apply(t, model, o);
        expectSame(t, model);
        expect(t.find('never-put@x')).toBe(-1);
      }),
      { numRuns: 60 },
    );
  });

  it('keeps every entry findable through index growth and deletion of half of them', () => {
    const t = createByteTable();
    const model = new Map<string, [string | null, number, number]>();
    for (let i = 0; i < 50_000; i++) apply(t, model, { put: [`u${i}@d${i % 13}.test`, `d${i}`, 0, 0] });
    for (let i = 0; i < 50_000; i += 2) apply(t, model, { del: `u${i}@d${i % 13}.test` });
    for (let i = 50_000; i < 60_000; i++) apply(t, model, { put: [`u${i}@d${i % 13}.test`, `d${i}`, 0, 0] });
    expectSame(t, model);
  });

  it('gives the memory of replaced and deleted entries back', () => {
    const t = createByteTable();
    const v = 'y'.repeat(1000);
    for (let round = 0; round < 10; round++) for (let i = 0; i < 20_000; i++) t.put(`k${i}`, `${round}${v}`, 0, 0);
    // 20 MB live; 200 MB were written over time. Garbage is kept under an eighth of the
    // chunks or 4 MiB, whichever is more, plus the tail chunk's unused end.
    let m = t.memory();
    const live = 20_000 * (1001 + 6);
    expect(m.liveBytes).toBeGreaterThan(live * 0.99);
    expect(m.chunkBytes).toBeLessThanOrEqual(Math.max((live * 8) / 7, live + (4 << 20)) + (2 << 20));
    for (let i = 0; i < 20_000; i++) t.delete(`k${i}`);
    m = t.memory();
    expect([t.size, m.liveBytes]).toEqual([0, 0]);
    expect(m.chunkBytes).toBeLessThanOrEqual(6 << 20);
    // A value bigger than a chunk: stored whole, and its memory freed with its entry.
    const before = t.memory().chunkBytes;
    t.put('big', 'z'.repeat(3 << 20), 0, 0);
    expect(t.value(t.find('big'))).toHaveLength(3 << 20);
    expect(t.memory().chunkBytes).toBeGreaterThanOrEqual(before + (3 << 20));
    t.delete('big');
    expect(t.memory().chunkBytes).toBeLessThanOrEqual(before);
  });

  it('mailbox and alias tables: Map-like views that copy records in and out', () => {
    const mb = createMailboxTable();
    const rec = { password: '{PLAIN}x', quotaBytes: 2 ** 40, active: true };
    mb.set('a@x', rec).set('b@x', { password: null, quotaBytes: 0, active: false });
    rec.active = false;
    expect(mb.get('a@x')).toEqual({ password: '{PLAIN}x', quotaBytes: 2 ** 40, active: true });
    expect(mb.isActive('a@x')).toBe(true);
    expect(mb.isActive('b@x')).toBe(false);
    expect(mb.isActive('c@x')).toBe(false);
    expect(mb.get('b@x')).toEqual({ password: null, quotaBytes: 0, active: false });
    expect(mb.delete('a@x')).toBe(true);
    expect([mb.size, mb.has('a@x'), mb.get('a@x')]).toEqual([1, false, undefined]);

    const al = createAliasTable();
    al.set('@x', 'a@x').set('info@x', 'a@x,b@x');
    expect([al.get('@x'), al.get('info@x'), al.get('nope@x'), al.size]).toEqual(['a@x', 'a@x,b@x', undefined, 2]);
  });
});
