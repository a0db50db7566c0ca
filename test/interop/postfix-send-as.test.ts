// Who may send as whom, through a real Postfix on submission configured with what `mailmapd
// postfix-config` prints (its master.cf submission block, TLS switched off for the test's
// plain SMTP client; main.cf with the BCC maps uncommented) and SMTP AUTH on the daemon's
// auth socket: every row of the README's table of cases, for every login of the example; a
// grant added is used at once and refused again at once once removed; BCC copies reach the
// relay host (a sink). Fails, never skips, without Postfix. Runs as root.

import { chownSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dovecotConfig } from '../../src/cli/dovecot-config.js';
import { postfixConfig, postfixConfigOutput } from '../../src/cli/postfix-config.js';
import { parseConfigText } from '../../src/config.js';
import { freePort, startDaemon, type Daemon } from '../helpers/daemon.js';
import { createTestDatabase, waitFor, type TestDatabase } from '../helpers/db.js';
import { masterCf, postfixInstance, type PostfixInstance } from '../helpers/postfix.js';
import { sendAsCases, sendAsSeedSql } from '../helpers/send-as-cases.js';
import { smtpSession, waitForSmtp, type SmtpSession } from '../helpers/smtp.js';
import { startSmtpSink, type SmtpSink } from '../helpers/smtp-sink.js';

/** The logins of the example that can log in (carol is inactive, erin's domain too). */
const logins = ['alice@example.org', 'bob@example.org', 'dave@example.org'];
const password = (login: string) => `${login.slice(0, login.indexOf('@'))}-pw`;

describe('send-as and BCC through a real Postfix on submission, configured as mailmapd prints it', { timeout: 120_000 }, () => {
  let db: TestDatabase;
  let daemon: Daemon;
  let sink: SmtpSink;
  let submitPort: number;
  let pfx: PostfixInstance | undefined;
  const maillog = () => pfx?.maillog() ?? '';

  /** A session logged in as `login`. */
  const loggedIn = async (login: string): Promise<SmtpSession> => {
    const s = await smtpSession(submitPort);
    expect(s.greeting.code).toBe(220);
    expect((await s.command('EHLO client.test')).code).toBe(250);
    const auth = await s.command(`AUTH PLAIN ${Buffer.from(`\0${login}\0${password(login)}`).toString('base64')}`);
    expect(auth.code, `AUTH as ${login}: ${auth.text}`).toBe(235);
    return s;
  };

  /** smtpd judges the sender at RCPT (smtpd_delay_reject): one transaction per sender. */
  const asSender = async (s: SmtpSession, from: string) => {
    const mail = await s.command(`MAIL FROM:<${from}>`);
    expect(mail.code, `MAIL FROM:<${from}>: ${mail.text}`).toBe(250);
    const r = await s.command('RCPT TO:<someone@elsewhere.test>');
    expect((await s.command('RSET')).code).toBe(250);
    return r;
  };

  beforeAll(async () => {
    expect(existsSync('/usr/sbin/postfix'), 'Postfix must be installed (apt-get install postfix)').toBe(true);
    sink = await startSmtpSink();
    db = await createTestDatabase();
    await db.sql.query(sendAsSeedSql);
    await db.sql.query(`INSERT INTO mailmapd.bcc (address, direction, bcc) VALUES
      ('alice@example.org', 'sender', 'alice-sent@archive.test'), ('@partner.test', 'recipient', 'partner-copies@archive.test')`);

    pfx = postfixInstance(tmpdir(), 'mailmapd-sendas-', ['sock']);
    const dir = pfx.dir;
    // The auth socket where Debian's Dovecot puts its own: in the queue directory, for the chrooted smtpd.
    mkdirSync(join(dir, 'spool', 'private'), { mode: 0o700 });
    chownSync(join(dir, 'spool', 'private'), pfx.postfixUid, 0);
    daemon = await startDaemon({
      databaseUrl: db.url,
      config: { socketmap_listen: `unix:${dir}/sock/socketmap`, auth_listen: `unix:${dir}/spool/private/mailmapd-auth`, unix_socket_group: 'postfix' },
    });
    const config = parseConfigText(readFileSync(daemon.configPath, 'utf8'), daemon.configPath);

    // main.cf: the instance's own lines, what mailmapd prints (the BCC maps switched on), the
    // SASL lines of dovecot-config, and a relay host for everything: the sink.
    const tables = postfixConfig(config);
    expect(tables).toMatch(/^# sender_bcc_maps = /m);
    const sasl = dovecotConfig(config, []);
    const saslLines = sasl.slice(sasl.indexOf('# ---- Postfix')).replace(`smtpd_sasl_path = unix:${dir}/spool/`, 'smtpd_sasl_path = ');
    writeFileSync(
      join(dir, 'etc', 'main.cf'),
      pfx.mainCf([
        tables.replace(/^# ((sender|recipient)_bcc_maps = )/gm, '$1'),
        saslLines,
        `relayhost = [127.0.0.1]:${sink.port}`,
        'smtp_dns_support_level = disabled',
        // One session asks for many refusals: no pause after each, no hang-up after 20.
        'smtpd_error_sleep_time = 0s',
        'smtpd_soft_error_limit = 1000',
        'smtpd_hard_error_limit = 1000',
      ]),
    );
    // master.cf: the submission block as printed, on a free loopback port; the test speaks
    // plain SMTP, so TLS is not required before AUTH.
    const output = postfixConfigOutput(config);
    const block = output
      .slice(output.indexOf('# ---- /etc/postfix/master.cf'))
      .split('\n')
      .filter((l) => l !== '' && !l.startsWith('#'));
    expect(block).toContain('  -o smtpd_sender_restrictions=reject_authenticated_sender_login_mismatch');
    expect(block).toContain(`  -o smtpd_sender_login_maps=proxy:socketmap:unix:${dir}/sock/socketmap:senders`);
    submitPort = await freePort();
    const service = block
      .map((l) => l.replace(/^submission inet/, `127.0.0.1:${submitPort} inet`))
      .map((l) => l.replace('smtpd_tls_security_level=encrypt', 'smtpd_tls_security_level=none').replace('smtpd_tls_auth_only=yes', 'smtpd_tls_auth_only=no'));
    writeFileSync(join(dir, 'etc', 'master.cf'), masterCf(service));

    const pf = pfx.run('start');
    expect(pf.status, `postfix start failed:\n${pf.stderr}\n${maillog()}`).toBe(0);
    await waitForSmtp(submitPort, 15_000);
  }, 90_000);

  afterAll(async () => {
    const dir = pfx?.dir;
    await pfx?.stop();
    await daemon?.stop();
    await db?.drop();
    await sink?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  }, 60_000);

  it('every row of the README table: the logins it names may send, every other login is refused', async () => {
    const cases = sendAsCases();
    const wrong: string[] = [];
    for (const login of logins) {
      const s = await loggedIn(login);
      try {
        for (const c of cases) {
          const r = await asSender(s, c.sender);
          const allowed = c.logins.includes(login);
          if (allowed && r.code !== 250) wrong.push(`${login} as ${c.sender} (${c.rule}): refused: ${r.code} ${r.text}`);
          if (!allowed && (r.code !== 553 || !r.text.includes(`not owned by user ${login}`)))
            wrong.push(`${login} as ${c.sender} (${c.rule}): not refused: ${r.code} ${r.text}`);
        }
      } finally {
        await s.close();
      }
    }
    expect(wrong).toEqual([]);
  });

  it('a grant is used at once, and refused again at once once removed', async () => {
    const s = await loggedIn('bob@example.org');
    try {
      expect((await asSender(s, 'helpdesk@example.org')).code).toBe(553);
      await db.sql.query(`INSERT INTO mailmapd.send_as (mailbox, address) VALUES ('bob@example.org', 'helpdesk@example.org')`);
      await waitFor(async () => (await asSender(s, 'helpdesk@example.org')).code === 250, 5_000, 'the grant at RCPT');
      expect((await asSender(s, 'Helpdesk+Tag@alias.test')).code).toBe(250);
      await db.sql.query(`DELETE FROM mailmapd.send_as WHERE mailbox = 'bob@example.org' AND address = 'helpdesk@example.org'`);
      await waitFor(async () => (await asSender(s, 'helpdesk@example.org')).code === 553, 5_000, 'the removed grant refused at RCPT');
      expect((await asSender(s, 'helpdesk+tag@alias.test')).code).toBe(553);
    } finally {
      await s.close();
    }
  });

  it('BCC copies by sender and by recipient reach the relay host', async () => {
    const s = await loggedIn('alice@example.org');
    try {
      const send = async (from: string, to: string, subject: string) => {
        const r = await s.send(from, [to], `From: ${from}\nTo: ${to}\nSubject: ${subject}\n\nhello\n`);
        expect(r.code, `${subject}: ${r.text}`).toBe(250);
      };
      await send('alice+news@example.org', 'friend@elsewhere.test', 'bcc-by-sender');
      await send('ceo@example.org', 'buyer@partner.test', 'bcc-by-recipient');
    } finally {
      await s.close();
    }
    const recipients = (subject: string) =>
      sink.messages
        .filter((m) => m.data.includes(`Subject: ${subject}`))
        .flatMap((m) => m.to)
        .sort();
    await waitFor(
      () => recipients('bcc-by-sender').length === 2 && recipients('bcc-by-recipient').length === 2,
      20_000,
      `the copies at the sink (maillog:\n${maillog()})`,
    );
    expect(recipients('bcc-by-sender')).toEqual(['alice-sent@archive.test', 'friend@elsewhere.test']);
    // ceo@ is alice's by a grant, not hers by name: no sender copy, only the recipient's.
    expect(recipients('bcc-by-recipient')).toEqual(['buyer@partner.test', 'partner-copies@archive.test']);
    expect(maillog()).not.toMatch(/status=(deferred|bounced)/);
  });
});
