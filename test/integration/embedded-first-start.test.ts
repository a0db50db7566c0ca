// A fresh clone's first minute (issue 29, item 7f): `npm start` initialises the embedded
// PostgreSQL, and the README's next step, a CLI command, runs while it does. The command
// must wait for that server (never start a second one on the same directory), the daemon
// must come up whatever the command did, and a command that fails must not exit 0.
//
// Each race is staged on what the daemon logs (before it starts initdb, while initdb runs,
// once the server is up), not on sleeps, so each moment is hit on a slow machine too.

import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { cliPath, freePort } from '../helpers/daemon.js';

let dir: string;
let configPath: string;
let daemon: ChildProcess | undefined;
let daemonLog = '';
let socketmapPort = 0;

async function writeConfig(): Promise<void> {
  socketmapPort = await freePort();
  const lines = [
    'database_url =',
    `embedded_data_dir = ${join(dir, 'postgres')}`,
    `embedded_port = ${await freePort()}`,
    `snapshot_file = ${join(dir, 'directory.snapshot')}`,
    `socketmap_listen = inet:127.0.0.1:${socketmapPort}`,
    'auth_listen =',
    'checkpassword_listen =',
    `http_listen = 127.0.0.1:${await freePort()}`,
    'log_level = debug',
    `dkim_dir = ${join(dir, 'dkim')}`,
    'dkim_group =',
    'dkim_reload_command =',
  ];
  writeFileSync(configPath, `${lines.join('\n')}\n`);
}

function cli(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [cliPath, '-c', configPath, ...args], { encoding: 'utf8', timeout: 180_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Starts `serve` and resolves once its log holds `line` (then the race is staged). */
function startDaemonUntil(line: string): Promise<void> {
  daemonLog = '';
  const child = spawn(process.execPath, [cliPath, 'serve', '-c', configPath], { stdio: ['ignore', 'pipe', 'pipe'] });
  daemon = child;
  return new Promise((resolve, reject) => {
    const seen = (chunk: Buffer) => {
      daemonLog += chunk.toString();
      if (daemonLog.includes(line)) resolve();
    };
    child.stdout?.on('data', seen);
    child.stderr?.on('data', seen);
    child.on('exit', (code) => reject(new Error(`the daemon exited (${code}) before logging "${line}":\n${daemonLog}`)));
  });
}

const pause = () => new Promise((r) => setTimeout(r, 100));

async function waitForLog(line: string): Promise<void> {
  for (let i = 0; i < 1200 && !daemonLog.includes(line); i++) await pause();
  expect(daemonLog).toContain(line);
}

/** What the real `postmap -q` gets from the daemon's domains map, once it answers it. */
async function domainsMap(key: string): Promise<string> {
  let out = '';
  for (let i = 0; i < 300; i++) {
    const r = spawnSync('postmap', ['-q', key, `socketmap:inet:127.0.0.1:${socketmapPort}:domains`], { encoding: 'utf8' });
    out = r.stdout.trim();
    if (r.status === 0) break;
    await pause();
  }
  return out;
}

async function stopDaemon(): Promise<number | null> {
  const child = daemon;
  daemon = undefined;
  if (child === undefined || child.exitCode !== null) return child?.exitCode ?? null;
  return new Promise((resolve) => {
    child.on('exit', (code) => resolve(code));
    child.kill('SIGTERM');
  });
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'mailmapd-first-start-'));
  // As root the embedded server runs as `postgres`, which must reach its data directory.
  chmodSync(dir, 0o755);
  configPath = join(dir, 'mailmapd.conf');
});

afterEach(async () => {
  await stopDaemon();
});

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe('a CLI command beside a first start of the embedded database', () => {
  it('a command that starts the embedded server itself and fails exits with its code, not 0', async () => {
    await writeConfig();
    const r = cli('domain', 'rm', 'nosuch.example');
    expect(r.stderr).toContain('no such domain');
    expect(r.status).toBe(1);
    // It stopped the server it started and gave up its ownership record.
    expect(existsSync(join(dir, 'postgres.owner'))).toBe(false);
  });

  for (const moment of ['initialising the embedded PostgreSQL', 'embedded PostgreSQL running', 'no snapshot to start from']) {
    it(`a command run when the daemon has logged "${moment}" waits for its server, and both succeed`, async () => {
      rmSync(join(dir, 'postgres'), { recursive: true, force: true });
      rmSync(join(dir, 'directory.snapshot'), { force: true });
      await writeConfig();
      await startDaemonUntil(moment);
      const add = cli('domain', 'add', 'example.org');
      expect(add.stderr).not.toMatch(/Cannot read|undefined/);
      expect(add.status).toBe(0);
      const list = cli('domain', 'list');
      expect(list.status).toBe(0);
      expect(list.stdout).toContain('example.org');
      await waitForLog('msg=ready');
      // One server ran on the directory: the daemon never logged losing it or failing to open it.
      expect(daemonLog).not.toContain('cannot open the database');
      expect(daemon?.exitCode).toBeNull();
      // The daemon answers from the database the command wrote to.
      expect(await domainsMap('example.org')).not.toBe('');
      expect(await stopDaemon()).toBe(0);
    });
  }
});
