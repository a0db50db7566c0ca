// The catch-up's verdict (src/sync/verdict.ts): apply the changes key by key, or reload in
// full — every reason, in its order, and the cases that must not reload.

import { describe, expect, it } from 'vitest';
import type { ChangeKind } from '../../src/directory/directory.js';
import type { Position } from '../../src/sync/position.js';
import { catchUpVerdict, historyOf, type ChangeSeen, type ReadSeen } from '../../src/sync/verdict.js';

const position: Position = {
  v: 1,
  system: '7300000000000000001',
  timeline: 2,
  server: 'db1:5432',
  xmin: '1000',
  xmax: '1010',
  seen: ['1002', '1005'],
  open: ['1003'],
  lastId: '77',
  lastXid: '1005',
  lastAt: '1764921600123456',
};

const seen: ReadSeen = {
  system: position.system,
  timeline: 2,
  server: 'db1:5432',
  xmax: '1020',
  prunedXid: '900',
  lastApplied: { xid: '1005', at: '1764921600123456' },
};

const none: ReadonlySet<ChangeKind> = new Set();
const change = (over: Partial<ChangeSeen> = {}): ChangeSeen => ({ xid: '1012', kind: 'mailbox', key: 'a@example.org', ...over });

describe('catch-up verdict', () => {
  it('applies the changes when the position is ours and nothing forces a reload', () => {
    expect(catchUpVerdict(position, seen, [change(), change({ kind: 'alias', key: '@example.org' })], none)).toBeUndefined();
    expect(catchUpVerdict(position, seen, [], none)).toBeUndefined();
  });

  it('start: no position yet', () => {
    expect(catchUpVerdict(undefined, seen, [], none)).toEqual({ reload: 'start' });
  });

  describe('history: the position belongs to another history', () => {
    it.each<[string, Partial<ReadSeen>, string]>([
      ['another cluster (a restore, a dump)', { system: '7300000000000000002' }, 'another database cluster'],
      ['another timeline (a promotion)', { timeline: 3 }, 'another timeline (a promotion or failover)'],
      ['another server of the list', { server: 'db2:5432' }, 'another server'],
      ['a transaction counter behind what the position saw', { xmax: '1005' }, 'a transaction counter behind the position'],
      ['the last applied change is missing though not pruned', { lastApplied: undefined }, 'a change the position applied is missing'],
      [
        'the last applied change is another transaction',
        { lastApplied: { xid: '1004', at: position.lastAt } },
        'a change the position applied was written by another transaction',
      ],
      [
        'the last applied change was written at another instant',
        { lastApplied: { xid: '1005', at: '1764921600999999' } },
        'a change the position applied was written by another transaction',
      ],
    ])('%s', (_what, over, why) => {
      expect(catchUpVerdict(position, { ...seen, ...over }, [change()], none)).toEqual({ reload: 'history', why });
    });

    it('a counter exactly at the horizon is ours; a last change pruned away is not a mismatch', () => {
      expect(historyOf(position, { ...seen, xmax: '1006' })).toBeUndefined(); // horizon = seen 1005 + 1
      expect(historyOf(position, { ...seen, lastApplied: undefined, prunedXid: '1006', xmax: '1020' })).toBeUndefined();
      expect(historyOf({ ...position, lastId: '0' }, { ...seen, lastApplied: undefined })).toBeUndefined(); // nothing applied yet
    });

    it('comes before every other reason', () => {
      const v = catchUpVerdict(position, { ...seen, timeline: 3, prunedXid: '5000' }, [change({ key: null })], new Set(['mailbox']));
      expect(v?.reload).toBe('history');
    });
  });

  it('behind: the change log was pruned past an open transaction of the position', () => {
    expect(catchUpVerdict(position, { ...seen, prunedXid: '1004' }, [change()], none)).toEqual({ reload: 'behind' });
    // Pruned up to the open transaction, not past it: nothing missed.
    expect(catchUpVerdict(position, { ...seen, prunedXid: '1003' }, [change()], none)).toBeUndefined();
    // A standby's position knows no open transactions: anything pruned above its xmin counts.
    const { open: _open, ...standby } = position;
    expect(catchUpVerdict(standby, { ...seen, prunedXid: '1001' }, [change()], none)).toEqual({ reload: 'behind' });
  });

  it('truncate: a change names a whole kind', () => {
    expect(catchUpVerdict(position, seen, [change(), change({ kind: 'domain', key: null })], none)).toEqual({ reload: 'truncate' });
  });

  it('late: a joined kind changed by a transaction open at the previous read', () => {
    const joined = new Set<ChangeKind>(['alias']);
    expect(catchUpVerdict(position, seen, [change({ kind: 'alias', xid: '1009' })], joined)).toEqual({ reload: 'late' });
    // Begun after the previous read: its join saw everything that read saw.
    expect(catchUpVerdict(position, seen, [change({ kind: 'alias', xid: '1010' })], joined)).toBeUndefined();
    // An old transaction on a kind without a join: its keys are its own rows'.
    expect(catchUpVerdict(position, seen, [change({ kind: 'mailbox', xid: '1009' })], joined)).toBeUndefined();
    expect(catchUpVerdict(position, seen, [change({ kind: 'alias', xid: '1009' })], none)).toBeUndefined();
  });

  it('truncate before late', () => {
    const v = catchUpVerdict(position, seen, [change({ kind: 'alias', xid: '1001' }), change({ key: null })], new Set<ChangeKind>(['alias']));
    expect(v).toEqual({ reload: 'truncate' });
  });
});
