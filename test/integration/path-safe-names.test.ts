// A mailbox's home is built from its domain and local part (/var/vmail/%d/%n): a local
// part like `../other/x` or a domain `..` would give it a home inside another mailbox or
// outside the mail store. The schema refuses such names, the CLI refuses them with exit
// code 2, an upgraded database keeps (and `mailmapd check` lists) rows written before,
// and the daemon never hands Dovecot a home built from them.

import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAuthenticator } from '../../src/auth/authenticator.js';
import { migrate, migrations } from '../../src/db/schema.js';
import { createDirectory, emptyData } from '../../src/directory/directory.js';
import { userdbFields } from '../../src/directory/userdb.js';
import { createLogger } from '../../src/log.js';
import { createMetrics } from '../../src/metrics.js';
import { createHashPool, type HashPool } from '../../src/password/pool.js';
import { cliPath } from '../helpers/daemon.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';

const dir = mkdtempSync(join(tmpdir(), 'mailmapd-paths-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function cli(config: string, args: string[], input = '') {
  const r = spawnSync(process.execPath, [cliPath, '-c', config, ...args], { input, encoding: 'utf8', env: { ...process.env, MAILMAPD_CONFIG: '' } });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

function configFor(db: TestDatabase): string {
  const path = join(dir, `${db.name}.conf`);
  writeFileSync(path, `database_url = ${db.url}\n`);
  return path;
}

const bad = ['../other/x@example.org', 'a/b@example.org', '.hidden@example.org', 'a..b@example.org', '..@example.org'];

describe('the native schema', () => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await createTestDatabase();
    await db.sql.query(`INSERT INTO mailmapd.domains (name) VALUES ('example.org')`);
  });
  afterAll(async () => {
    await db?.drop();
  });

  it('refuses local parts and domains that climb out of a home directory', async () => {
    for (const a of bad) {
      await expect(db.sql.query('INSERT INTO mailmapd.mailboxes (address) VALUES ($1)', [a]), a).rejects.toThrow(/path_safe/);
    }
    for (const d of ['..', '.', 'a/b', '.example.org']) {
      await expect(db.sql.query('INSERT INTO mailmapd.domains (name) VALUES ($1)', [d]), d).rejects.toThrow(/path_safe/);
      await expect(db.sql.query(`INSERT INTO mailmapd.alias_domains (name, target) VALUES ($1, 'example.org')`, [d]), d).rejects.toThrow(/path_safe/);
    }
    await db.sql.query(`INSERT INTO mailmapd.mailboxes (address) VALUES ('first.last@example.org'), ('o''neil+x@example.org')`);
  });

  it('mailbox add refuses them with exit code 2 and changes nothing', async () => {
    const config = configFor(db);
    for (const a of bad) {
      const r = cli(config, ['mailbox', 'add', a], 'pw\n');
      expect(r.code, a).toBe(2);
      expect(r.err).toMatch(/cannot be a mailbox/);
    }
    const n = await db.sql.query(`SELECT count(*)::int AS n FROM mailmapd.mailboxes`);
    expect(n.rows[0].n).toBe(2);
    expect(cli(config, ['check']).code).toBe(0);
  });
});

describe('a database upgraded with such rows in it', () => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await createTestDatabase({ migrate: false });
    await db.sql.query(migrations[0]!.sql);
    await db.sql.query(`CREATE TABLE mailmapd.schema_version (version integer PRIMARY KEY, description text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now());
      INSERT INTO mailmapd.schema_version (version, description) VALUES (1, 'v1');
      INSERT INTO mailmapd.domains (name) VALUES ('example.org');
      INSERT INTO mailmapd.mailboxes (address) VALUES ('../other/x@example.org'), ('fine@example.org')`);
  });
  afterAll(async () => {
    await db?.drop();
  });

  it('migrates, keeps the rows, refuses new ones, and check lists the old', async () => {
    expect((await migrate(db.sql)).applied).toEqual(migrations.filter((m) => m.version > 1).map((m) => m.version));
    const v = await db.sql.query(`SELECT conname, convalidated FROM pg_constraint WHERE conname LIKE '%path_safe' ORDER BY 1`);
    expect(v.rows).toEqual([
      { conname: 'alias_domains_name_path_safe', convalidated: true },
      { conname: 'domains_name_path_safe', convalidated: true },
      { conname: 'mailboxes_local_part_path_safe', convalidated: false },
    ]);
    await expect(db.sql.query(`INSERT INTO mailmapd.mailboxes (address) VALUES ('../y@example.org')`)).rejects.toThrow(/path_safe/);
    const r = cli(configFor(db), ['check']);
    expect(r.code).toBe(2);
    expect(r.out).toMatch(/mailmapd\.mailboxes: "\.\.\/other\/x@example\.org" would make a home outside/);
    expect(r.out).not.toMatch(/fine@/);
  });
});

describe('the home path builder', () => {
  let pool: HashPool;
  beforeAll(() => {
    pool = createHashPool({ workers: 1, queueLimit: 10, defaultScheme: 'CRYPT', metrics: createMetrics(false), logger: createLogger('error', () => {}) });
  });
  afterAll(() => pool.close());

  it('refuses to build a home outside the domain, whatever the directory holds', async () => {
    const settings = { mailHome: '/var/vmail/%d/%n', mailUid: 5000, mailGid: 5000 };
    expect(userdbFields(settings, 'a.b@example.org', 0)?.home).toBe('/var/vmail/example.org/a.b');
    for (const a of [...bad, 'x@..', 'x@a/b', 'x@.']) expect(userdbFields(settings, a, 0), a).toBeUndefined();

    // A panel's table (no schema checks of ours) holding such a name: Dovecot gets TEMP
    // for the userdb lookup and the login, never a home.
    const directory = createDirectory({ recipientDelimiter: '+' });
    const data = emptyData();
    data.domains.set('example.org', true);
    data.mailboxes.set('../other/x@example.org', { password: '{PLAIN}pw', quotaBytes: 0, active: true });
    directory.replaceAll(data);
    const logs: string[] = [];
    const auth = createAuthenticator({
      directory,
      pool,
      logger: createLogger('warn', (l) => logs.push(l)),
      metrics: createMetrics(false),
      userdb: settings,
      cacheSize: 10,
    });
    expect(auth.lookup('../other/x@example.org')).toMatchObject({ result: 'temp' });
    expect(await auth.authenticate('../other/x@example.org', 'pw', { service: 'imap' })).toMatchObject({ result: 'temp' });
    expect(logs.join('\n')).toMatch(/cannot give a home inside its domain/);
    auth.close();
  });
});
