// auth_max_staleness on the real daemon with a private PostgreSQL cluster: while the
// database is down, mail lookups (a real postmap) keep being answered from the last copy,
// logins (the real checkpassword program) too until the copy is older than the bound —
// then they get a temporary failure, said so in the log and in a metric — and logins
// work again once the database is back.

import { spawn, spawnSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCluster, createMailDatabase, type Cluster } from '../helpers/cluster.js';
import { waitFor } from '../helpers/db.js';
import { startDaemon, type Daemon } from '../helpers/daemon.js';
import { checkpasswordBinary } from '../helpers/logins.js';

function login(port: number, user: string, password: string): Promise<number | null> {
  return new Promise((resolve) => {
    const child = spawn(checkpasswordBinary, ['-s', `inet:127.0.0.1:${port}`], { stdio: ['ignore', 'ignore', 'ignore', 'pipe', 'pipe'] });
    (child.stdio[3] as NodeJS.WritableStream).on('error', () => {});
    (child.stdio[4] as NodeJS.ReadableStream).resume();
    (child.stdio[3] as NodeJS.WritableStream).end(Buffer.from(`${user}\0${password}\0\0`));
    child.once('exit', (code) => resolve(code));
  });
}

function postmap(port: number, key: string): string {
  const r = spawnSync('postmap', ['-q', key, `socketmap:inet:127.0.0.1:${port}:mailboxes`], { encoding: 'utf8' });
  return r.stdout.trim();
}

describe('auth_max_staleness', () => {
  let cluster: Cluster;
  let daemon: Daemon | undefined;
  let url: string;
  beforeAll(async () => {
    cluster = await createCluster();
    url = await createMailDatabase(
      cluster,
      [
        `INSERT INTO mailmapd.domains (name) VALUES ('example.org')`,
        `INSERT INTO mailmapd.mailboxes (address, password) VALUES ('user@example.org', '{PLAIN}secret')`,
      ].join(';\n'),
    );
  }, 60_000);
  afterAll(async () => {
    await daemon?.stop();
    cluster?.destroy();
  });

  it('past the bound a login is a temporary failure while mail lookups go on; fresh data ends it', async () => {
    daemon = await startDaemon({ databaseUrl: url, config: { auth_max_staleness: '2s' } });
    const d = daemon;
    expect(await login(d.ports.checkpassword, 'user@example.org', 'secret')).toBe(0);
    expect(postmap(d.ports.socketmap, 'user@example.org')).toBe('example.org/user/');

    cluster.stop();
    // Within the bound the last copy decides logins too: a database restart costs no login.
    expect(await login(d.ports.checkpassword, 'user@example.org', 'secret')).toBe(0);
    await waitFor(async () => (await login(d.ports.checkpassword, 'user@example.org', 'secret')) === 111, 8000, 'a stale login to be a temporary failure');
    // (That the bound is kept to the millisecond is asserted on an injected clock in
    // test/unit/authenticator.test.ts; here, in order: good logins first, then temporary failures.)
    expect(await login(d.ports.checkpassword, 'user@example.org', 'wrong')).toBe(111);
    // Mail keeps flowing from the last copy.
    expect(postmap(d.ports.socketmap, 'user@example.org')).toBe('example.org/user/');
    expect(d.logs()).toMatch(/directory is older than auth_max_staleness/);
    const metrics = await (await d.http('/metrics')).text();
    expect(Number(/^mailmapd_auth_stale_total (\d+)/m.exec(metrics)?.[1])).toBeGreaterThanOrEqual(2);

    cluster.start();
    await waitFor(async () => (await login(d.ports.checkpassword, 'user@example.org', 'secret')) === 0, 20_000, 'logins after the database is back');
  }, 60_000);
});
