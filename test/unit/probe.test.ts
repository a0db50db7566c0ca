// A primary's cheap poll (src/sync/probe.ts): when it says a catch-up is worth it.

import { describe, expect, it } from 'vitest';
import { createPrimaryProbe, type PrimaryPoll } from '../../src/sync/probe.js';

const quiet = (over: Partial<PrimaryPoll> = {}): PrimaryPoll => ({ lastId: '50', unapplied: false, xmin: '1000', xip: new Set(['1003', '1007']), ...over });

function afterRead() {
  const probe = createPrimaryProbe();
  probe.marked({ lastId: '50', nextXid: '1005' });
  // Running during the read: 1003 (before the mark: may own rows up to 50), 1007 (after it: owns none of them).
  probe.noteRead(['1003', '1007']);
  return probe;
}

describe('primary probe', () => {
  it('has nothing to compare before a marked read: every poll catches up', () => {
    const probe = createPrimaryProbe();
    expect(probe.ready).toBe(false);
    probe.noteRead(['1']); // an unmarked read notes nothing
    expect(probe.ready).toBe(false);
    expect(afterRead().ready).toBe(true);
  });

  it('nothing moved: no catch-up', () => {
    expect(afterRead().changed(quiet())).toBe(false);
  });

  it('the sequence moved: catch up', () => {
    expect(afterRead().changed(quiet({ lastId: '51' }))).toBe(true);
  });

  it('a committed row is unapplied (it wrote before the last read, committed after): catch up', () => {
    expect(afterRead().changed(quiet({ unapplied: true }))).toBe(true);
  });

  it('a transaction open during the read and older than the mark ended: catch up', () => {
    expect(afterRead().changed(quiet({ xip: new Set(['1007']) }))).toBe(true);
    expect(afterRead().changed(quiet({ xmin: '1004', xip: new Set(['1007']) }))).toBe(true);
  });

  it('one younger than the mark ending changes nothing the mark covers', () => {
    expect(afterRead().changed(quiet({ xip: new Set(['1003']) }))).toBe(false);
  });

  it('once the sequence is refused, reads are unmarked and never ready', () => {
    const probe = afterRead();
    probe.giveUp();
    expect(probe.usable).toBe(false);
    expect(probe.ready).toBe(false);
  });
});
