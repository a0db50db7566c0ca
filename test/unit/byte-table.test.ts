// The directory's off-heap table must behave exactly like a Map of strings, through
// growth, deletions, replacements and the compactions they trigger, and must give the
// memory of replaced and deleted entries back.

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CHUNK_BYTES, createByteTable, LATIN1_VALUE, type ByteTable } from '../../src/directory/byte-table.js';
import { createAliasTable, createMailboxTable } from '../../src/directory/tables.js';

type Op = { put: [string, string | null, number, number] } | { add: [string, string | null, number, number] } | { del: string };

function apply(t: ByteTable, model: Map<string, [string | null, number, number]>, op: Op) {
  if ('put' in op) {
    const [k, v, n, f] = op.put;
    t.put(k, v, n, f);
    model.set(k, [v, n, f]);
  } else if ('add' in op) {
    const [k, v, n, f] = op.add;
    const had = model.get(k);
    const id = t.putIfAbsent(k, v, n, f);
    if (had === undefined) {
      expect(id).toBe(-1);
      model.set(k, [v, n, f]);
    } else expect([t.value(id), t.num(id), t.flags(id)]).toEqual(had);
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
  {
    weight: 3,
    arbitrary: fc.tuple(key, value, fc.double({ noNaN: true }), fc.integer({ min: 0, max: 0x7f })).map(([k, v, n, f]) => ({
      // A LATIN1_VALUE entry's value is bytes, a char each: the caller's promise, kept here.
      put: [k, v !== null && (f & LATIN1_VALUE) !== 0 ? Buffer.from(v, 'latin1').toString('latin1') : v, n, f] as [string, string | null, number, number],
    })),
  },
  {
    weight: 1,
    arbitrary: fc.tuple(key, fc.string({ maxLength: 10 }), fc.integer({ min: 0, max: 5000 }), fc.integer({ min: 0, max: 0x3f })).map((add) => ({ add })),
  },
  { weight: 1, arbitrary: key.map((del) => ({ del })) },
);

/**
 * Copies `t` into a fresh table as a snapshot does: exportRecords into frames of
 * `frameBytes`, `stepBytes` per call, `between()` after each call, then load.
 */
function copyThrough(t: ByteTable, frameBytes: number, stepBytes: number, between: () => void = () => {}): ByteTable {
  const frames: [Buffer, number, Buffer][] = [];
  let bytes = Buffer.alloc(frameBytes);
  const heads = Buffer.alloc(frameBytes * t.recordHead);
  let count = 0;
  let used = 0;
  const flush = () => {
    if (count > 0) frames.push([Buffer.from(heads.subarray(0, count * t.recordHead)), count, Buffer.from(bytes.subarray(0, used))]);
    count = used = 0;
    bytes = Buffer.alloc(frameBytes);
  };
  for (let id = 0; id >= 0; ) {
    const r = t.exportRecords(id, heads.subarray(count * t.recordHead), bytes.subarray(used), stepBytes);
    count += r.count;
    used += r.bytes;
    id = r.next;
    if (r.need > 0 && count === 0) {
      bytes = Buffer.alloc(r.need);
      continue;
    }
    if (r.full || id < 0) flush();
    between();
  }
  const copy = createByteTable({ numbers: t.numbers });
  const loader = copy.load(t.size);
  for (const [h, n, chunk] of frames) loader.chunk(h, n, chunk);
  loader.finish();
  return copy;
}

describe('byte table', () => {
  it('behaves like a Map through any sequence of puts and deletes, whatever its index grows by a change', () => {
    fc.assert(
      fc.property(fc.array(op, { maxLength: 400 }), fc.constantFrom(1, 3, 64), (ops, growStep) => {
        const t = createByteTable({ numbers: true, growStep });
        const model = new Map<string, [string | null, number, number]>();
        for (const o of ops) apply(t, model, o);
        expectSame(t, model);
        expect(t.find('never-put@x')).toBe(-1);
      }),
      { numRuns: 60 },
    );
  });

  it('keeps every number exactly, whether it is stored in two bytes or eight', () => {
    // A quota is mostly a round number of KiB, MiB or GiB and is then stored short
    // (byte-table.ts numCode); anything else takes the long form and must come back as it was.
    const quotas = [
      0,
      1,
      1023,
      1024,
      3 * 1024,
      2 ** 30,
      10 ** 9,
      2 ** 40,
      5 * 2 ** 50,
      2 ** 53 - 1,
      2 ** 53,
      1.5,
      -1,
      -0,
      Number.POSITIVE_INFINITY,
      Number.MAX_VALUE,
    ];
    const t = createByteTable({ numbers: true });
    for (const [i, q] of quotas.entries()) t.put(`q${i}@x`, i % 2 === 0 ? null : 'v', q, 0);
    const copy = copyThrough(t, 4096, 4096);
    for (const table of [t, copy]) for (const [i, q] of quotas.entries()) expect(table.num(table.find(`q${i}@x`)), String(q)).toBe(q);
    expect(copy.value(copy.find('q1@x'))).toBe('v');
    expect(copy.value(copy.find('q0@x'))).toBeNull();
  });

  it('refuses a frame bigger than a chunk that holds more than one record', () => {
    const t = createByteTable();
    for (let i = 0; i < 40_000; i++) t.put(`k${i}@x`, 'v'.repeat(40), 0, 0);
    const heads = Buffer.alloc(40_000 * t.recordHead);
    const bytes = Buffer.alloc(4 << 20);
    const r = t.exportRecords(0, heads, bytes);
    expect(r.bytes).toBeGreaterThan(CHUNK_BYTES);
    const loader = createByteTable().load(40_000);
    expect(() => loader.chunk(heads.subarray(0, r.headBytes), r.count, bytes.subarray(0, r.bytes))).toThrow(/bigger than a chunk/);
  });

  it('comes back whole through export and load, whatever the frame and step sizes', () => {
    fc.assert(
      fc.property(fc.array(op, { maxLength: 300 }), fc.integer({ min: 8, max: 4096 }), fc.integer({ min: 1, max: 4096 }), (ops, frame, step) => {
        const t = createByteTable({ numbers: true });
        const model = new Map<string, [string | null, number, number]>();
        for (const o of ops) apply(t, model, o);
        const copy = copyThrough(t, frame, step);
        expectSame(copy, model);
        // The loaded table goes on working as a table.
        for (const o of ops.slice(0, 50)) apply(copy, model, o);
        expectSame(copy, model);
      }),
      { numRuns: 60 },
    );
  });

  it('an entry deleted and added again while it is exported loads once, as its later self', () => {
    const t = createByteTable();
    for (let i = 0; i < 1000; i++) t.put(`k${i}@x`, `old${i}`, 0, 0);
    let calls = 0;
    const copy = copyThrough(t, 4096, 256, () => {
      if (++calls !== 3) return;
      // k0 went out in the first frame; it comes back at a new id, after the export's
      // position: exported a second time.
      t.delete('k0@x');
      t.put('other@x', 'o', 0, 0);
      t.put('k0@x', 'new0', 0, 0);
    });
    // other@x came after the export's position too, at an id of its own: it is in the copy.
    expect(copy.size).toBe(1001);
    expect(copy.value(copy.find('k0@x'))).toBe('new0');
    expect([...copy.keys()].filter((k) => k === 'k0@x')).toHaveLength(1);
    expect(copy.delete('k0@x')).toBe(true);
    expect(copy.find('k0@x')).toBe(-1);
    expect(copy.value(copy.find('k999@x'))).toBe('old999');
  });

  it('an entry not yet exported, deleted and added again while the export runs, is in the copy', () => {
    const t = createByteTable();
    for (let i = 0; i < 1000; i++) t.put(`k${i}@x`, `v${i}`, 0, 0);
    let calls = 0;
    const copy = copyThrough(t, 4096, 256, () => {
      if (++calls !== 3) return;
      // k999 is still ahead of the export; k0 is behind it. Freed in this order, k0's id
      // would be the next one given out: k999 back at it would be behind the export.
      t.delete('k999@x');
      t.delete('k0@x');
      t.put('k999@x', 'v999', 0, 0);
    });
    expect(copy.value(copy.find('k999@x'))).toBe('v999');
    // k0 went out before it was deleted: the copy is older there, and a catch-up from the
    // snapshot's position deletes it.
    expect(copy.size).toBe(1000);
  });

  it('refuses to load heads whose stored hashes are not its own', () => {
    const t = createByteTable();
    for (let i = 0; i < 10; i++) t.put(`k${i}@x`, 'v', 0, 0);
    const heads = Buffer.alloc(10 * t.recordHead);
    const bytes = Buffer.alloc(4096);
    const r = t.exportRecords(0, heads, bytes);
    heads.writeUInt32LE((heads.readUInt32LE(0) ^ 1) >>> 0, 0); // the first record's hash
    const loader = createByteTable().load(10);
    expect(() => loader.chunk(heads.subarray(0, r.headBytes), r.count, bytes.subarray(0, r.bytes))).toThrow(/hashes/);
  });

  it('keeps every entry findable through index growth and deletion of half of them', () => {
    const t = createByteTable();
    const model = new Map<string, [string | null, number, number]>();
    for (let i = 0; i < 50_000; i++) apply(t, model, { put: [`u${i}@d${i % 13}.test`, `d${i}`, 0, 0] });
    for (let i = 0; i < 50_000; i += 2) apply(t, model, { del: `u${i}@d${i % 13}.test` });
    for (let i = 50_000; i < 60_000; i++) apply(t, model, { put: [`u${i}@d${i % 13}.test`, `d${i}`, 0, 0] });
    expectSame(t, model);
  });

  it('keeps every entry findable while the index grows a step at a time, with deletions in between', () => {
    // The index grows into a new one a few entries per change, by id (byte-table.ts
    // growStep): puts and deletes land meanwhile, on ids behind the copy, ahead of it, and
    // beyond the ids it will copy; freed ids are given out again on either side of it. A key
    // pool that widens slowly keeps the table growing while a third of the changes delete.
    // One entry per change, so that most changes land in the middle of a growth.
    const t = createByteTable({ numbers: true, growStep: 1 });
    const model = new Map<string, [string | null, number, number]>();
    let x = 12345;
    const rnd = () => {
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      return (x >>> 0) / 4294967296;
    };
    const used = new Set<string>();
    // Present keys are found, deleted ones are not (a slot left behind in either index would find them).
    const check = () => {
      for (const key of used) expect(t.find(key) >= 0, key).toBe(model.has(key));
    };
    for (let op = 0; op < 20_000; op++) {
      const k = `k${Math.floor(rnd() * (op / 4 + 100))}@d.test`;
      used.add(k);
      apply(t, model, rnd() < 0.45 ? { del: k } : { put: [k, `v${op}`, op, 0] });
      if (op % 97 === 0) check();
    }
    expectSame(t, model);
    check();
    for (const k of [...model.keys()]) apply(t, model, { del: k });
    expect(t.size).toBe(0);
    check();
  });

  it('a key deleted while the index grows, behind the copy, is gone once the new index answers', () => {
    // Ids go out in order here: k<i> has id i. The first index (1024 slots) starts growing
    // at the 615th entry; one id copied per change, so the deletions below land on ids the
    // copy has passed, and no put takes their ids again before the new index takes over.
    const t = createByteTable({ growStep: 1 });
    for (let i = 0; i < 700; i++) t.put(`k${i}`, 'v', 0, 0);
    for (let i = 0; i < 650; i++) t.delete(`k${i}`);
    for (let i = 0; i < 700; i++) expect(t.find(`k${i}`) >= 0, `k${i}`).toBe(i >= 650);
    expect([...t.keys()]).toHaveLength(50);
  });

  it('sized for a guess up front, it holds what comes and gives an index far too big back', () => {
    const t = createByteTable({ numbers: true });
    t.put('before@x', 'b', 1, 0);
    t.reserve(100_000);
    const reserved = t.memory().indexSlots;
    expect(reserved).toBeGreaterThanOrEqual((100_000 * 5) / 3);
    for (let i = 0; i < 100_000; i++) t.put(`k${i}@x`, `v${i}`, i, 0);
    // The guess was right: the load never grew the index.
    expect(t.memory().indexSlots).toBe(reserved);
    t.fit();
    expect(t.memory().indexSlots).toBe(reserved);
    // A guess ten times too high: fit() shrinks the index to what 10,001 entries need.
    const u = createByteTable({ numbers: true });
    u.reserve(100_000);
    for (let i = 0; i < 10_000; i++) u.put(`k${i}@x`, `v${i}`, i, 0);
    u.put('k5@x', 'again', 5, 0);
    u.fit();
    expect(u.memory().indexSlots).toBe(32_768);
    expect([u.size, u.value(u.find('k5@x')), u.num(u.find('k9999@x')), u.find('k10000@x')]).toEqual([10_000, 'again', 9999, -1]);
    for (let i = 0; i < 10_000; i += 7) expect(u.value(u.find(`k${i}@x`))).toBe(i === 5 ? 'again' : `v${i}`);
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
