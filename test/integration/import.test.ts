// `mailmapd import` from a WebStack-style flat-file setup: the rows land in the native
// schema, a second run changes nothing, a dry run writes nothing, bad lines are named as
// file:line and stop the import. Round trip: every user logs in with the old password
// (checked by the password verifier against the imported hash), and every key of the
// flat files gets the same answer from the directory as from Postfix's own `postmap -q`.

import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { importCommand, quotaRuleBytes } from '../../src/cli/import.js';
import { TempError } from '../../src/errors.js';
import { parseConfigText, type Config } from '../../src/config.js';
import { createDirectory } from '../../src/directory/directory.js';
import { verifyPassword } from '../../src/password/verify.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { startTestSync } from '../helpers/sync.js';

const hash = (scheme: string, pw: string) => execFileSync('doveadm', ['pw', '-s', scheme, '-p', pw], { encoding: 'utf8' }).trim();

const users = [
  { address: 'test@test.local', password: 'illegall', stored: '{PLAIN}illegall', quota: 0 },
  { address: 'alice@example.org', password: 'alice: secret', stored: hash('SHA512-CRYPT', 'alice: secret'), quota: 1024 ** 3 },
  { address: 'bob@example.org', password: 'bob-pw', stored: hash('BLF-CRYPT', 'bob-pw').replace('{BLF-CRYPT}', ''), quota: 500 * 1024 },
];

const passwdFile = `# /etc/dovecot/users (WebStack)
${users[0]!.address}:${users[0]!.stored}:mail:mail::/var/mail/vhosts/test.local/test::
${users[1]!.address}:${users[1]!.stored}:5000:5000::/var/mail/vhosts/example.org/alice::userdb_quota_rule=*:storage=1G
${users[2]!.address}:${users[2]!.stored}:5000:5000::/var/mail/vhosts/example.org/bob::userdb_quota_rule=*:storage=500 userdb_mail=maildir:~/Maildir
`;

const vmailbox = `test@test.local     test.local/test/
alice@example.org   example.org/alice/
bob@example.org     example.org/bob/
carol@example.org   example.org/carol/
`;

const virtual = `# aliases
aliases.test                 anything
postmaster@test.local        test@test.local
info@example.org             alice@example.org,
                             bob@example.org
team@aliases.test            alice@example.org, friend@elsewhere.test
@example.org                 alice@example.org
`;

let db: TestDatabase;
let dir: string;
let config: Config;
const files = () => ['--passwd-file', join(dir, 'users'), '--vmailbox', join(dir, 'vmailbox'), '--virtual', join(dir, 'virtual')];

async function run(args: string[], cfg = config): Promise<{ code: number; lines: string[] }> {
  const lines: string[] = [];
  const code = await importCommand(cfg, args, (l) => lines.push(l));
  return { code, lines };
}

async function tables(): Promise<unknown> {
  const q = async (sql: string) => (await db.sql.query(sql)).rows;
  return {
    domains: await q('SELECT name, active FROM mailmapd.domains ORDER BY name'),
    mailboxes: await q('SELECT address, password, quota_bytes::text, active FROM mailmapd.mailboxes ORDER BY address'),
    aliases: await q('SELECT address, destination, active FROM mailmapd.aliases ORDER BY address, destination'),
  };
}

beforeAll(async () => {
  db = await createTestDatabase();
  dir = mkdtempSync(join(tmpdir(), 'mailmapd-import-'));
  writeFileSync(join(dir, 'users'), passwdFile);
  writeFileSync(join(dir, 'vmailbox'), vmailbox);
  writeFileSync(join(dir, 'virtual'), virtual);
  config = parseConfigText(`database_url = ${db.url}\nmail_home = /var/mail/vhosts/%d/%n\n`, 'test.conf');
});

afterAll(async () => {
  await db?.drop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('mailmapd import', () => {
  it('reads Dovecot quota rules as Dovecot does', () => {
    expect(quotaRuleBytes('*:storage=1G')).toBe(1024 ** 3);
    expect(quotaRuleBytes('*:storage=100')).toBe(100 * 1024); // kilobytes without a unit
    expect(quotaRuleBytes('*:bytes=100')).toBe(100);
    expect(quotaRuleBytes('*:storage=10M')).toBe(10 * 1024 ** 2);
    expect(quotaRuleBytes('Trash:storage=+10%')).toBeUndefined();
  });

  it('a dry run reports the counts and writes nothing', async () => {
    const before = await tables();
    const r = await run([...files(), '--dry-run']);
    expect(r.code).toBe(0);
    expect(r.lines).toContain('mailboxes: 4 would be added, 0 would be updated, 0 unchanged');
    expect(r.lines).toContain('dry run: nothing written');
    expect(await tables()).toEqual(before);
  });

  it('imports domains, mailboxes with their hashes and quotas, and aliases', async () => {
    const r = await run(files());
    expect(r.code).toBe(0);
    expect(r.lines).toEqual(['domains: 3 added, 0 already present', 'mailboxes: 4 added, 0 updated, 0 unchanged', 'aliases: 6 added, 0 already present']);
    expect(await tables()).toEqual({
      domains: [
        { name: 'aliases.test', active: true },
        { name: 'example.org', active: true },
        { name: 'test.local', active: true },
      ],
      mailboxes: [
        { address: 'alice@example.org', password: users[1]!.stored, quota_bytes: String(1024 ** 3), active: true },
        { address: 'bob@example.org', password: users[2]!.stored, quota_bytes: String(500 * 1024), active: true },
        { address: 'carol@example.org', password: null, quota_bytes: '0', active: true },
        { address: 'test@test.local', password: '{PLAIN}illegall', quota_bytes: '0', active: true },
      ],
      aliases: [
        { address: '@example.org', destination: 'alice@example.org', active: true },
        { address: 'info@example.org', destination: 'alice@example.org', active: true },
        { address: 'info@example.org', destination: 'bob@example.org', active: true },
        { address: 'postmaster@test.local', destination: 'test@test.local', active: true },
        { address: 'team@aliases.test', destination: 'alice@example.org', active: true },
        { address: 'team@aliases.test', destination: 'friend@elsewhere.test', active: true },
      ],
    });
  });

  it('a second run changes nothing', async () => {
    const before = await tables();
    const r = await run(files());
    expect(r.code).toBe(0);
    expect(r.lines).toEqual(['domains: 0 added, 3 already present', 'mailboxes: 0 added, 0 updated, 4 unchanged', 'aliases: 0 added, 6 already present']);
    expect(await tables()).toEqual(before);
  });

  it('round-trips: old passwords log in, maps answer as postmap does on the flat files', async () => {
    const directory = createDirectory({ recipientDelimiter: '+' });
    const { sync } = startTestSync({
      databaseUrl: db.url,
      directory,
      pollIntervalMs: 200,
      reconnectMaxDelayMs: 1000,
    });
    try {
      await sync.firstLoad();
      for (const u of users) {
        const found = directory.user(u.address);
        expect(found).toMatchObject({ status: 'ok', quotaBytes: u.quota });
        if (found.status !== 'ok') continue;
        expect((await verifyPassword(u.password, found.password!, 'CRYPT')).result, u.address).toBe('ok');
        expect((await verifyPassword('wrong', found.password!, 'CRYPT')).result).toBe('mismatch');
      }
      execFileSync('postmap', [`hash:${join(dir, 'vmailbox')}`, `hash:${join(dir, 'virtual')}`]);
      const postmap = (key: string, file: string): string | undefined => {
        try {
          return execFileSync('postmap', ['-q', key, `hash:${join(dir, file)}`], { encoding: 'utf8' }).trim();
        } catch {
          return undefined; // exit 1: not found
        }
      };
      const norm = (v: string | undefined) =>
        v
          ?.split(/[\s,]+/)
          .filter((x) => x !== '')
          .join(',');
      for (const line of vmailbox.trim().split('\n')) {
        const key = line.split(/\s+/)[0]!;
        expect(directory.mailbox(key), key).toBe(postmap(key, 'vmailbox'));
        expect(directory.mailbox(key.toUpperCase()), key).toBe(postmap(key.toUpperCase(), 'vmailbox'));
      }
      for (const key of ['postmaster@test.local', 'info@example.org', 'team@aliases.test', 'INFO@Example.org']) {
        expect(norm(directory.alias(key)), key).toBe(norm(postmap(key, 'virtual')));
      }
      // Keys absent from both: the directory adds only what Postfix does after postmap
      // (the @domain catch-all), so compare against that fallback.
      expect(directory.alias('nobody@example.org')).toBe(norm(postmap('@example.org', 'virtual')));
      expect(directory.domain('aliases.test')).toBe('aliases.test');
    } finally {
      await sync.stop();
    }
  });

  it('names every bad line as file:line and writes nothing', async () => {
    writeFileSync(join(dir, 'bad-users'), 'good@bad.test:{PLAIN}x:1:1::/h::\nnodomain:{PLAIN}x:1:1::/h::\n\ngood@bad.test:{PLAIN}y:1:1::/h::\n');
    writeFileSync(join(dir, 'bad-virtual'), '  continued\nroot@bad.test root\n@bad.test\nadmin someone@bad.test\n');
    writeFileSync(join(dir, 'bad-vmailbox'), '@bad.test bad.test/catchall/\n');
    const before = await tables();
    const r = await run(['--passwd-file', join(dir, 'bad-users'), '--virtual', join(dir, 'bad-virtual'), '--vmailbox', join(dir, 'bad-vmailbox')]);
    expect(r.code).toBe(2);
    const bad = r.lines.filter((l) => l.startsWith('bad line: ')).map((l) => l.slice(10).replace(dir + '/', ''));
    expect(bad).toEqual([
      'bad-users:2: "nodomain" is not an address: it needs exactly one @',
      'bad-users:4: good@bad.test appears twice',
      'bad-vmailbox:1: catch-all mailbox @bad.test: make it a catch-all alias (@domain → an address) instead',
      'bad-virtual:1: continuation line without a key',
      'bad-virtual:2: destination "root" has no domain (local delivery is not a virtual alias); write a full address',
      'bad-virtual:3: @bad.test has no destination',
      'bad-virtual:4: "admin" matches a local part in every domain; write the full address (or @domain)',
    ]);
    expect(r.lines[r.lines.length - 1]).toMatch(/^7 line\(s\) cannot be imported: nothing written/);
    expect(await tables()).toEqual(before);

    const skipped = await run(['--passwd-file', join(dir, 'bad-users'), '--skip-bad', '--dry-run']);
    expect(skipped.code).toBe(0);
    expect(skipped.lines).toContain('mailboxes: 1 would be added, 0 would be updated, 0 unchanged');
  });

  it('says when the mail homes need another mail_home', async () => {
    const cfg = parseConfigText(`database_url = ${db.url}\n`, 'test.conf');
    const r = await run(['--passwd-file', join(dir, 'users'), '--dry-run'], cfg);
    expect(r.lines).toContain(
      `warning: ${join(dir, 'users')}: 3 home(s) differ from mail_home = /var/vmail/%d/%n (e.g. /var/mail/vhosts/test.local/test for test@test.local): set mail_home = /var/mail/vhosts/%d/%n`,
    );
  });

  it('usage errors and a database that is down have their exit codes', async () => {
    await expect(run([])).rejects.toThrow(/nothing to import/);
    await expect(run(['--bogus', 'x'])).rejects.toThrow(/unknown option --bogus/);
    await expect(run(['--virtual', join(dir, 'absent')])).rejects.toThrow(/cannot read .*absent: ENOENT/);
    const down = parseConfigText('database_url = postgres://postgres@127.0.0.1:1/nowhere\n', 'test.conf');
    await expect(run(files(), down)).rejects.toBeInstanceOf(TempError);
  });
});
