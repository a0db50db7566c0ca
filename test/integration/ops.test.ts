// Operations as an administrator sees them: metrics that move with real traffic, readiness
// that follows PostgreSQL, SIGHUP re-opening listeners without a reload, and SIGTERM
// finishing what is in flight.

import { connect } from 'node:net';
import { join } from 'node:path';
import { readFileSync, writeFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, waitFor, type TestDatabase } from '../helpers/db.js';
import { startDaemon, type Daemon } from '../helpers/daemon.js';
import { authPlainOverTcp } from '../helpers/logins.js';
import { socketmapClient } from '../helpers/socketmap-client.js';

function metricValue(text: string, name: string, labels: Record<string, string> = {}): number {
  let total = 0;
  let found = false;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const m = /^([a-z_]+)(\{[^}]*\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const ls = m[2] ?? '';
    if (Object.entries(labels).every(([k, v]) => ls.includes(`${k}="${v}"`))) {
      total += Number(m[3]);
      found = true;
    }
  }
  return found ? total : NaN;
}

/** One SASL PLAIN login over the Dovecot auth-client protocol, as Postfix sends it. */
const authPlain = (port: number, user: string, pass: string) => authPlainOverTcp(port, user, pass, ['rip=192.0.2.9']);

describe('operations', () => {
  let db: TestDatabase;
  let daemon: Daemon;
  beforeAll(async () => {
    db = await createTestDatabase();
    await db.sql.query(`
      INSERT INTO mailmapd.domains (name) VALUES ('example.org');
      INSERT INTO mailmapd.mailboxes (address, password) VALUES ('alice@example.org', '{PLAIN}right');`);
    daemon = await startDaemon({ databaseUrl: db.url });
  });
  afterAll(async () => {
    await daemon?.stop();
    await db?.drop();
  });

  it('metrics move with real lookups and logins, labelled by protocol, map and result', async () => {
    const c = await socketmapClient({ port: daemon.ports.socketmap });
    for (let i = 0; i < 5; i++) expect(await c.query('mailboxes', 'alice@example.org')).toBe('OK example.org/alice/');
    for (let i = 0; i < 3; i++) expect(await c.query('mailboxes', 'nobody@example.org')).toMatch(/^NOTFOUND ?$/);
    expect(await c.query('nosuchmap', 'x')).toMatch(/^TEMP /);
    c.close();
    expect(await authPlain(daemon.ports.auth, 'alice@example.org', 'right')).toMatch(/^OK\t1\tuser=alice@example\.org/);
    expect(await authPlain(daemon.ports.auth, 'alice@example.org', 'wrong')).toMatch(/^FAIL\t1/);

    const text = await (await daemon.http('/metrics')).text();
    const lookups = (labels: Record<string, string>) => metricValue(text, 'mailmapd_lookup_duration_seconds_count', labels);
    expect(lookups({ protocol: 'socketmap', map: 'mailboxes', result: 'ok' })).toBe(5);
    expect(lookups({ protocol: 'socketmap', map: 'mailboxes', result: 'notfound' })).toBe(3);
    expect(lookups({ protocol: 'socketmap', result: 'temp' })).toBe(1);
    expect(lookups({ protocol: 'auth', result: 'ok' })).toBe(1);
    expect(lookups({ protocol: 'auth', result: 'fail' })).toBe(1);
    // Microsecond buckets exist and the fast answers landed in the low ones.
    expect(metricValue(text, 'mailmapd_lookup_duration_seconds_bucket', { protocol: 'socketmap', map: 'mailboxes', result: 'ok', le: '0.01' })).toBe(5);
    expect(text).toMatch(/mailmapd_lookup_duration_seconds_bucket\{le="0\.00001"/);
    expect(metricValue(text, 'mailmapd_password_verifications_total', { scheme: 'PLAIN' })).toBeGreaterThanOrEqual(1);
    expect(metricValue(text, 'mailmapd_connections_total', { listener: 'socketmap' })).toBeGreaterThanOrEqual(1);
    expect(metricValue(text, 'mailmapd_directory_entries', { table: 'mailbox' })).toBe(1);
    expect(metricValue(text, 'mailmapd_sync_seconds_since_last_success')).toBeLessThan(5);
    expect(text).toMatch(/^mailmapd_nodejs_eventloop_lag_seconds /m);
    expect(text).toMatch(/^mailmapd_process_resident_memory_bytes /m);
    expect(text).not.toMatch(/alice|192\.0\.2\.9/);
  });

  it('SIGHUP opens a new socketmap listener without reloading the directory, keeping open connections', async () => {
    const before = await socketmapClient({ port: daemon.ports.socketmap });
    expect(await before.query('domains', 'example.org')).toBe('OK example.org');
    const loads = daemon.logs().split('directory loaded').length;
    const path = join(daemon.dir, 'socketmap.sock');
    const conf = readFileSync(daemon.configPath, 'utf8').replace(/^socketmap_listen = (.*)$/m, `socketmap_listen = $1, unix:${path}`);
    writeFileSync(daemon.configPath, conf);
    daemon.process.kill('SIGHUP');
    await waitFor(() => daemon.logs().includes('configuration reloaded'), 5000, 'reload');
    const viaUnix = await socketmapClient({ path });
    expect(await viaUnix.query('mailboxes', 'Alice@Example.ORG')).toBe('OK example.org/alice/');
    expect(await before.query('domains', 'example.org')).toBe('OK example.org');
    expect(daemon.logs().split('directory loaded').length).toBe(loads);
    viaUnix.close();
    before.close();
  });

  it('SIGTERM answers every request already sent, then exits 0', async () => {
    const clients = await Promise.all([1, 2, 3, 4].map(() => socketmapClient({ port: daemon.ports.socketmap })));
    let answered = 0;
    let sent = 0;
    let stop = false;
    const loops = clients.map(async (c) => {
      while (!stop) {
        sent++;
        try {
          const r = await c.query('mailboxes', 'alice@example.org');
          if (r === 'OK example.org/alice/') answered++;
        } catch {
          return; // closed after its last reply: the request was never sent
        }
      }
    });
    await new Promise((r) => setTimeout(r, 200));
    const code = daemon.stop('SIGTERM');
    await new Promise((r) => setTimeout(r, 300));
    stop = true;
    await Promise.all(loops);
    expect(await code).toBe(0);
    expect(answered).toBeGreaterThan(50);
    // A request is lost only if it was written and the connection closed without its reply;
    // each client can have at most that one in flight when the daemon ends it.
    expect(sent - answered).toBeLessThanOrEqual(clients.length);
    expect(daemon.logs()).toMatch(/msg=stopped/);
  });

  it('SIGTERM does not wait for idle clients that hold their connections, as Postfix and Dovecot do', async () => {
    // Postfix's smtpd, proxymap and cleanup, and Dovecot's auth workers, keep a connection
    // open between requests and read it only for the next one: the daemon's FIN goes unread.
    const d = await startDaemon({ databaseUrl: db.url });
    const held = await Promise.all(
      [
        [d.ports.socketmap, '23:mailboxes a@example.org,'],
        [d.ports.auth, 'VERSION\t1\t2\nCPID\t7\n'],
        [d.ports.checkpassword, ''],
        [d.ports.http, 'GET /healthz HTTP/1.1\r\nHost: mailmapd\r\n\r\n'],
      ].map(
        ([port, request]) =>
          new Promise<ReturnType<typeof connect>>((resolve, reject) => {
            const s = connect({ port: port as number, host: '127.0.0.1', allowHalfOpen: true }, () => {
              if (request !== '') s.write(request as string);
              resolve(s);
            });
            s.on('error', reject);
          }),
      ),
    );
    await new Promise((r) => setTimeout(r, 200)); // the requests answered, the connections idle
    expect(await d.stop('SIGTERM')).toBe(0);
    // Nothing was in flight: every listener closed its idle connections at once, none was
    // left for the grace period (5 s) to cut — which the daemon would have logged.
    expect(d.logs()).toMatch(/msg=stopped/);
    expect(d.logs()).not.toMatch(/grace period over/);
    for (const s of held) s.destroy();
  });
});
