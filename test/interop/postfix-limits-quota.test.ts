// Sending limits and quota at RCPT as a real Postfix asks the daemon's own policy door,
// configured with the check_policy_service lines `mailmapd postfix-config` prints: SMTP AUTH
// through the daemon, a sender sends until deferred (the deferral names the limit), a
// domain's total holds across two mailboxes, a message to too many recipients is cut at the
// limit; inbound mail to a full mailbox, an alias of it, through the catch-all, and an alias
// with one full and one non-full target; a usage change reaches the answer. Accepted mail
// is discarded.
//
// A second smtpd asks the same service run in the test's process behind a bare door
// (helpers/policy-door.ts), for what needs the service's clock or an unloaded directory:
// the window slides; a service not loaded answers DUNNO; with the door down mail flows
// (default_action=DUNNO). Fails, never skips, without
// Postfix. Runs as root.

import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { postfixConfig } from '../../src/cli/postfix-config.js';
import { parseConfigText } from '../../src/config.js';
import { createDirectory } from '../../src/directory/directory.js';
import { silentLogger } from '../../src/log.js';
import { createPolicy, type Policy } from '../../src/smtpd-policy/start.js';
import { nativeProfile } from '../../src/sync/profile.js';
import type { Sync } from '../../src/sync/sync.js';
import { freePort, startDaemon, type Daemon } from '../helpers/daemon.js';
import { createTestDatabase, waitFor, type TestDatabase } from '../helpers/db.js';
import { startTestDoor, type TestDoor } from '../helpers/policy-door.js';
import { masterCf, postfixInstance, type PostfixInstance } from '../helpers/postfix.js';
import { smtpSession, waitForSmtp, type SmtpSession } from '../helpers/smtp.js';
import { startTestSync } from '../helpers/sync.js';

let db: TestDatabase;
let daemon: Daemon;
let pfx: PostfixInstance;
let sync: Sync;
let policy: Policy;
let door: TestDoor;
/** smtpd asking the daemon's door; smtpd asking the test's door. */
let smtpPort: number;
let testSmtpPort: number;
/** The test service's clock: the test moves it to slide the windows. */
let offset = 0;

const plain = (user: string, pass: string) => Buffer.from(`\0${user}\0${pass}`).toString('base64');

async function session(login?: string, port = smtpPort): Promise<SmtpSession> {
  const s = await smtpSession(port);
  expect((await s.command('EHLO client.test')).code).toBe(250);
  if (login !== undefined) {
    const r = await s.command(`AUTH PLAIN ${plain(login, 'pw')}`);
    expect(r.code, r.text).toBe(235);
  }
  return s;
}

type Reply = { code: number; text: string };

/** One message: MAIL, RCPT each, DATA when any was accepted. The RCPT replies and the final one. */
async function send(s: SmtpSession, from: string, to: string[]): Promise<{ rcpt: Reply[]; data?: Reply }> {
  expect((await s.command(`MAIL FROM:<${from}>`)).code).toBe(250);
  const rcpt: Reply[] = [];
  for (const r of to) rcpt.push(await s.command(`RCPT TO:<${r}>`));
  if (!rcpt.some((r) => r.code === 250)) {
    await s.command('RSET');
    return { rcpt };
  }
  expect((await s.command('DATA')).code).toBe(354);
  const data = await s.command(`From: <${from}>\r\nSubject: test\r\n\r\nhello\r\n.`);
  return { rcpt, data };
}

/** The reply to one inbound RCPT. */
async function rcpt(address: string, port = smtpPort): Promise<number> {
  const s = await session(undefined, port);
  try {
    await s.command('MAIL FROM:<someone@remote.test>');
    return (await s.command(`RCPT TO:<${address}>`)).code;
  } finally {
    await s.close();
  }
}

const remote = (n: number, tag: string) => Array.from({ length: n }, (_, i) => `${tag}${i}@remote.test`);
const maillog = () => pfx?.maillog() ?? '';

beforeAll(async () => {
  expect(existsSync('/usr/sbin/postfix'), 'Postfix must be installed (apt-get install postfix)').toBe(true);
  db = await createTestDatabase();
  await db.sql.query(`
    INSERT INTO mailmapd.domains (name) VALUES ('example.org'), ('catchall.test');
    INSERT INTO mailmapd.domains (name, send_limit_day) VALUES ('limited.test', 5);
    INSERT INTO mailmapd.mailboxes (address, password, quota_bytes, send_limit_hour) VALUES
      ('alice@example.org', '{PLAIN}pw', 0, 5),
      ('slider@example.org', '{PLAIN}pw', 0, 2),
      ('carol@example.org', '{PLAIN}pw', 0, NULL),
      ('full@example.org', '{PLAIN}pw', 1000, NULL),
      ('roomy@example.org', '{PLAIN}pw', 1000, NULL),
      ('m1@limited.test', '{PLAIN}pw', 0, NULL),
      ('m2@limited.test', '{PLAIN}pw', 0, NULL);
    INSERT INTO mailmapd.aliases (address, destination) VALUES
      ('info@example.org', 'full@example.org'),
      ('team@example.org', 'full@example.org'), ('team@example.org', 'roomy@example.org'),
      ('@catchall.test', 'full@example.org');
    INSERT INTO mailmapd.quota_usage (address, bytes, messages, updated) VALUES ('full@example.org', 5000, 5, now());`);
  daemon = await startDaemon({
    databaseUrl: db.url,
    config: { policy_listen: `inet:127.0.0.1:${await freePort()}`, send_max_recipients: '3' },
  });

  // The test's own service, with its own clock, on the second smtpd.
  const started = startTestSync({ databaseUrl: db.url, directory: createDirectory({ recipientDelimiter: '+' }) });
  sync = started.sync;
  await sync.firstLoad();
  const config = parseConfigText('sync_poll_interval = 100ms\n', 'test.conf');
  policy = createPolicy(
    () => config,
    started.directory,
    nativeProfile,
    silentLogger,
    new Registry(),
    () => Date.now() + offset,
  );
  policy.start(db.url, undefined);
  door = await startTestDoor(policy.service);

  pfx = postfixInstance(tmpdir(), 'mailmapd-limits-');
  smtpPort = await freePort();
  testSmtpPort = await freePort();
  const daemonConfig = parseConfigText(readFileSync(daemon.configPath, 'utf8'), daemon.configPath);
  const printed = postfixConfig(daemonConfig);
  const check = `check_policy_service { inet:${daemonConfig.policy_listen[0]!.text.replace(/^inet:/, '')}, default_action=DUNNO }`;
  expect(printed).toContain(`smtpd_recipient_restrictions = ${check}`);
  expect(printed).toContain(`smtpd_end_of_data_restrictions = ${check}`);
  const testCheck = `check_policy_service { inet:127.0.0.1:${door.port}, default_action=DUNNO }`;
  writeFileSync(
    join(pfx.dir, 'etc', 'main.cf'),
    pfx.mainCf([
      printed,
      'smtpd_sasl_auth_enable = yes',
      'smtpd_sasl_type = dovecot',
      `smtpd_sasl_path = inet:127.0.0.1:${daemon.ports.auth}`,
      'smtpd_tls_auth_only = no',
      'smtpd_relay_restrictions = permit_sasl_authenticated, reject_unauth_destination',
      '# Nothing is delivered: what smtpd accepted is dropped.',
      'virtual_transport = discard',
      'default_transport = discard',
      `test_door_check = ${testCheck}`,
    ]),
  );
  writeFileSync(
    join(pfx.dir, 'etc', 'master.cf'),
    masterCf([
      `127.0.0.1:${smtpPort} inet n - y - - smtpd`,
      `127.0.0.1:${testSmtpPort} inet n - y - - smtpd`,
      '  -o smtpd_recipient_restrictions=$test_door_check',
      '  -o smtpd_end_of_data_restrictions=$test_door_check',
    ]),
  );
  const pf = pfx.run('start');
  expect(pf.status, `postfix start failed:\n${pf.stderr}\n${maillog()}`).toBe(0);
  for (const port of [smtpPort, testSmtpPort]) {
    await waitForSmtp(port, 15_000);
  }
  // The daemon's follower has read the usage once its directory is loaded.
  await waitFor(async () => (await rcpt('full@example.org')) === 552, 10_000, 'the full mailbox refused');
}, 120_000);

afterAll(async () => {
  await pfx?.stop();
  await door?.close();
  await policy?.stop();
  await sync?.stop();
  await daemon?.stop();
  await db?.drop();
  if (pfx) rmSync(pfx.dir, { recursive: true, force: true });
}, 60_000);

describe('sending limits through a real Postfix and the daemon', () => {
  it('sends until deferred; the deferral names the limit; the accepted recipients still get the message', async () => {
    const s = await session('alice@example.org');
    try {
      for (let i = 0; i < 2; i++) {
        const r = await send(s, 'alice@example.org', remote(2, `a${i}-`));
        expect(r.rcpt.map((x) => x.code)).toEqual([250, 250]);
        expect(r.data?.code).toBe(250);
      }
      const r = await send(s, 'alice@example.org', remote(2, 'a2-'));
      expect(r.rcpt[0]!.code).toBe(250);
      expect(r.rcpt[1]!.code).toBe(450);
      expect(r.rcpt[1]!.text).toMatch(/4\.7\.1 .*5 recipients per hour for alice@example\.org/);
      expect(r.data?.code).toBe(250);
      const after = await send(s, 'alice@example.org', remote(1, 'a3-'));
      expect(after.rcpt[0]!.code, maillog()).toBe(450);
    } finally {
      await s.close();
    }
    expect(daemon.logs()).toMatch(/sending limit reached.*mailbox=alice@example\.org limit=hour value=5/);
    // Mail from outside to alice is not limited.
    expect(await rcpt('alice@example.org')).toBe(250);
    // The counts are in the database for every host and for panels.
    await waitFor(
      async () => (await db.sql.query(`SELECT day FROM mailmapd.send_usage WHERE address = 'alice@example.org'`)).rows[0]?.day === 5,
      10_000,
      'send_usage',
    );
  });

  it("the domain's total holds across two mailboxes", async () => {
    const s1 = await session('m1@limited.test');
    const s2 = await session('M2@Limited.TEST');
    try {
      expect((await send(s1, 'm1@limited.test', remote(3, 'm1-'))).rcpt.map((x) => x.code)).toEqual([250, 250, 250]);
      const r = await send(s2, 'm2@limited.test', remote(3, 'm2-'));
      expect(r.rcpt.map((x) => x.code)).toEqual([250, 250, 450]);
      expect(r.rcpt[2]!.text).toMatch(/5 recipients per day for the domain limited\.test/);
    } finally {
      await s1.close();
      await s2.close();
    }
  });

  it('a message to too many recipients is cut at send_max_recipients', async () => {
    const s = await session('carol@example.org');
    try {
      const r = await send(s, 'carol@example.org', remote(5, 'c-'));
      expect(r.rcpt.map((x) => x.code)).toEqual([250, 250, 250, 450, 450]);
      expect(r.rcpt[3]!.text).toMatch(/at most 3 recipients per message/);
      expect(r.data?.code).toBe(250);
      // The next message starts afresh.
      expect((await send(s, 'carol@example.org', remote(3, 'c2-'))).rcpt.map((x) => x.code)).toEqual([250, 250, 250]);
    } finally {
      await s.close();
    }
  });

  it('the window slides (the test service, its clock moved an hour on)', async () => {
    const s = await session('slider@example.org', testSmtpPort);
    try {
      expect((await send(s, 'slider@example.org', remote(3, 's-'))).rcpt.map((x) => x.code)).toEqual([250, 250, 450]);
      offset += 61 * 60_000;
      expect((await send(s, 'slider@example.org', remote(2, 's2-'))).rcpt.map((x) => x.code)).toEqual([250, 250]);
    } finally {
      await s.close();
    }
  });
});

describe('quota at RCPT through a real Postfix and the daemon', () => {
  it('refuses a full mailbox, an alias of it, the catch-all to it; takes an alias with room somewhere', async () => {
    const s = await session();
    try {
      await s.command('MAIL FROM:<someone@remote.test>');
      for (const r of ['full@example.org', 'Full+tag@example.org', 'info@example.org', 'whoever@catchall.test']) {
        const reply = await s.command(`RCPT TO:<${r}>`);
        expect(reply.code, `${r}: ${reply.text}`).toBe(552);
        expect(reply.text).toMatch(/5\.2\.2 .*mailbox is full/);
      }
      expect((await s.command('RCPT TO:<team@example.org>')).code).toBe(250);
      expect((await s.command('RCPT TO:<roomy@example.org>')).code).toBe(250);
    } finally {
      await s.close();
    }
  });

  it('a usage change written by any host reaches the answer without a reload', async () => {
    await db.sql.query(`UPDATE mailmapd.quota_usage SET bytes = 10, updated = now() WHERE address = 'full@example.org'`);
    await waitFor(async () => (await rcpt('info@example.org')) === 250, 10_000, 'the emptied mailbox accepted');
    await db.sql.query(`INSERT INTO mailmapd.quota_usage (address, bytes, messages, updated) VALUES ('roomy@example.org', 99999, 1, now())`);
    await waitFor(async () => (await rcpt('roomy@example.org')) === 552, 10_000, 'the filled mailbox refused');
  });
});

describe('what the service cannot decide', () => {
  it('a service whose directory is not loaded answers DUNNO: mail flows', async () => {
    const empty = createPolicy(
      () => parseConfigText('send_limit_hour = 1\n', 'x'),
      createDirectory({ recipientDelimiter: '+' }),
      nativeProfile,
      silentLogger,
      new Registry(),
    );
    const port = door.port;
    await door.close();
    door = await startTestDoor(empty.service, port);
    try {
      expect(await rcpt('roomy@example.org', testSmtpPort)).toBe(250);
    } finally {
      await empty.stop();
    }
  });

  it('with the policy door down, default_action=DUNNO lets mail flow', async () => {
    // The daemon's socketmap must stay up for the recipient to be known at all: the door
    // that goes away is the test's.
    await door.close();
    expect(await rcpt('roomy@example.org', testSmtpPort), maillog()).toBe(250);
  });
});
