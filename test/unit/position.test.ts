// The sync's position (src/sync/position.ts), directly: how a read advances it, how far
// it reaches, what is read back from a snapshot file, and when it says a full reload is due
// (pruned past it, another history).

import { describe, expect, it } from 'vitest';
import { advance, historyMismatch, horizon, prunedPast, readPosition, type Position } from '../../src/sync/position.js';

const base: Position = {
  v: 1,
  system: '7300000000000000001',
  timeline: 1,
  server: 'db1:5432',
  xmin: '100',
  xmax: '105',
  seen: ['101', '103'],
  lastId: '40',
  lastXid: '103',
  lastAt: '2026-12-05 08:00:00.123456+00',
};

describe('advance', () => {
  it('keeps the applied transactions at or above the new xmin, sorted numerically, and drops the rest', () => {
    const next = advance(base, { xmin: '103', xmax: '120' }, ['110', '99', '1000', '104']);
    expect(next.xmin).toBe('103');
    expect(next.xmax).toBe('120');
    expect(next.seen).toEqual(['103', '104', '110', '1000']); // not string order ('1000' < '103')
    expect(base.seen).toEqual(['101', '103']); // the previous position is left as it was
  });

  it('counts a transaction once, whether it was seen before or applied again', () => {
    expect(advance(base, { xmin: '100', xmax: '110' }, ['103', '101', '103']).seen).toEqual(['101', '103']);
  });

  it('takes the open list of a primary read, and forgets it on a standby read', () => {
    const onPrimary = advance(base, { xmin: '100', xmax: '110', open: ['104', '106'] }, []);
    expect(onPrimary.open).toEqual(['104', '106']);
    const onStandby = advance(onPrimary, { xmin: '100', xmax: '110' }, []);
    expect('open' in onStandby).toBe(false);
  });

  it('moves the last row forward only', () => {
    const later = advance(base, { xmin: '100', xmax: '110' }, [], { id: '41', xid: '107', at: 't2' });
    expect([later.lastId, later.lastXid, later.lastAt]).toEqual(['41', '107', 't2']);
    const earlier = advance(later, { xmin: '100', xmax: '110' }, [], { id: '39', xid: '102', at: 't0' });
    expect([earlier.lastId, earlier.lastXid, earlier.lastAt]).toEqual(['41', '107', 't2']);
    const same = advance(later, { xmin: '100', xmax: '110' }, [], { id: '41', xid: '999', at: 'tx' });
    expect(same.lastXid).toBe('107');
    // Ids compare as numbers: 100 is after 99.
    const hundred = advance({ ...base, lastId: '99' }, { xmin: '100', xmax: '110' }, [], { id: '100', xid: '108', at: 't3' });
    expect(hundred.lastId).toBe('100');
  });

  it('handles transaction ids past 2^53', () => {
    const big = '18446744073709551000';
    const next = advance({ ...base, xmin: big, xmax: big, seen: [] }, { xmin: big, xmax: '18446744073709551010' }, [
      '18446744073709551003',
      '18446744073709551001',
    ]);
    expect(next.seen).toEqual(['18446744073709551001', '18446744073709551003']);
  });
});

describe('horizon', () => {
  it('is one past the highest transaction the position knows of', () => {
    expect(horizon(base)).toBe(104n); // seen 103
    expect(horizon({ ...base, seen: [], lastXid: '0' })).toBe(100n); // xmin alone
    expect(horizon({ ...base, seen: ['101'], lastXid: '150' })).toBe(151n); // the last row's
  });
});

describe('readPosition', () => {
  it('reads back what JSON made of a position, a copy not the same arrays', () => {
    const raw = JSON.parse(JSON.stringify({ ...base, open: ['102'] })) as unknown;
    const p = readPosition(raw);
    expect(p).toEqual({ ...base, open: ['102'] });
    expect(p!.seen).not.toBe((raw as Position).seen);
    expect(readPosition(JSON.parse(JSON.stringify(base)))).toEqual(base);
  });

  it('drops unknown fields', () => {
    expect(readPosition({ ...base, extra: 1 })).toEqual(base);
  });

  it.each([
    ['null', null],
    ['a string', 'position'],
    ['another version', { ...base, v: 2 }],
    ['no system', { ...base, system: undefined }],
    ['a fractional timeline', { ...base, timeline: 1.5 }],
    ['a numeric xmin', { ...base, xmin: 100 }],
    ['a negative xmax', { ...base, xmax: '-1' }],
    ['a 21-digit id', { ...base, lastId: '123456789012345678901' }],
    ['seen not a list', { ...base, seen: '101' }],
    ['a bad seen entry', { ...base, seen: ['101', 'x'] }],
    ['no lastAt', { ...base, lastAt: undefined }],
    ['a bad open list', { ...base, open: ['1', 2] }],
  ])('refuses %s', (_what, value) => {
    expect(readPosition(value)).toBeUndefined();
  });
});

describe('prunedPast', () => {
  it('nothing at or below xmin can have been missed', () => {
    expect(prunedPast(base, '100')).toBe(false);
    expect(prunedPast(base, '50')).toBe(false);
  });

  it('a standby position (no open list) trusts nothing pruned above xmin', () => {
    expect(prunedPast(base, '101')).toBe(true);
  });

  it('a primary position: only pruning past one of the transactions open at the read counts', () => {
    const p = { ...base, open: ['102', '104'] };
    expect(prunedPast(p, '102')).toBe(false); // pruned below 102: 102 itself kept
    expect(prunedPast(p, '103')).toBe(true); // 102 may have lost rows
    expect(prunedPast({ ...base, open: [] }, '105')).toBe(false); // none open, up to xmax
    expect(prunedPast({ ...base, open: [] }, '106')).toBe(true); // past xmax: transactions the read never knew
  });
});

describe('historyMismatch', () => {
  const same = { system: base.system, timeline: base.timeline, server: base.server };
  it('trusts the same cluster, timeline and server', () => {
    expect(historyMismatch(base, same)).toBeUndefined();
  });
  it('says which of them differs, the cluster first', () => {
    expect(historyMismatch(base, { ...same, system: '1' })).toBe('another database cluster');
    expect(historyMismatch(base, { ...same, timeline: 2 })).toBe('another timeline (a promotion or failover)');
    expect(historyMismatch(base, { ...same, server: 'db2:5432' })).toBe('another server');
    expect(historyMismatch(base, { system: '1', timeline: 2, server: 'x' })).toBe('another database cluster');
  });
});
