// What an administrator meets following the README: `npm start` stops on the signal sent to
// the PID they see (npm's), and a password piped twice is refused instead of being stored as
// one two-line password that never logs in.

import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cliPath, freePort } from '../helpers/daemon.js';
import { createTestDatabase, waitFor, type TestDatabase } from '../helpers/db.js';

const repo = fileURLToPath(new URL('../..', import.meta.url));
let db: TestDatabase;
let config: string;

function cli(args: string[], input = '') {
  const r = spawnSync(process.execPath, [cliPath, '-c', config, ...args], { input, encoding: 'utf8', env: { ...process.env, MAILMAPD_CONFIG: '' } });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

beforeAll(async () => {
  db = await createTestDatabase();
  config = join(mkdtempSync(join(tmpdir(), 'mailmapd-admin-')), 'mailmapd.conf');
  writeFileSync(config, `database_url = ${db.url}\n`);
  expect(cli(['domain', 'add', 'example.org']).code).toBe(0);
});

afterAll(async () => {
  await db?.drop();
});

describe('a new password on stdin', () => {
  it('is the first line, one final newline optional', async () => {
    expect(cli(['mailbox', 'add', 'alice@example.org'], 'pw-alice\n').code).toBe(0);
    expect(cli(['mailbox', 'add', 'bob@example.org'], 'pw-bob').code).toBe(0);
    expect((await db.sql.query('SELECT count(*)::int AS n FROM mailmapd.mailboxes')).rows[0].n).toBe(2);
  });

  it('given twice (two lines) is refused with exit 2 and stores nothing', async () => {
    const add = cli(['mailbox', 'add', 'carol@example.org'], 'pw-carol\npw-carol\n');
    expect(add.code).toBe(2);
    expect(add.err).toMatch(/line break/);
    expect((await db.sql.query("SELECT count(*)::int AS n FROM mailmapd.mailboxes WHERE address = 'carol@example.org'")).rows[0].n).toBe(0);
    const before = (await db.sql.query("SELECT password FROM mailmapd.mailboxes WHERE address = 'alice@example.org'")).rows[0].password;
    const passwd = cli(['mailbox', 'passwd', 'alice@example.org'], 'new\r\nnew\r\n');
    expect(passwd.code).toBe(2);
    expect((await db.sql.query("SELECT password FROM mailmapd.mailboxes WHERE address = 'alice@example.org'")).rows[0].password).toBe(before);
  });
});

describe('npm start', () => {
  it('stops on SIGINT sent to npm, the process the administrator started', async () => {
    const http = await freePort();
    const listeners = { SOCKETMAP_LISTEN: await freePort(), AUTH_LISTEN: await freePort(), CHECKPASSWORD_LISTEN: await freePort() };
    const env: Record<string, string | undefined> = {
      ...process.env,
      MAILMAPD_CONFIG: '',
      MAILMAPD_DATABASE_URL: db.url,
      MAILMAPD_HTTP_LISTEN: `127.0.0.1:${http}`,
    };
    for (const [key, port] of Object.entries(listeners)) env[`MAILMAPD_${key}`] = `inet:127.0.0.1:${port}`;
    const npm = spawn('npm', ['start'], { cwd: repo, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let log = '';
    npm.stdout!.on('data', (d) => (log += d));
    npm.stderr!.on('data', (d) => (log += d));
    let exitCode: number | null | undefined;
    const exited = new Promise<number | null>((resolve) =>
      npm.once('exit', (code) => {
        exitCode = code;
        resolve(code);
      }),
    );
    const answers = async () => {
      try {
        return (await fetch(`http://127.0.0.1:${http}/healthz`)).status === 200;
      } catch {
        return false;
      }
    };
    try {
      // An npm that exits early fails at once, with what it printed (the log as it is then, not at the start).
      await waitFor(
        async () => {
          if (exitCode !== undefined) throw new Error(`npm start exited with ${exitCode} before serving /healthz; it printed:\n${log.slice(-3000)}`);
          return answers();
        },
        30_000,
        'npm start to serve /healthz',
      ).catch((err: unknown) => {
        throw exitCode === undefined ? new Error(`${String(err)}; npm start printed:\n${log.slice(-3000)}`) : err;
      });
      npm.kill('SIGINT');
      await waitFor(async () => !(await answers()), 10_000, 'the daemon to stop after SIGINT to npm');
      expect(await exited).toBe(0);
    } finally {
      npm.kill('SIGKILL');
    }
  });
});
