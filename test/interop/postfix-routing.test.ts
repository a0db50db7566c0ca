import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { postfixConfig } from '../../src/cli/postfix-config.js';
import { parseConfigText } from '../../src/config.js';
import { freePort, startDaemon, type Daemon } from '../helpers/daemon.js';
import { createTestDatabase, waitFor, type TestDatabase } from '../helpers/db.js';
import { masterCf, postfixInstance, type PostfixInstance } from '../helpers/postfix.js';
import { smtpSession, waitForSmtp } from '../helpers/smtp.js';
import { startSmtpSink, type SmtpSink } from '../helpers/smtp-sink.js';
import { socketmapClient } from '../helpers/socketmap-client.js';

const CREDENTIALS = 'alice-relay:s3cret-relay-pw';

describe('routing maps in a real Postfix, configured as mailmapd prints them', { timeout: 60_000 }, () => {
  let db: TestDatabase;
  let daemon: Daemon;
  let dir: string;
  let inboundPort: number;
  let submitPort: number;
  let nextHop: SmtpSink;
  let relayWithAuth: SmtpSink;
  let relayPlain: SmtpSink;
  let inetSocketmapPort: number;
  let pfx: PostfixInstance | undefined;
  const maillog = () => pfx?.maillog() ?? '';

  const rcpt = async (address: string) => {
    const s = await smtpSession(inboundPort);
    try {
      expect((await s.command('EHLO client.test')).code).toBe(250);
      expect((await s.command('MAIL FROM:<sender@remote.test>')).code).toBe(250);
      return await s.command(`RCPT TO:<${address}>`);
    } finally {
      await s.close();
    }
  };

  const send = async (port: number, from: string, to: string, subject: string) => {
    const s = await smtpSession(port);
    try {
      expect((await s.command('EHLO client.test')).code).toBe(250);
      const r = await s.send(from, [to], `From: ${from}\nTo: ${to}\nSubject: ${subject}\n\nhello\n`);
      expect(r.code, `${subject}: ${r.text}`).toBe(250);
    } finally {
      await s.close();
    }
  };

  const received = (sink: SmtpSink, subject: string) => sink.messages.find((m) => m.data.includes(`Subject: ${subject}`));

  beforeAll(async () => {
    expect(existsSync('/usr/sbin/postfix'), 'Postfix must be installed (apt-get install postfix)').toBe(true);
    [nextHop, relayWithAuth, relayPlain] = await Promise.all([startSmtpSink(), startSmtpSink({ auth: CREDENTIALS }), startSmtpSink()]);
    const hop = (sink: SmtpSink) => `smtp:[127.0.0.1]:${sink.port}`;

    db = await createTestDatabase();
    await db.sql.query(
      `INSERT INTO mailmapd.domains (name, transport) VALUES ('example.org', NULL), ('special.test', $1);
       INSERT INTO mailmapd.mailboxes (address, password) VALUES ('alice@example.org', '{PLAIN}x'), ('bob@example.org', '{PLAIN}x'), ('someone@special.test', '{PLAIN}x');
       INSERT INTO mailmapd.relay_domains (name, transport) VALUES ('relay.test', $1), ('open.test', $1);
       INSERT INTO mailmapd.relay_recipients (address) VALUES ('known@relay.test');
       INSERT INTO mailmapd.sender_relayhosts (sender, relayhost, credentials) VALUES
         ('alice@example.org', $2, $3), ('@example.org', $4, NULL);`
        .replace(/\$1/g, `'${hop(nextHop)}'`)
        .replace('$2', `'[127.0.0.1]:${relayWithAuth.port}'`)
        .replace('$3', `'${CREDENTIALS}'`)
        .replace('$4', `'[127.0.0.1]:${relayPlain.port}'`),
    );

    pfx = postfixInstance(tmpdir(), 'mailmapd-routing-', ['sock']);
    dir = pfx.dir;
    inetSocketmapPort = await freePort();
    daemon = await startDaemon({
      databaseUrl: db.url,
      // The first listener is the one postfix-config prints; the second only shows what a
      // loopback port answers.
      config: { socketmap_listen: `unix:${dir}/sock/socketmap, inet:127.0.0.1:${inetSocketmapPort}`, unix_socket_group: 'postfix' },
    });
    const config = parseConfigText(readFileSync(daemon.configPath, 'utf8'), daemon.configPath);
    const tables = postfixConfig(config);
    expect(tables).toContain(`smtp_sasl_password_maps = proxy:socketmap:unix:${dir}/sock/socketmap:sender_relay_credentials`);

    inboundPort = await freePort();
    submitPort = await freePort();
    writeFileSync(
      join(dir, 'etc', 'main.cf'),
      pfx.mainCf([
        'mynetworks = 127.0.0.2/32',
        // No DNS here: next hops are IP literals, and nothing else may be looked up.
        'smtp_dns_support_level = disabled',
        tables,
        'smtpd_relay_restrictions = reject_unauth_destination',
      ]),
    );
    writeFileSync(
      join(dir, 'etc', 'master.cf'),
      masterCf([
        `127.0.0.1:${inboundPort} inet n - y - - smtpd`,
        // Stands in for submission: the test's client may send anywhere.
        `127.0.0.1:${submitPort} inet n - y - - smtpd -o mynetworks=127.0.0.0/8 -o smtpd_relay_restrictions=permit_mynetworks,reject_unauth_destination`,
      ]),
    );
    const pf = pfx.run('start');
    expect(pf.status, `postfix start failed:\n${pf.stderr}\n${maillog()}`).toBe(0);
    await waitForSmtp(inboundPort, 15_000);
  }, 90_000);

  afterAll(async () => {
    await pfx?.stop();
    await daemon?.stop();
    await db?.drop();
    await Promise.all([nextHop?.close(), relayWithAuth?.close(), relayPlain?.close()]);
    if (dir) rmSync(dir, { recursive: true, force: true });
  }, 60_000);

  it('accepts relay domains and their listed recipients at RCPT, rejects unlisted ones', async () => {
    const cases: [string, number, RegExp?][] = [
      ['known@relay.test', 250],
      ['Known+tag@Relay.TEST', 250],
      ['unknown@relay.test', 550, /User unknown in relay recipient table/],
      ['anyone@open.test', 250], // a relay domain that lists no recipients takes every address
      ['x@not-relayed.test', 554, /Relay access denied/],
    ];
    for (const [address, code, text] of cases) {
      const r = await rcpt(address);
      expect(r.code, `${address}: ${r.text}`).toBe(code);
      if (text) expect(r.text).toMatch(text);
    }
  });

  it('a recipient listed in SQL is accepted at once', async () => {
    expect((await rcpt('late@relay.test')).code).toBe(550);
    await db.sql.query(`INSERT INTO mailmapd.relay_recipients (address) VALUES ('Late@Relay.test')`);
    await waitFor(async () => (await rcpt('late@relay.test')).code === 250, 5_000, 'the new relay recipient at RCPT');
  });

  it('mail for a relay domain and for a domain with a transport leaves through that transport', async () => {
    await send(inboundPort, 'sender@remote.test', 'known+tag@relay.test', 'to-relay-domain');
    await send(inboundPort, 'sender@remote.test', 'someone@special.test', 'to-domain-transport');
    await waitFor(
      () => received(nextHop, 'to-relay-domain') !== undefined && received(nextHop, 'to-domain-transport') !== undefined,
      20_000,
      `the next hop (maillog:\n${maillog()})`,
    );
    expect(received(nextHop, 'to-relay-domain')!.to).toEqual(['known+tag@relay.test']);
    expect(received(nextHop, 'to-domain-transport')!.to).toEqual(['someone@special.test']);
  });

  it('mail from a sender with a relay host leaves through it, logged in with its credentials; @domain is the fallback', async () => {
    await send(submitPort, 'alice@example.org', 'friend@elsewhere.test', 'from-alice');
    await send(submitPort, 'alice+list@example.org', 'friend@elsewhere.test', 'from-alice-extension');
    await send(submitPort, 'bob@example.org', 'friend@elsewhere.test', 'from-bob');
    await waitFor(
      () => ['from-alice', 'from-alice-extension'].every((s) => received(relayWithAuth, s) !== undefined) && received(relayPlain, 'from-bob') !== undefined,
      20_000,
      `the relay hosts (maillog:\n${maillog()})`,
    );
    expect(received(relayWithAuth, 'from-alice')!.auth).toBe(CREDENTIALS);
    expect(received(relayWithAuth, 'from-alice-extension')!.auth).toBe(CREDENTIALS);
    expect(received(relayPlain, 'from-bob')!.auth).toBeUndefined();
    expect(maillog()).not.toMatch(/status=(deferred|bounced)/);
  });

  it('credentials are never logged, and never answered on a loopback port', async () => {
    expect(daemon.logs()).not.toContain('s3cret');
    const ask = async (target: { path: string } | { port: number }) => {
      const c = await socketmapClient(target);
      try {
        return await c.query('sender_relay_credentials', 'alice@example.org');
      } finally {
        c.close();
      }
    };
    expect(await ask({ path: `${dir}/sock/socketmap` })).toBe(`OK ${CREDENTIALS}`);
    expect(await ask({ port: inetSocketmapPort })).toMatch(/^TEMP .*UNIX socket/);
  });
});
