// DKIM with real parts only: `mailmapd domain add` makes the keys and prints the zone; a real
// authoritative DNS server (Knot) serves that zone on a loopback port; the daemon writes the
// signer's files under dkim_dir; a real Postfix hands mail to a real OpenDKIM milter, which
// signs it with those files; an independent verifier (dkimpy, not mailmapd's code) checks
// every signature against the TXT records it looks up in Knot. Then a rotation: the daemon
// rewrites the files and runs dkim_reload_command (pkill -USR1 on OpenDKIM's pid file), and
// new mail is signed with the new selectors. And `mailmapd dns check` against Knot: every
// record matching, then one changed and named different, exit 1.
//
// OpenDKIM runs with what `mailmapd dkim-config` prints (UserID opendkim, RequireSafeKeys
// false: its safe-key check wants key files owned by root or opendkim in a group nobody else
// is in, which files the daemon's user writes for a group cannot be; with the check on it
// tempfails every message, as it does for keys below a world-writable directory).

import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { groupId } from '../../src/dkim/reload-command.js';
import { freePort, startDaemon, type Daemon } from '../helpers/daemon.js';
import { runCli } from '../helpers/cli.js';
import { createTestDatabase, waitFor, type TestDatabase } from '../helpers/db.js';
import { verifyDkim } from '../helpers/dkim-verifier.js';
import { startKnot, type Knot } from '../helpers/knot.js';
import { openDkimSettings, startOpenDkim, type OpenDkim } from '../helpers/opendkim.js';
import { dkimConfig } from '../../src/cli/dkim-config.js';
import { parseConfigText } from '../../src/config.js';
import { masterCf, postfixInstance, type PostfixInstance } from '../helpers/postfix.js';
import { smtpSession, waitForSmtp } from '../helpers/smtp.js';
import { startSmtpSink, type SmtpSink } from '../helpers/smtp-sink.js';

const domain = 'example.test';
const recordArgs = ['--ip', '127.0.0.1', '--mx', `mx.${domain}`];

const cli = (url: string, args: string[]) => runCli(url, args);

/** The zone-file lines of a command's output (comments and messages left out). */
const zoneLines = (out: string) => out.split('\n').filter((l) => / \d+ IN [A-Z]+ /.test(l));

describe('DKIM signing with OpenDKIM in Postfix, verified against Knot', { timeout: 240_000 }, () => {
  let base = '';
  let db: TestDatabase;
  let knot: Knot;
  let daemon: Daemon;
  // One OpenDKIM signs with the RSA keys, a second with the Ed25519 ones (dkim-config).
  let opendkim: OpenDkim;
  let opendkimEd: OpenDkim;
  let sink: SmtpSink;
  let pfx: PostfixInstance;
  let smtpPort = 0;
  let dkimDir = '';
  let sent = 0;
  let firstMessage = '';

  const signingTable = () =>
    ['SigningTable', 'SigningTable.ed25519'].map((f) => (existsSync(join(dkimDir, f)) ? readFileSync(join(dkimDir, f), 'utf8') : '')).join('');
  const reloads = () =>
    daemon
      .logs()
      .split('\n')
      .filter((l) => l.includes('msg="dkim_reload_command ran"') && l.includes('status="exit 0"')).length;

  /** Sends a message from alice@example.test through Postfix and returns it as the next hop got it. */
  const sendSigned = async (): Promise<string> => {
    const subject = `dkim test ${++sent}`;
    const s = await smtpSession(smtpPort);
    try {
      expect((await s.command('EHLO client.test')).code).toBe(250);
      const r = await s.send(`alice@${domain}`, ['bob@remote.test'], `From: alice@${domain}\nTo: bob@remote.test\nSubject: ${subject}\n\nhello\n`);
      expect(r.code, r.text).toBe(250);
    } finally {
      await s.close();
    }
    await waitFor(() => sink.messages.some((m) => m.data.includes(`Subject: ${subject}`)), 30_000, `"${subject}" at the next hop:\n${pfx.maillog()}`);
    return sink.messages.find((m) => m.data.includes(`Subject: ${subject}`))!.data;
  };

  const keys = async () =>
    (
      await db.sql.query<{ selector: string; algorithm: string; active: boolean }>(
        'SELECT selector, algorithm, active FROM mailmapd.dkim_keys ORDER BY created, selector',
      )
    ).rows;

  beforeAll(async () => {
    for (const f of ['/usr/sbin/opendkim', '/usr/sbin/knotd', '/usr/bin/dkimverify', '/usr/sbin/postfix']) {
      expect(existsSync(f), `${f} is missing: apt-get install -y opendkim opendkim-tools knot python3-dkim python3-nacl python3-dnspython postfix`).toBe(true);
    }
    base = mkdtempSync('/var/tmp/mailmapd-dkim-');
    chmodSync(base, 0o755);
    dkimDir = join(base, 'dkim');
    db = await createTestDatabase();
    const added = await cli(db.url, ['domain', 'add', domain, ...recordArgs]);
    expect(added.code, added.err).toBe(0);
    knot = await startKnot(join(base, 'knot'), domain, zoneLines(added.out));

    daemon = await startDaemon({
      databaseUrl: db.url,
      config: {
        dkim_dir: dkimDir,
        dkim_group: 'opendkim',
        // What README says for signers not run by systemd: SIGUSR1 to each, by pid file.
        dkim_reload_command: `pkill -USR1 -F ${join(base, 'opendkim', 'opendkim.pid')}; pkill -USR1 -F ${join(base, 'opendkim-ed25519', 'opendkim.pid')}`,
      },
    });
    const signing = (await keys()).filter((k) => k.active);
    await waitFor(() => signing.every((k) => signingTable().includes(`${k.selector}._domainkey.${domain}`)), 30_000, 'the daemon writing dkim_dir');
    const printed = dkimConfig(parseConfigText(readFileSync(daemon.configPath, 'utf8'), daemon.configPath));
    const rsaSettings = openDkimSettings(printed, 'OpenDKIM,');
    opendkim = await startOpenDkim(join(base, 'opendkim'), rsaSettings);
    opendkimEd = await startOpenDkim(join(base, 'opendkim-ed25519'), openDkimSettings(printed, 'OpenDKIM for Ed25519', rsaSettings));

    sink = await startSmtpSink();
    pfx = postfixInstance(base, 'postfix-');
    smtpPort = await freePort();
    writeFileSync(
      join(pfx.dir, 'etc', 'main.cf'),
      pfx.mainCf([
        'mynetworks = 127.0.0.0/8',
        `relayhost = [127.0.0.1]:${sink.port}`,
        'smtp_dns_support_level = disabled',
        'smtpd_relay_restrictions = permit_mynetworks, reject',
        // What `mailmapd dkim-config` prints for Postfix, with the test's milter port.
        `smtpd_milters = inet:127.0.0.1:${opendkim.port}, inet:127.0.0.1:${opendkimEd.port}`,
        'non_smtpd_milters = $smtpd_milters',
        'milter_default_action = accept',
      ]),
    );
    writeFileSync(join(pfx.dir, 'etc', 'master.cf'), masterCf([`127.0.0.1:${smtpPort} inet n - y - - smtpd`]));
    const started = pfx.run('start');
    expect(started.status, `postfix start failed:\n${started.stderr}`).toBe(0);
    await waitForSmtp(smtpPort, 20_000);
  }, 180_000);

  afterAll(async () => {
    await pfx?.stop();
    await opendkim?.stop();
    await opendkimEd?.stop();
    await daemon?.stop();
    await knot?.stop();
    await sink?.close();
    await db?.drop();
    if (base) rmSync(base, { recursive: true, force: true });
  }, 60_000);

  it('the daemon writes the keys readable by the signer group only, and logs no key', async () => {
    const gid = await groupId('opendkim');
    const dir = statSync(dkimDir);
    expect([dir.mode & 0o777, dir.gid]).toEqual([0o750, gid]);
    const signing = (await keys()).filter((k) => k.active);
    for (const k of signing) {
      const st = statSync(join(dkimDir, `${domain}.${k.selector}.key`));
      expect([st.mode & 0o777, st.gid]).toEqual([0o640, gid]);
    }
    const secrets = (await db.sql.query<{ private_key: string }>('SELECT private_key FROM mailmapd.dkim_keys')).rows.flatMap((r) =>
      r.private_key.split('\n').filter((l) => l.length > 40),
    );
    expect(secrets.length).toBeGreaterThan(0);
    for (const s of secrets) expect(daemon.logs()).not.toContain(s);
  });

  it('OpenDKIM signs with both keys, and dkimpy verifies both against the TXT records `domain add` printed', async () => {
    const message = await sendSigned();
    firstMessage = message;
    const sigs = verifyDkim(message, knot.port);
    const signing = (await keys()).filter((k) => k.active);
    expect(sigs.map((s) => `${s.selector} ${s.algorithm} ${s.pass}`).sort()).toEqual(
      signing.map((k) => `${k.selector} ${k.algorithm === 'rsa-2048' ? 'rsa-sha256' : 'ed25519-sha256'} true`).sort(),
    );
    expect(sigs.every((s) => s.domain === domain)).toBe(true);
  });

  it('after `dkim rotate` new mail is signed with the new selectors, the old keys still verify from DNS', async () => {
    const before = (await keys()).filter((k) => k.active).map((k) => k.selector);
    const reloadsBefore = reloads();
    const rotated = await cli(db.url, ['dkim', 'rotate', domain]);
    expect(rotated.code, rotated.err).toBe(0);
    // Publish what `mailmapd dns` prints now: the new records and the old ones.
    const zone = await cli(db.url, ['dns', domain, ...recordArgs]);
    await knot.setZone(zoneLines(zone.out));
    const after = (await keys()).filter((k) => k.active).map((k) => k.selector);
    expect(after.some((s) => before.includes(s))).toBe(false);
    const dkimLog = () =>
      daemon
        .logs()
        .split('\n')
        .filter((l) => /dkim/i.test(l))
        .join('\n');
    await waitFor(
      () => after.every((s) => signingTable().includes(`${s}._domainkey`)) && reloads() > reloadsBefore,
      30_000,
      'the rewrite and the reload',
    ).catch((err: Error) => {
      throw new Error(`${err.message}\n${dkimLog()}`);
    });
    // Retired keys keep their files until `dkim rm` (an OpenDKIM not reloaded yet still signs with them).
    for (const s of before) expect(existsSync(join(dkimDir, `${domain}.${s}.key`))).toBe(true);
    const sigs = verifyDkim(await sendSigned(), knot.port);
    expect(sigs.map((s) => s.selector).sort()).toEqual([...after].sort());
    expect(sigs.every((s) => s.pass)).toBe(true);
    // Mail signed before the rotation still verifies: the old records stay in the zone.
    const old = verifyDkim(firstMessage, knot.port);
    expect(old.map((s) => s.selector).sort()).toEqual([...before].sort());
    expect(old.every((s) => s.pass)).toBe(true);
    // `dkim rm` of a retired key takes its file away.
    expect((await cli(db.url, ['dkim', 'rm', domain, before[0]!])).code).toBe(0);
    await waitFor(() => !existsSync(join(dkimDir, `${domain}.${before[0]}.key`)), 30_000, 'the removed key file');
  });

  it('dns check finds every record in Knot matching, then names the one changed different and exits 1', async () => {
    const ok = await cli(db.url, ['dns', 'check', domain, ...recordArgs, '--server', `127.0.0.1:${knot.port}`]);
    expect(ok.out).not.toMatch(/: (missing|different|failed)/);
    expect(ok.out).toContain(`SPF ${domain}: matching`);
    expect(ok.out).toMatch(/DKIM \S+ \S+: matching/);
    expect(ok.code, ok.out).toBe(0);

    const zone = zoneLines((await cli(db.url, ['dns', domain, ...recordArgs])).out).map((l) =>
      l.includes('"v=spf1') ? `${domain}. 3600 IN TXT "v=spf1 a -all"` : l,
    );
    await knot.setZone(zone);
    const bad = await cli(db.url, ['dns', 'check', domain, ...recordArgs, '--server', `127.0.0.1:${knot.port}`]);
    expect(bad.code).toBe(1);
    expect(bad.out).toContain(`SPF ${domain}: different (found v=spf1 a -all)`);
    expect(bad.out).toContain(`  want: ${domain}. 3600 IN TXT "v=spf1 mx ip4:127.0.0.1 -all"`);
    expect(bad.out.match(/: different/g)?.length).toBe(1);
    expect(bad.out).not.toMatch(/: missing/);
  });
});
