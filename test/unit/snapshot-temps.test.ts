// A kill during a snapshot write leaves `<snapshot>.tmp-<pid>` behind, a copy of every
// password hash; the next start removes it (issue 29, item 7). A temp file of a process
// still running is its write in progress and stays.

import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { createDirectory } from '../../src/directory/directory.js';
import { createLogger } from '../../src/log.js';
import { createMetrics } from '../../src/metrics.js';
import { createSnapshotKeeper } from '../../src/snapshot/keeper.js';

const dir = mkdtempSync(join(tmpdir(), 'mailmapd-snapshot-temps-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** The pid of a process that has exited (and been reaped). */
async function deadPid(): Promise<number> {
  const child = spawn(process.execPath, ['-e', '0']);
  await new Promise((r) => child.once('exit', r));
  return child.pid!;
}

it('the start removes temp files left by a killed writer, and keeps a live writer’s', async () => {
  const path = join(dir, 'directory.snapshot');
  const dead = join(dir, `directory.snapshot.tmp-${await deadPid()}`);
  const live = join(dir, `directory.snapshot.tmp-${process.ppid}`); // our parent runs on
  const other = join(dir, 'other.snapshot.tmp-1');
  for (const f of [dead, live, other]) writeFileSync(f, 'hashes');
  const logs: string[] = [];
  const keeper = createSnapshotKeeper({
    path,
    maxAgeMs: 86_400_000,
    source: { database: 'test', schema: 'mailmapd' },
    directory: createDirectory({ recipientDelimiter: '+' }),
    logger: createLogger('info', (l) => logs.push(l)),
    metrics: createMetrics(false),
  });
  expect(keeper.restore()).toBe(false); // no snapshot yet
  await keeper.close();
  expect(existsSync(dead)).toBe(false);
  expect(existsSync(live)).toBe(true);
  expect(existsSync(other)).toBe(true); // not this snapshot's
  expect(logs.join('\n')).toMatch(/removed snapshot temp files left by an interrupted write.*count=1/);
});
