// A panel found in one of its releases' layouts (Modoboa 1.0's admin_user, 2.x's core_user):
// `mailmapd check` says which it found, and on a release whose tables differ names each
// missing table, column or type on a line of its own. And Modoboa's alias expire_at: an
// alias stops answering when its time passes, with no write to the database (the clock is
// injected: the test moves time, not the database).

import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Clock } from '../../src/sync/alias-expiry.js';
import { modoboaProfile } from '../../src/sync/profiles/modoboa.js';
import { cliPath } from '../helpers/daemon.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { modoboa10, modoboa2, panelDdl } from '../helpers/panel-rows.js';
import { startTestSync } from '../helpers/sync.js';

let dir: string;
const dbs: TestDatabase[] = [];

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'mailmapd-layouts-'));
});
afterAll(async () => {
  for (const db of dbs) await db.drop();
  rmSync(dir, { recursive: true, force: true });
});

async function panelDb(ddl: string, rows: string[]): Promise<TestDatabase> {
  const db = await createTestDatabase({ migrate: false });
  dbs.push(db);
  await db.sql.query(ddl);
  await db.sql.query(rows.join('\n'));
  return db;
}

function cli(db: TestDatabase, args: string[]) {
  const config = join(dir, `${db.name}.conf`);
  writeFileSync(config, `database_url = ${db.url}\nschema = modoboa\n`);
  const r = spawnSync(process.execPath, [cliPath, '-c', config, ...args], { encoding: 'utf8', env: { ...process.env, MAILMAPD_CONFIG: '' } });
  return { code: r.status, out: r.stdout.split('\n').filter((l) => l !== '') };
}

const example = { id: 1, name: 'example.org' };

describe('mailmapd check with schema = modoboa', () => {
  it('says which layout it found, for each of the two, and triggers install works on both', async () => {
    const v2 = await panelDb(panelDdl('modoboa-2'), [modoboa2.domain(1, 'example.org'), modoboa2.mailbox(2, 'alice', example, '{PLAIN}x')]);
    const v1 = await panelDb(panelDdl('modoboa-1.0'), [modoboa10.domain(1, 'example.org'), modoboa10.mailbox(2, 'alice', example, '{PLAIN}x')]);
    for (const [db, layout] of [
      [v2, 'Modoboa 2.x (core_user)'],
      [v1, 'Modoboa 1.0 (admin_user)'],
    ] as const) {
      const install = cli(db, ['triggers', 'install']);
      expect(install.code, install.out.join('\n')).toBe(0);
      const r = cli(db, ['check']);
      expect(r.out).toContain(`schema modoboa: the database holds ${layout}`);
      expect(r.code, r.out.join('\n')).toBe(0);
    }
  });

  it('on other tables, names each missing table, column and type in one line', async () => {
    const db = await panelDb(panelDdl('modoboa-2'), [modoboa2.domain(1, 'example.org')]);
    await db.sql.query(`ALTER TABLE admin_alias DROP COLUMN expire_at;
      ALTER TABLE admin_mailbox DROP CONSTRAINT admin_mailbox_quota_check, ALTER COLUMN quota TYPE text;
      DROP TABLE admin_mailboxoperation;`);
    const r = cli(db, ['check']);
    expect(r.code).toBe(2);
    expect(r.out.filter((l) => l.startsWith('problem: '))).toEqual([
      'problem: schema modoboa (Modoboa 2.x (core_user)): column admin_mailbox.quota has type text, expected an integer',
      'problem: schema modoboa (Modoboa 2.x (core_user)): table admin_mailboxoperation is missing',
      'problem: schema modoboa (Modoboa 2.x (core_user)): table admin_alias has no column expire_at (timestamp with time zone)',
    ]);
  });
});

/** A clock the test moves; timers fire when it passes their time. */
function fakeClock(start: number): Clock & { advance(ms: number): void; pending(): number } {
  let now = start;
  let timers: Array<{ at: number; fn: () => void }> = [];
  return {
    now: () => now,
    setTimer(fn, ms) {
      const t = { at: now + ms, fn };
      timers.push(t);
      return { cancel: () => (timers = timers.filter((x) => x !== t)) };
    },
    advance(ms) {
      now += ms;
      for (;;) {
        const due = timers.filter((t) => t.at <= now).sort((a, b) => a.at - b.at)[0];
        if (due === undefined) return;
        timers = timers.filter((t) => t !== due);
        due.fn();
      }
    },
    pending: () => timers.length,
  };
}

describe("Modoboa's alias expire_at", () => {
  const end = Date.parse('2030-06-01T12:00:00Z');
  const rows = [
    modoboa2.domain(1, 'example.org'),
    modoboa2.mailbox(2, 'alice', example, '{PLAIN}x'),
    modoboa2.mailbox(3, 'bob', example, '{PLAIN}x'),
    modoboa2.alias(10, 'temp@example.org', 1, [{ address: 'alice@example.org', mailbox: 2 }, { address: 'out@elsewhere.test' }], {
      expireAt: '2030-06-01 12:00:00+00',
    }),
    modoboa2.alias(11, 'later@example.org', 1, [{ address: 'bob@example.org', mailbox: 3 }], { expireAt: '2030-06-02 12:00:00+00' }),
    // The same address twice, one row without an end: only the ended destination goes.
    modoboa2.alias(12, 'mixed@example.org', 1, [{ address: 'alice@example.org', mailbox: 2 }], { expireAt: '2030-06-01 12:00:00+00' }),
    modoboa2.alias(13, 'mixed@example.org', 1, [{ address: 'bob@example.org', mailbox: 3 }]),
    modoboa2.alias(14, 'past@example.org', 1, [{ address: 'bob@example.org', mailbox: 3 }], { expireAt: '2030-06-01 11:00:00+00' }),
  ];

  it('an alias stops answering when its time passes, with no write and no re-read', async () => {
    const db = await panelDb(panelDdl('modoboa-2'), rows);
    expect(cli(db, ['triggers', 'install']).code).toBe(0);
    const clock = fakeClock(end - 60_000);
    const { sync, directory } = startTestSync({ databaseUrl: db.url, profile: modoboaProfile, clock });
    try {
      await sync.firstLoad();
      expect(directory.alias('temp@example.org')).toBe('alice@example.org,out@elsewhere.test');
      expect(directory.alias('mixed@example.org')).toBe('alice@example.org,bob@example.org');
      expect(directory.alias('past@example.org')).toBeUndefined();
      const before = sync.status();
      clock.advance(59_999);
      expect(directory.alias('temp@example.org')).toBe('alice@example.org,out@elsewhere.test');
      clock.advance(1);
      expect(directory.alias('temp@example.org')).toBeUndefined();
      expect(directory.alias('mixed@example.org')).toBe('bob@example.org');
      expect(directory.alias('later@example.org')).toBe('bob@example.org');
      // The self aliases and the mailboxes are untouched; the next end is still armed.
      expect(directory.alias('alice@example.org')).toBe('alice@example.org');
      expect(clock.pending()).toBe(1);
      clock.advance(86_400_000);
      expect(directory.alias('later@example.org')).toBeUndefined();
      expect(clock.pending()).toBe(0);
      // Nothing was written: no change reached the change log, no catch-up re-read anything.
      expect(sync.status()).toMatchObject({ fullLoads: before.fullLoads });
      const changes = await db.sql.query('SELECT count(*)::int AS n FROM mailmapd.changes WHERE key IS NOT NULL');
      expect(changes.rows[0].n).toBe(0);
    } finally {
      await sync.stop();
    }
  });

  it('a daemon resumed from a saved position learns the ends with its first catch-up', async () => {
    const db = await panelDb(panelDdl('modoboa-2'), rows);
    expect(cli(db, ['triggers', 'install']).code).toBe(0);
    let saved: unknown;
    const first = startTestSync({ databaseUrl: db.url, profile: modoboaProfile, clock: fakeClock(end - 60_000), onApplied: (p) => (saved = p) });
    await first.sync.firstLoad();
    await first.sync.stop();
    // The saved directory (as a snapshot would give it back) and its position.
    const clock = fakeClock(end - 60_000);
    const { sync, directory } = startTestSync({ databaseUrl: db.url, profile: modoboaProfile, clock, directory: first.directory, resume: { position: saved } });
    try {
      await sync.firstLoad();
      expect(sync.status().fullLoads).toBe(0);
      clock.advance(60_000);
      expect(directory.alias('temp@example.org')).toBeUndefined();
    } finally {
      await sync.stop();
    }
  });
});
