// A profile whose keys a join computes (Modoboa: a password lives on the user row, the
// mailbox address on the mailbox and domain rows). A password change held open while
// another transaction renames the mailbox computes its key in its own, older snapshot:
// the old address. When it commits last, the renamed mailbox must still get the new
// password, not keep the old one.

import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { changeLogSql } from '../../src/db/schema.js';
import { createDirectory } from '../../src/directory/directory.js';
import { modoboa2Profile } from '../../src/sync/profiles/modoboa.js';
import type { Sync } from '../../src/sync/sync.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { modoboa2, panelDdl } from '../helpers/panel-rows.js';
import { startTestSync } from '../helpers/sync.js';

let db: TestDatabase;
let sync: Sync;
const directory = createDirectory({ recipientDelimiter: '+' });

beforeAll(async () => {
  db = await createTestDatabase({ migrate: false });
  // Modoboa 2.x's own tables, one mailbox as Modoboa writes it.
  await db.sql.query(panelDdl('modoboa-2'));
  await db.sql.query([modoboa2.domain(1, 'example.org'), modoboa2.mailbox(2, 'alice', { id: 1, name: 'example.org' }, '{PLAIN}old')].join('\n'));
  await db.sql.query(changeLogSql);
  for (const w of modoboa2Profile.watches ?? []) {
    const sql = w.keyExpr.replace(/\{\{\s*(\w+)\s*\}\}/g, 'public.$1');
    await db.sql.query('SELECT mailmapd.watch_table($1::regclass, $2, $3)', [`public.${w.table}`, w.kind, sql]);
  }
  sync = startTestSync({
    databaseUrl: db.url,
    profile: modoboa2Profile,
    directory,
  }).sync;
  await sync.firstLoad();
});

afterAll(async () => {
  await sync?.stop();
  await db?.drop();
});

describe('a late commit on a joined profile', () => {
  it('a password change committed after a rename reaches the renamed mailbox', async () => {
    expect(directory.user('alice@example.org')).toMatchObject({ status: 'ok', password: '{PLAIN}old' });
    const slow = new pg.Client({ connectionString: db.url });
    await slow.connect();
    try {
      await slow.query('BEGIN');
      await slow.query(`UPDATE core_user SET password = '{PLAIN}new' WHERE id = 2`);
      await db.sql.query(`UPDATE admin_mailbox SET address = 'alice2' WHERE id = 2`);
      await sync.kick();
      expect(directory.user('alice@example.org').status).toBe('unknown');
      expect(directory.user('alice2@example.org')).toMatchObject({ status: 'ok', password: '{PLAIN}old' });
      await slow.query('COMMIT');
    } finally {
      await slow.end();
    }
    await sync.kick();
    expect(directory.user('alice2@example.org')).toMatchObject({ status: 'ok', password: '{PLAIN}new' });
  });

  it('a change from a transaction that began after the last read costs no reload', async () => {
    const loads = sync.status().fullLoads;
    await db.sql.query(`UPDATE core_user SET password = '{PLAIN}newer' WHERE id = 2`);
    await sync.kick();
    expect(directory.user('alice2@example.org')).toMatchObject({ password: '{PLAIN}newer' });
    expect(sync.status().fullLoads).toBe(loads);
  });
});
