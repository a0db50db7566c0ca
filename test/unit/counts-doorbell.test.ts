// The shared counts' doorbell payload (src/shared-counts/doorbell.ts): a daemon answers
// other daemons' rings with the primary's WAL position to wait for, never its own ring, and
// nothing but a WAL position and a random name is in it.

import type pg from 'pg';
import { expect, it } from 'vitest';
import { ringCounts, rungFor } from '../../src/shared-counts/doorbell.js';

it("a daemon ignores its own ring and answers another's with the WAL position", async () => {
  const sent: unknown[][] = [];
  const client = { query: async (_sql: string, params: unknown[]) => void sent.push(params) } as unknown as pg.Client;
  await ringCounts(client);
  const [self] = sent[0] as [string];
  expect(self).toMatch(/^[0-9a-f]{12}$/);
  expect(rungFor(`0/3000148 ${self}`)).toBeUndefined();
  expect(rungFor('0/3000148 0123456789ab')).toBe('0/3000148');
  expect(rungFor('reload')).toBeUndefined();
  expect(rungFor("0/1'; DROP TABLE x 0123456789ab")).toBeUndefined();
});
