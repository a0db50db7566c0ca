// Counts shared by every host, on a private primary and a hot standby made by the test
// (initdb, pg_basebackup -R), with real daemons driven over their real protocols: failed
// SMTP AUTH logins on the auth socket, Dovecot's auth policy request (`command=allow`) on
// the HTTP listener, Postfix's policy delegation on `policy_listen`. Daemon A reads the
// primary; B reads the standby with database_primary_url; C reads the standby without it
// (it cannot write: it reads the others' counts and enforces its own locally). No clock is
// asserted: every effect is polled for within a generous bound.

import { spawnSync } from 'node:child_process';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrate } from '../../src/db/schema.js';
import { createCluster, type Cluster } from '../helpers/cluster.js';
import { cliPath, freePort, startDaemon, type Daemon } from '../helpers/daemon.js';
import { waitFor } from '../helpers/db.js';
import { smtpAuth } from '../helpers/logins.js';
import { askPolicy } from '../helpers/policy-door.js';

const secret = 'shared-counts-test-secret';
const LOGIN_BOUND = 6;
const SLOW = 30_000;

let primary: Cluster;
let standby: Cluster;
let sql: pg.Client;
const daemons = new Set<Daemon>();

const settings = (): Record<string, string> => ({
  http_secret: secret,
  policy_window: '10m',
  policy_delay_after: '100',
  policy_reject_after: '100',
  policy_prefix_reject_after: '1000',
  policy_login_reject_after: String(LOGIN_BOUND),
  send_limit_hour: '4',
});

async function daemon(databaseUrl: string, extra: Record<string, string> = {}): Promise<Daemon & { policyPort: number }> {
  const policyPort = await freePort();
  const d = await startDaemon({ databaseUrl, config: { ...settings(), policy_listen: `inet:127.0.0.1:${policyPort}`, ...extra } });
  daemons.add(d);
  return Object.assign(d, { policyPort });
}

async function stop(d: Daemon): Promise<void> {
  daemons.delete(d);
  await d.stop();
}

/** Dovecot's auth policy question for `login` from `remote`: its status (-1: refused). */
async function policyStatus(d: Daemon, login: string, remote: string): Promise<number> {
  const r = await d.http('/?command=allow', {
    method: 'POST',
    body: JSON.stringify({ login, remote, pwhash: '', protocol: 'imap' }),
    headers: { 'content-type': 'application/json', authorization: `Bearer ${secret}` },
  });
  return ((await r.json()) as { status: number }).status;
}

/** `n` wrong passwords for `login` over SMTP AUTH on `d`, each from its own address. */
async function guess(d: Daemon, login: string, n: number, net: string): Promise<void> {
  for (let i = 0; i < n; i++) expect(await smtpAuth(d.ports.auth, login, `wrong-${net}-${i}`, `${net}.${i + 1}`)).toBe('FAIL');
}

const ask = askPolicy;

const sent = (port: number, user: string, recipients: number, instance: string) =>
  ask(port, { protocol_state: 'END-OF-MESSAGE', sasl_username: user, recipient_count: String(recipients), instance });
const rcpt = (port: number, user: string, instance: string) =>
  ask(port, { protocol_state: 'RCPT', sasl_username: user, recipient: 'someone@elsewhere.test', instance });

/** Failures the primary holds for a login (every host's). */
async function stored(login: string): Promise<number> {
  const r = await sql.query<{ n: string | null }>(`SELECT sum(count)::bigint AS n FROM mailmapd.login_failures WHERE login = $1 AND source = ''`, [
    `l:${login}`,
  ]);
  return Number(r.rows[0]?.n ?? 0);
}

beforeAll(async () => {
  primary = await createCluster();
  sql = new pg.Client({ connectionString: primary.url });
  sql.on('error', () => {});
  await sql.connect();
  await migrate(sql);
  const users = ['alice', 'bob', 'carol', 'dave', 'erin', 'frank'];
  await sql.query(`INSERT INTO mailmapd.domains (name) VALUES ('example.org')`);
  for (const u of users) await sql.query(`INSERT INTO mailmapd.mailboxes (address, password) VALUES ($1, '{PLAIN}right')`, [`${u}@example.org`]);
  standby = await createCluster({ standbyOf: primary });
}, 120_000);

afterAll(async () => {
  for (const d of daemons) await d.stop();
  await sql?.end().catch(() => {});
  standby?.destroy();
  primary?.destroy();
});

describe('counts shared by every host', { timeout: 120_000 }, () => {
  let a: Daemon & { policyPort: number };
  let b: Daemon & { policyPort: number };

  it('guesses split over a daemon on the primary and one on the standby meet one per-login bound', async () => {
    a = await daemon(primary.url);
    b = await daemon(standby.url, { database_primary_url: primary.url });
    await guess(a, 'alice@example.org', LOGIN_BOUND / 2, '192.0.2');
    await guess(b, 'alice@example.org', LOGIN_BOUND / 2, '198.51.100');
    // Neither made the bound alone; together they did, and both refuse.
    await waitFor(async () => (await policyStatus(a, 'alice@example.org', '203.0.113.7')) === -1, SLOW, 'a refusing alice');
    await waitFor(async () => (await policyStatus(b, 'alice@example.org', '203.0.113.7')) === -1, SLOW, 'b refusing alice');
    // What a user notices: the right password, from a new address, is refused on both.
    expect(await smtpAuth(a.ports.auth, 'alice@example.org', 'right', '203.0.113.8')).toBe('FAIL');
    expect(await smtpAuth(b.ports.auth, 'alice@example.org', 'right', '203.0.113.8')).toBe('FAIL');
    // Each increment once in the table: never counted twice.
    expect(await stored('alice@example.org')).toBe(LOGIN_BOUND);
    // Another login is untouched.
    expect(await policyStatus(b, 'bob@example.org', '203.0.113.7')).toBe(0);
    // The shared state in the metrics: entries, bytes, and a merge that happened.
    const metrics = await (await b.http('/metrics')).text();
    const value = (name: string) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(metrics)?.[1]);
    expect(value('mailmapd_policy_shared_entries\\{kind="failures"\\}')).toBeGreaterThan(0);
    expect(value('mailmapd_policy_shared_bytes')).toBeGreaterThan(0);
    expect(Number.isFinite(value('mailmapd_policy_shared_merge_age_seconds'))).toBe(true);
  });

  it('a send limit split over two daemons holds, and send-usage shows the shared count', async () => {
    expect(await sent(a.policyPort, 'bob@example.org', 2, 'm1')).toBe('DUNNO');
    expect(await sent(b.policyPort, 'bob@example.org', 2, 'm2')).toBe('DUNNO');
    // Four of four sent (two on each): the next recipient is deferred on both.
    await waitFor(async () => (await rcpt(a.policyPort, 'bob@example.org', 'm3')).startsWith('4'), SLOW, 'a deferring bob');
    await waitFor(async () => (await rcpt(b.policyPort, 'bob@example.org', 'm4')).startsWith('4'), SLOW, 'b deferring bob');
    // Through b's configuration: read from the standby, as a panel host would.
    await waitFor(
      () => spawnSync(process.execPath, [cliPath, '-c', b.configPath, 'send-usage', 'bob@example.org'], { encoding: 'utf8' }).stdout.includes('hour=4'),
      SLOW,
      'send-usage on the standby',
    );
    const cli = spawnSync(process.execPath, [cliPath, '-c', b.configPath, 'send-usage', 'bob@example.org'], { encoding: 'utf8' });
    expect(cli.stdout + cli.stderr).toContain('bob@example.org hour=4 day=4');
  });

  it('a restart keeps the counts: a daemon started again refuses what it counted before', async () => {
    await guess(a, 'carol@example.org', LOGIN_BOUND, '192.0.2');
    expect(await policyStatus(a, 'carol@example.org', '203.0.113.7')).toBe(-1);
    await stop(a);
    a = await daemon(primary.url);
    // Read back at start (the table holds what the old process wrote), not counted afresh.
    await waitFor(async () => (await policyStatus(a, 'carol@example.org', '203.0.113.7')) === -1, SLOW, 'the restarted daemon refusing carol');
    expect(await stored('carol@example.org')).toBe(LOGIN_BOUND);
  });

  it('the primary away and back: counted and enforced locally meanwhile, then merged, nothing lost', async () => {
    primary.stop();
    await sql.end().catch(() => {});
    try {
      await guess(a, 'dave@example.org', LOGIN_BOUND, '192.0.2');
      await guess(b, 'erin@example.org', LOGIN_BOUND - 1, '198.51.100');
      // Local counts still hold while the database is away.
      expect(await policyStatus(a, 'dave@example.org', '203.0.113.7')).toBe(-1);
      expect(await policyStatus(b, 'erin@example.org', '203.0.113.7')).toBe(0);
    } finally {
      primary.start();
    }
    sql = new pg.Client({ connectionString: primary.url });
    sql.on('error', () => {});
    await sql.connect();
    // Both ways: a's increments reach b, b's reach a; every one of them once in the table.
    await waitFor(async () => (await policyStatus(b, 'dave@example.org', '203.0.113.7')) === -1, SLOW, 'b refusing dave');
    await waitFor(async () => (await stored('erin@example.org')) === LOGIN_BOUND - 1, SLOW, "b's increments on the primary");
    await guess(a, 'erin@example.org', 1, '192.0.2');
    await waitFor(async () => (await policyStatus(b, 'erin@example.org', '203.0.113.7')) === -1, SLOW, 'b refusing erin');
    expect(await stored('dave@example.org')).toBe(LOGIN_BOUND);
    expect(await stored('erin@example.org')).toBe(LOGIN_BOUND);
  });

  it('a daemon on the standby without database_primary_url reads the others and enforces its own, writing nothing', async () => {
    const c = await daemon(standby.url);
    try {
      // The others' counts, read from the standby.
      await waitFor(async () => (await policyStatus(c, 'alice@example.org', '203.0.113.7')) === -1, SLOW, 'c refusing alice');
      // Its own, enforced locally.
      await guess(c, 'frank@example.org', LOGIN_BOUND, '192.0.2');
      expect(await policyStatus(c, 'frank@example.org', '203.0.113.7')).toBe(-1);
      // Once it has read something newer than its own guesses, they are still not in the table: it cannot write.
      await guess(a, 'bob@example.org', LOGIN_BOUND, '192.0.2');
      await waitFor(async () => (await policyStatus(c, 'bob@example.org', '203.0.113.7')) === -1, SLOW, 'c refusing bob');
      expect(await stored('frank@example.org')).toBe(0);
      expect(await policyStatus(b, 'frank@example.org', '203.0.113.7')).toBe(0);
    } finally {
      await stop(c);
    }
  });
});
