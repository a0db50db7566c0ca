// DKIM keys and DNS records: the keys node:crypto makes (the published p= is the private
// key's public half, for RSA and for Ed25519 per RFC 8463), the zone lines `mailmapd dns`
// and `domain add` print, the CLI's add/rotate/rm/list on a real database, `dns check`'s
// verdicts, and who may read a private key: a role that reads the directory may not, until
// granted the column. No command's output and no NOTIFY payload carries a private key.
// (test/interop/dkim-signing.test.ts signs and verifies real mail with them.)

import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createPrivateKey, createPublicKey, sign, verify } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkRecords, type DnsResolver } from '../../src/dkim/dns-check.js';
import { generateDkimKey } from '../../src/dkim/keys.js';
import { mailDomainRecords, txtStrings, zoneLine } from '../../src/dkim/zone.js';
import { startDaemon } from '../helpers/daemon.js';
import { runCli } from '../helpers/cli.js';
import { createTestDatabase, type TestDatabase, urlFor, waitFor } from '../helpers/db.js';

const cli = (url: string, args: string[]) => runCli(url, args);

describe('DKIM keys', () => {
  it('publishes the public half of each key: RSA as SubjectPublicKeyInfo, Ed25519 as its 32 bytes', async () => {
    const msg = Buffer.from('signed data');
    const rsa = await generateDkimKey('rsa-2048');
    expect(rsa.privateKey).toMatch(/^-----BEGIN PRIVATE KEY-----\n/);
    const rsaPub = createPublicKey({ key: Buffer.from(rsa.publicKey, 'base64'), format: 'der', type: 'spki' });
    expect(rsaPub.asymmetricKeyDetails?.modulusLength).toBe(2048);
    expect(verify('sha256', msg, rsaPub, sign('sha256', msg, createPrivateKey(rsa.privateKey)))).toBe(true);

    const ed = await generateDkimKey('ed25519');
    const raw = Buffer.from(ed.publicKey, 'base64');
    expect(raw.length).toBe(32);
    // RFC 8410's SubjectPublicKeyInfo prefix for Ed25519, then the 32 bytes of the record.
    const edPub = createPublicKey({ key: Buffer.concat([Buffer.from('302a300506032b6570032100', 'hex'), raw]), format: 'der', type: 'spki' });
    expect(verify(null, msg, edPub, sign(null, msg, createPrivateKey(ed.privateKey)))).toBe(true);
  });

  it('prints zone lines with long TXT records split into strings of at most 255 bytes', async () => {
    expect(txtStrings('a'.repeat(600)).map((s) => s.length - 2)).toEqual([255, 255, 90]);
    const rsa = await generateDkimKey('rsa-2048');
    const records = mailDomainRecords('example.org', {
      ips: ['192.0.2.1', '2001:db8::1'],
      keys: [{ selector: 's1', algorithm: 'rsa-2048', publicKey: rsa.publicKey }],
    });
    const lines = records.map((r) => zoneLine(r));
    expect(lines).toContain('example.org. 3600 IN MX 10 mail.example.org.');
    expect(lines).toContain('mail.example.org. 3600 IN A 192.0.2.1');
    expect(lines).toContain('example.org. 3600 IN TXT "v=spf1 mx ip4:192.0.2.1 ip6:2001:db8::1 -all"');
    expect(lines).toContain('_dmarc.example.org. 3600 IN TXT "v=DMARC1; p=quarantine; rua=mailto:postmaster@example.org"');
    expect(lines).toContain('_submissions._tcp.example.org. 3600 IN SRV 0 1 465 mail.example.org.');
    expect(lines).toContain('_imaps._tcp.example.org. 3600 IN SRV 0 1 993 mail.example.org.');
    const dkim = lines.find((l) => l.startsWith('s1._domainkey.example.org. 3600 IN TXT '))!;
    const strings = dkim.slice('s1._domainkey.example.org. 3600 IN TXT '.length).match(/"[^"]*"/g)!;
    expect(strings.length).toBe(2);
    for (const s of strings) expect(Buffer.byteLength(s) - 2).toBeLessThanOrEqual(255);
    expect(strings.map((s) => s.slice(1, -1)).join('')).toBe(`v=DKIM1; k=rsa; p=${rsa.publicKey}`);
  });

  it('dns check says matching, missing or different for each record', async () => {
    const records = mailDomainRecords('example.org', {
      ips: ['192.0.2.1'],
      mx: 'mx.example.net',
      keys: [{ selector: 's1', algorithm: 'ed25519', publicKey: 'AAAA' }],
    });
    const nodata = () => Promise.reject(Object.assign(new Error('nodata'), { code: 'ENODATA' }));
    const dns: DnsResolver = {
      resolveMx: async () => [{ priority: 10, exchange: 'MX.example.net' }],
      resolveTxt: async (name) =>
        name === 'example.org'
          ? [['google-site-verification=x'], ['v=spf1 mx ', 'ip4:192.0.2.1 -all']]
          : name === 's1._domainkey.example.org'
            ? [['v=DKIM1; k=ed25519; p=BBBB']]
            : nodata(),
      resolveSrv: async (name) => (name.startsWith('_imaps.') ? [{ priority: 0, weight: 1, port: 993, name: 'mx.example.net' }] : nodata()),
      resolve4: nodata,
      resolve6: nodata,
    };
    const byLabel = new Map((await checkRecords(records, dns)).map((r) => [r.record.label, r]));
    expect(byLabel.get('MX')!.state).toBe('matching');
    expect(byLabel.get('SPF')!.state).toBe('matching');
    expect(byLabel.get('DKIM s1')).toMatchObject({ state: 'different', found: 'v=DKIM1; k=ed25519; p=BBBB' });
    expect(byLabel.get('DMARC')!.state).toBe('missing');
    expect(byLabel.get('SRV _imaps._tcp')!.state).toBe('matching');
    expect(byLabel.get('SRV _submissions._tcp')!.state).toBe('missing');
  });
});

// Each CLI run starts node and connects: several a test, on a busy machine.
describe('mailmapd dkim and dns on a database', { timeout: 240_000 }, () => {
  let db: TestDatabase;
  const reader = `dkim_reader_${process.pid}`;
  let readerUrl = '';
  const privateKeys = async () => (await db.sql.query<{ private_key: string }>('SELECT private_key FROM mailmapd.dkim_keys')).rows.map((r) => r.private_key);
  /** The body of every private key, as a log line or an output could carry it. */
  const secretParts = async () => (await privateKeys()).flatMap((k) => k.split('\n').filter((l) => l.length > 40));

  beforeAll(async () => {
    db = await createTestDatabase();
    await db.sql.query(`DROP ROLE IF EXISTS ${reader}; CREATE ROLE ${reader} LOGIN`);
    // What a daemon's read-only role is given (README): the directory's tables by name.
    await db.sql.query(`GRANT CONNECT ON DATABASE ${db.name} TO ${reader}; GRANT USAGE ON SCHEMA mailmapd TO ${reader};
      GRANT SELECT ON mailmapd.domains, mailmapd.alias_domains, mailmapd.mailboxes, mailmapd.aliases, mailmapd.changes, mailmapd.sync_state TO ${reader}`);
    const u = new URL(urlFor(db.name));
    u.username = reader;
    readerUrl = u.toString();
  });
  afterAll(async () => {
    await db?.drop();
    const a = new pg.Client({ connectionString: urlFor('postgres') });
    await a.connect();
    await a.query(`DROP ROLE IF EXISTS ${reader}`).finally(() => a.end());
  });

  it('domain add makes an RSA and an Ed25519 key and prints every record to publish', async () => {
    const r = await cli(db.url, ['domain', 'add', 'example.org', '--ip', '192.0.2.1', '--mx', 'mx.example.net']);
    expect(r).toMatchObject({ code: 0, err: '' });
    const lines = r.out.trim().split('\n');
    expect(lines[0]).toBe('added domain example.org');
    const keys = (await db.sql.query('SELECT selector, algorithm, public_key, active FROM mailmapd.dkim_keys ORDER BY algorithm')).rows;
    expect(keys.map((k) => [k.algorithm, k.active])).toEqual([
      ['ed25519', true],
      ['rsa-2048', true],
    ]);
    expect(lines).toContain('example.org. 3600 IN MX 10 mx.example.net.');
    expect(lines).toContain('example.org. 3600 IN TXT "v=spf1 mx ip4:192.0.2.1 -all"');
    expect(lines).toContain(`${keys[0].selector}._domainkey.example.org. 3600 IN TXT "v=DKIM1; k=ed25519; p=${keys[0].public_key}"`);
    expect(lines.some((l) => l.startsWith(`${keys[1].selector}._domainkey.example.org. 3600 IN TXT "v=DKIM1; k=rsa; p=`))).toBe(true);
    expect(lines).toContain('_pop3s._tcp.example.org. 3600 IN SRV 0 1 995 mx.example.net.');
    for (const part of await secretParts()) expect(r.out).not.toContain(part);
  });

  it('rotate makes a new selector sign and keeps the old one published; list says when it may go; rm', async () => {
    const before = (await db.sql.query(`SELECT selector FROM mailmapd.dkim_keys WHERE algorithm = 'rsa-2048'`)).rows[0].selector as string;
    const rot = await cli(db.url, ['dkim', 'rotate', 'example.org', '--algorithm', 'rsa-2048']);
    expect(rot.code).toBe(0);
    const after = (await db.sql.query(`SELECT selector, active, retired FROM mailmapd.dkim_keys WHERE algorithm = 'rsa-2048' ORDER BY created, selector`)).rows;
    const signing = after.find((k) => k.active)!.selector as string;
    expect(signing).not.toBe(before);
    expect(after.find((k) => k.selector === before)).toMatchObject({ active: false });
    expect(after.find((k) => k.selector === before)!.retired).toBeInstanceOf(Date);
    expect(rot.out).toContain(`${signing} (rsa-2048) signs new mail; ${before} stays published until`);
    expect(rot.out).toContain(`${signing}._domainkey.example.org. 3600 IN TXT "v=DKIM1; k=rsa; p=`);

    let list = await cli(db.url, ['dkim', 'list', 'example.org']);
    expect(list.out).toMatch(new RegExp(`example\\.org ${before} rsa-2048 retired \\d{4}-\\d\\d-\\d\\d, keep published until `));
    expect(list.out).toMatch(new RegExp(`example\\.org ${signing} rsa-2048 signing`));
    // The keep time (dkim_keep_rotated, 7 days) has passed: no clock is waited for.
    await db.sql.query(`UPDATE mailmapd.dkim_keys SET retired = now() - interval '8 days' WHERE selector = $1`, [before]);
    list = await cli(db.url, ['dkim', 'list']);
    expect(list.out).toContain(`example.org ${before} rsa-2048 retired`);
    expect(list.out).toContain(`can be removed: mailmapd dkim rm example.org ${before}`);

    expect(await cli(db.url, ['dkim', 'rm', 'example.org', signing])).toMatchObject({ code: 2 });
    expect(await cli(db.url, ['dkim', 'rm', 'example.org', before])).toMatchObject({ code: 0 });
    expect(await cli(db.url, ['dkim', 'rm', 'example.org', before])).toMatchObject({ code: 1 });
    const dns = await cli(db.url, ['dns', 'example.org']);
    expect(dns.out).not.toContain(`${before}._domainkey`);
    expect(dns.out).toContain(`${signing}._domainkey`);
  });

  it('a key added while another signs is published first; rotate then makes it the signing one', async () => {
    const add = await cli(db.url, ['dkim', 'add', 'example.org', '--algorithm', 'ed25519', '--selector', 'next']);
    expect(add.out).toContain('added DKIM key next (ed25519) for example.org, published only');
    expect((await cli(db.url, ['dkim', 'list'])).out).toContain('example.org next ed25519 published, not signing yet');
    const rot = await cli(db.url, ['dkim', 'rotate', 'example.org', '--algorithm', 'ed25519']);
    expect(rot.out).toContain('next (ed25519) signs new mail');
    expect(rot.out).not.toContain('publish now');
    expect(await cli(db.url, ['dkim', 'add', 'example.org', '--selector', 'x'])).toMatchObject({ code: 2 });
    expect(await cli(db.url, ['dkim', 'add', 'example.org', '--algorithm', 'ed25519', '--selector', 'next'])).toMatchObject({ code: 2 });
    expect(await cli(db.url, ['dkim', 'add', 'example.org', '--algorithm', 'ed25519', '--selector', '../x'])).toMatchObject({ code: 2 });
  });

  it('a role that reads the directory reads the published columns but no private key, until granted it', async () => {
    const c = new pg.Client({ connectionString: readerUrl });
    await c.connect();
    try {
      expect((await c.query('SELECT count(*)::int AS n FROM mailmapd.domains')).rows[0].n).toBe(1);
      expect((await c.query('SELECT selector, public_key FROM mailmapd.dkim_keys')).rowCount).toBeGreaterThan(0);
      await expect(c.query('SELECT private_key FROM mailmapd.dkim_keys')).rejects.toMatchObject({ code: '42501' });
      await expect(c.query('SELECT * FROM mailmapd.dkim_keys')).rejects.toMatchObject({ code: '42501' });
      await expect(c.query(`UPDATE mailmapd.dkim_keys SET active = false`)).rejects.toMatchObject({ code: '42501' });
      // The CLI's list and dns read no private key: they work with this role.
      expect((await cli(readerUrl, ['dkim', 'list'])).code).toBe(0);
      expect((await cli(readerUrl, ['dns', 'example.org'])).code).toBe(0);
      const readersLine = async () => (await cli(db.url, ['check'])).out.split('\n').find((l) => l.startsWith('roles that may read DKIM private keys'));
      expect(await readersLine()).toBeUndefined();
      await db.sql.query(`GRANT SELECT (private_key) ON mailmapd.dkim_keys TO ${reader}`);
      expect((await c.query('SELECT private_key FROM mailmapd.dkim_keys')).rows[0].private_key).toMatch(/^-----BEGIN PRIVATE KEY-----/);
      await db.sql.query(`REVOKE SELECT (private_key) ON mailmapd.dkim_keys FROM ${reader}`);
      // A schema-wide grant includes the private keys: `mailmapd check` names such a role.
      await db.sql.query(`GRANT SELECT ON ALL TABLES IN SCHEMA mailmapd TO ${reader}`);
      expect(await readersLine()).toBe(`roles that may read DKIM private keys (mailmapd.dkim_keys.private_key): ${reader}`);
      await db.sql.query(`REVOKE SELECT ON mailmapd.dkim_keys FROM ${reader}`);
      expect(await readersLine()).toBeUndefined();
    } finally {
      await c.end();
    }
  });

  it('a daemon whose role may not read private keys says so, writes no key file and logs no key', async () => {
    const dkimDir = join(mkdtempSync(join(tmpdir(), 'mailmapd-dkim-')), 'dkim');
    const daemon = await startDaemon({ databaseUrl: readerUrl, waitReady: false, config: { dkim_dir: dkimDir, dkim_group: '', dkim_reload_command: '' } });
    try {
      await waitFor(() => daemon.logs().includes("the daemon's role may not read mailmapd.dkim_keys.private_key"), 60_000, 'the grant message');
      expect(existsSync(dkimDir)).toBe(false);
      for (const part of await secretParts()) expect(daemon.logs()).not.toContain(part);
    } finally {
      await daemon.stop();
      rmSync(dirname(dkimDir), { recursive: true, force: true });
    }
  });

  it('a key change rings mailmapd_dkim with an empty payload and moves the counter standbys poll', async () => {
    const l = new pg.Client({ connectionString: db.url });
    await l.connect();
    const payloads: string[] = [];
    l.on('notification', (n) => payloads.push(`${n.channel}:${n.payload}`));
    await l.query('LISTEN mailmapd_dkim');
    const v0 = (await db.sql.query('SELECT version FROM mailmapd.dkim_state')).rows[0].version;
    const r = await cli(db.url, ['dkim', 'add', 'example.net']);
    expect(r.code).toBe(0);
    for (let i = 0; payloads.length === 0 && i < 500; i++) await new Promise((res) => setTimeout(res, 10));
    await l.end();
    expect(payloads).toEqual(['mailmapd_dkim:']);
    expect(Number((await db.sql.query('SELECT version FROM mailmapd.dkim_state')).rows[0].version)).toBeGreaterThan(Number(v0));
    for (const part of await secretParts()) expect(r.out + r.err).not.toContain(part);
  });
});
