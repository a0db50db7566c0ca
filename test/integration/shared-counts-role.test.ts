// The daemon as a role that does not own schema mailmapd, granted exactly what the README
// (Many hosts) says a daemon's role needs: it reads the directory, and its write-back adds
// the shared counts — failed logins, sending counts — and prunes them, with no "permission
// denied" anywhere in its log.

import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, startDaemon, type Daemon } from '../helpers/daemon.js';
import { createTestDatabase, serverUrl, waitFor, type TestDatabase } from '../helpers/db.js';
import { smtpAuth } from '../helpers/logins.js';
import { askPolicy } from '../helpers/policy-door.js';

const role = `mailmapd_daemon_${randomBytes(4).toString('hex')}`;
let db: TestDatabase;
let daemon: Daemon;
let policyPort: number;

beforeAll(async () => {
  db = await createTestDatabase();
  await db.sql.query(`
    INSERT INTO mailmapd.domains (name) VALUES ('example.org');
    INSERT INTO mailmapd.mailboxes (address, password, send_limit_hour) VALUES ('alice@example.org', '{PLAIN}pw', 100);
    CREATE ROLE ${role} LOGIN;
    GRANT CONNECT ON DATABASE ${db.name} TO ${role};
    -- The README's grants for a daemon's role (Many hosts), nothing more:
    GRANT USAGE ON SCHEMA mailmapd TO ${role};
    GRANT SELECT ON ALL TABLES IN SCHEMA mailmapd TO ${role};
    GRANT SELECT ON mailmapd.changes_id_seq TO ${role};
    GRANT UPDATE, DELETE ON mailmapd.changes, mailmapd.sync_state TO ${role};
    GRANT INSERT, UPDATE ON mailmapd.last_logins, mailmapd.quota_usage TO ${role};
    GRANT INSERT, UPDATE, DELETE ON mailmapd.send_counts, mailmapd.send_usage,
      mailmapd.login_failures, mailmapd.login_sources TO ${role};`);
  const u = new URL(db.url);
  u.username = role;
  policyPort = await freePort();
  daemon = await startDaemon({ databaseUrl: u.toString(), config: { policy_listen: `inet:127.0.0.1:${policyPort}` } });
});

afterAll(async () => {
  await daemon?.stop();
  await db?.sql.query(`DROP OWNED BY ${role}`);
  await db?.drop();
  const admin = new pg.Client({ connectionString: serverUrl });
  await admin.connect();
  await admin.query(`DROP ROLE IF EXISTS ${role}`);
  await admin.end();
});

describe('a daemon role granted what the README lists', () => {
  it('writes the shared counts of failed logins and of sent mail', async () => {
    for (let i = 0; i < 3; i++) expect(await smtpAuth(daemon.ports.auth, 'alice@example.org', `wrong-${i}`, `192.0.2.${i + 1}`)).toBe('FAIL');
    const sender = { protocol_name: 'ESMTP', sasl_username: 'alice@example.org', sender: 'alice@example.org' };
    expect(await askPolicy(policyPort, { ...sender, protocol_state: 'END-OF-MESSAGE', recipient_count: '2' })).toBe('DUNNO');
    const count = async (sql: string) => Number((await db.sql.query<{ n: string | null }>(sql)).rows[0]?.n ?? 0);
    await waitFor(
      async () => (await count(`SELECT sum(count) AS n FROM mailmapd.login_failures WHERE login = 'l:alice@example.org' AND source = ''`)) === 3,
      15_000,
      'three failures in login_failures',
    );
    await waitFor(
      async () => (await count(`SELECT sum(count) AS n FROM mailmapd.send_counts WHERE address = 'alice@example.org'`)) === 2,
      15_000,
      'two recipients in send_counts',
    );
    expect(daemon.logs()).not.toMatch(/permission denied/);
  });
});
