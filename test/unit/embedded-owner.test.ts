// The record of who runs the embedded PostgreSQL (src/db/embedded-owner.ts): one owner at a
// time, a dead owner's record taken over, the record gone once released.

import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { currentOwner, ownerFileOf, takeOwnership } from '../../src/db/embedded-owner.js';

let dir: string;
let dataDir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'mailmapd-owner-'));
  dataDir = join(dir, 'postgres');
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

/** A pid that is certainly not running: a child that has already exited. */
const deadPid = (): number => spawnSync('true').pid!;

it('the first taker owns the server; a live owner is not displaced', () => {
  // The parent process stands in for another live mailmapd.
  writeFileSync(ownerFileOf(dataDir), `${process.ppid} daemon\n`);
  expect(takeOwnership(dataDir, 'command')).toBeUndefined();
  expect(currentOwner(dataDir)).toEqual({ pid: process.ppid, role: 'daemon' });
});

it('a record whose process is gone is stale: removed and taken over', () => {
  writeFileSync(ownerFileOf(dataDir), `${deadPid()} daemon\n`);
  const held = takeOwnership(dataDir, 'command');
  expect(held).toBeDefined();
  expect(readFileSync(ownerFileOf(dataDir), 'utf8')).toBe(`${process.pid} command\n`);
  held!.release();
  expect(existsSync(ownerFileOf(dataDir))).toBe(false);
});

it('our own record does not count as another owner, and release is idempotent', () => {
  const held = takeOwnership(dataDir, 'daemon');
  expect(held).toBeDefined();
  expect(currentOwner(dataDir)).toBeUndefined();
  expect(existsSync(ownerFileOf(dataDir))).toBe(true);
  held!.release();
  held!.release();
  expect(takeOwnership(dataDir, 'daemon')).toBeDefined();
});
