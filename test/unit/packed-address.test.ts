// The big tables store addresses as a local part and a domain id, and password hashes
// without their scheme prefix: whatever goes in must come back exactly, and two different
// addresses must never share a packed form (one would answer for the other).

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { createDomainIds } from '../../src/directory/domain-ids.js';
import { packHash, unpackHash } from '../../src/directory/hash-prefix.js';
import { packAddress, packFound, packList, unpackAddress, unpackList } from '../../src/directory/packed-address.js';
import { createAliasTable, createMailboxTable } from '../../src/directory/tables.js';

// PostgreSQL text holds no NUL; anything else may be in an address.
const text = fc.string({ unit: 'binary', maxLength: 12 }).map((s) => s.replaceAll('\u0000', ''));
const address = fc.oneof(
  fc.tuple(text, text).map(([l, d]) => `${l}@${d}`),
  text,
);

describe('domain ids', () => {
  it('gives each domain one id, in order, and finds only interned ones', () => {
    const ids = createDomainIds();
    expect(ids.intern('a.test')).toBe(0);
    expect(ids.intern('b.test')).toBe(1);
    expect(ids.intern('a.test')).toBe(0);
    expect(ids.find('b.test')).toBe(1);
    expect(ids.find('c.test')).toBe(-1);
    expect(ids.size).toBe(2);
    expect(ids.name(1)).toBe('b.test');
  });

  it('comes back the same from its entries (the snapshot section) and refuses an id twice', () => {
    const ids = createDomainIds();
    for (const d of ['x', 'y', 'z']) ids.intern(d);
    const copy = createDomainIds();
    for (const [d, id] of JSON.parse(JSON.stringify([...ids.entries()])) as [string, number][]) copy.set(d, id);
    expect([...copy.entries()]).toEqual([...ids.entries()]);
    expect(copy.intern('w')).toBe(3);
    expect(() => copy.set('v', 1)).toThrow(RangeError);
  });
});

describe('packed addresses', () => {
  it('round-trips any address and any comma-joined list', () => {
    const ids = createDomainIds();
    fc.assert(
      fc.property(address, (a) => {
        expect(unpackAddress(packAddress(a, ids), ids)).toBe(a);
      }),
    );
    fc.assert(
      fc.property(
        fc.array(
          address.filter((a) => !a.includes(',')),
          { minLength: 1, maxLength: 5 },
        ),
        (list) => {
          const joined = list.join(',');
          expect(unpackList(packList(joined, ids), ids)).toBe(joined);
        },
      ),
    );
  });

  it('never packs two addresses alike, past 64 and 4096 domains too', () => {
    const ids = createDomainIds();
    for (let i = 0; i < 5000; i++) ids.intern(`d${i}.test`);
    const seen = new Map<string, string>();
    fc.assert(
      fc.property(address, (a) => {
        const p = packAddress(a, ids);
        const before = seen.get(p);
        if (before !== undefined) expect(before).toBe(a);
        seen.set(p, a);
      }),
    );
    for (const i of [0, 63, 64, 4095, 4096, 4999]) expect(unpackAddress(packAddress(`u@d${i}.test`, ids), ids)).toBe(`u@d${i}.test`);
  });

  it('is shorter than the address, keeps no comma in the id, and finds nothing in an unknown domain', () => {
    const ids = createDomainIds();
    for (let i = 0; i < 300_000; i += 1000) ids.intern(`pad${i}`);
    const p = packAddress('user1@example.org', ids);
    expect(p.length).toBeLessThan('user1@example.org'.length);
    expect(p).not.toContain(',');
    expect(packFound('user1@example.org', ids)).toBe(p);
    expect(packFound('user1@nowhere.test', ids)).toBeUndefined();
    expect(ids.find('nowhere.test')).toBe(-1);
    expect(packFound('postmaster', ids)).toBe('postmaster');
  });

  it('never finds a requested key holding NUL, which could spell another address packed', () => {
    const ids = createDomainIds();
    const al = createAliasTable(ids);
    const mb = createMailboxTable(ids);
    ids.intern('first.test'); // a.test gets id 1, whose digit is 'A' (id 0's is '@')
    al.set('x@a.test', 'y@a.test');
    mb.set('x@a.test', { password: null, quotaBytes: 0, active: true });
    const packed = packAddress('x@a.test', ids);
    expect([al.get(packed), al.has(packed), mb.has(packed), mb.isActive(packed), mb.delete(packed)]).toEqual([undefined, false, false, false, false]);
    expect(() => al.set('n\u0000@a.test', 'y@a.test')).toThrow(RangeError);
    expect(al.get('x@a.test')).toBe('y@a.test');
  });
});

describe('password hashes in fewer bytes', () => {
  const prefixes = ['{SHA512-CRYPT}$6$', '{BLF-CRYPT}$2y$', '{ARGON2ID}$argon2id$v=19$', '$6$', '{PLAIN}', '\u0001', '\u0002', '\u0001 ', ''];
  const tails = [
    '0123456789abcdef',
    './0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz',
    'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/',
    '$,=:ü€',
  ];
  const tail = fc.constantFrom(...tails).chain((a) => fc.array(fc.constantFrom(...a), { maxLength: 300 }).map((cs) => cs.join('')));
  const hash = fc.tuple(fc.constantFrom(...prefixes), fc.oneof(text, fc.constant('')), fc.constantFrom('', '$'), tail).map(([p, h, d, t]) => p + h + d + t);

  it('round-trips any value, through the bytes a latin1 value is stored as', () => {
    fc.assert(
      fc.property(fc.oneof(text, hash), (v) => {
        const { stored, latin1 } = packHash(v);
        const back = latin1 ? Buffer.from(stored, 'latin1').toString('latin1') : Buffer.from(stored, 'utf8').toString('utf8');
        if (latin1) expect(Buffer.from(stored, 'latin1').toString('latin1')).toBe(stored);
        expect(unpackHash(back)).toBe(v);
      }),
      { numRuns: 2000 },
    );
  });

  it('stores a SHA512-CRYPT hash in 85 bytes, a hex digest at 4 bits a character', () => {
    const sha = `{SHA512-CRYPT}$6$saltsaltsaltsalt$${'a/B9'.repeat(21)}xy`;
    const s = packHash(sha);
    expect([s.latin1, Buffer.byteLength(s.stored, 'latin1')]).toEqual([true, 4 + 17 + 65]);
    const hex = `{SHA256}${'0f'.repeat(32)}`;
    expect(Buffer.byteLength(packHash(hex).stored, 'latin1')).toBe(4 + 32 + '{SHA256}'.length);
    expect(unpackHash(packHash(sha).stored)).toBe(sha);
  });
});

describe('the tables over packed addresses', () => {
  it('answer with the plain addresses and hashes, domains shared between the two tables', () => {
    const ids = createDomainIds();
    const mb = createMailboxTable(ids);
    const al = createAliasTable(ids);
    mb.set('u@d.test', { password: '{SHA512-CRYPT}$6$s$h', quotaBytes: 5, active: true });
    mb.set('\u0001x@d.test', { password: '\u0001odd', quotaBytes: 0, active: false });
    mb.set('h@d.test', { password: `{SHA512-CRYPT}$6$s$${'ÿ'.repeat(3)}$${'z9./'.repeat(20)}`, quotaBytes: 0, active: true });
    al.set('a@d.test', 'u@d.test,@other.test,root');
    al.set('@d.test', 'u@d.test');
    expect(mb.get('u@d.test')).toEqual({ password: '{SHA512-CRYPT}$6$s$h', quotaBytes: 5, active: true });
    expect(mb.get('\u0001x@d.test')?.password).toBe('\u0001odd');
    expect(mb.get('h@d.test')?.password).toBe(`{SHA512-CRYPT}$6$s$${'ÿ'.repeat(3)}$${'z9./'.repeat(20)}`);
    expect(mb.isActive('h@d.test')).toBe(true);
    expect(al.get('a@d.test')).toBe('u@d.test,@other.test,root');
    expect(al.get('@d.test')).toBe('u@d.test');
    expect(mb.has('u@unknown.test')).toBe(false);
    expect(mb.delete('u@unknown.test')).toBe(false);
    expect([...mb.keys()].sort()).toEqual(['\u0001x@d.test', 'h@d.test', 'u@d.test']);
    expect([...al.keys()].sort()).toEqual(['@d.test', 'a@d.test']);
    expect(ids.size).toBe(2);
  });
});
