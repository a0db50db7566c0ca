// The policy service as a real Postfix asks it, configured with the check_policy_service
// lines `mailmapd postfix-config` prints: SMTP AUTH through the running daemon, a sender
// sends until deferred (the deferral names the limit), a domain's total holds across two
// mailboxes, a message to too many recipients is cut at the limit, the window slides; inbound mail to a full
// mailbox, an alias of it, through the catch-all, and an alias with one full and one
// non-full target; a usage change reaches the answer; with the service not loaded, or
// down, mail flows (DUNNO, default_action=DUNNO). Accepted mail is discarded. Fails, never
// skips, without Postfix. Runs as root.
//
// The service runs in the test's process behind a bare door (helpers/policy-door.ts) until
// the daemon's own `policy_listen` door exists.

import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { policyServiceLines } from '../../src/cli/postfix-policy-config.js';
import { postfixConfig } from '../../src/cli/postfix-config.js';
import { parseConfigText } from '../../src/config.js';
import { createDirectory } from '../../src/directory/directory.js';
import { silentLogger } from '../../src/log.js';
import { parseListenList } from '../../src/net/listen-address.js';
import { createPolicy, type Policy } from '../../src/smtpd-policy/start.js';
import { nativeProfile } from '../../src/sync/profile.js';
import type { Sync } from '../../src/sync/sync.js';
import { startDaemon, freePort, type Daemon } from '../helpers/daemon.js';
import { createTestDatabase, waitFor, type TestDatabase } from '../helpers/db.js';
import { masterCf, postfixInstance, type PostfixInstance } from '../helpers/postfix.js';
import { startTestDoor, type TestDoor } from '../helpers/policy-door.js';
import { smtpSession, type SmtpSession } from '../helpers/smtp.js';
import { startTestSync } from '../helpers/sync.js';

let db: TestDatabase;
let daemon: Daemon;
let pfx: PostfixInstance;
let sync: Sync;
let policy: Policy;
let door: TestDoor;
let smtpPort: number;
let doorPort: number;
/** The service's clock: the test moves it to slide the windows. */
let offset = 0;

const plain = (user: string, pass: string) => Buffer.from(`\0${user}\0${pass}`).toString('base64');

async function session(login?: string): Promise<SmtpSession> {
  const s = await smtpSession(smtpPort);
  expect((await s.command('EHLO client.test')).code).toBe(250);
  if (login !== undefined) {
    const r = await s.command(`AUTH PLAIN ${plain(login, 'pw')}`);
    expect(r.code, r.text).toBe(235);
  }
  return s;
}

/** One message: MAIL, RCPT each, DATA when any was accepted. The RCPT replies and the final one. */
async function send(s: SmtpSession, from: string, to: string[]): Promise<{ rcpt: { code: number; text: string }[]; data?: { code: number; text: string } }> {
  expect((await s.command(`MAIL FROM:<${from}>`)).code).toBe(250);
  const rcpt = [];
  for (const r of to) rcpt.push(await s.command(`RCPT TO:<${r}>`));
  if (!rcpt.some((r) => r.code === 250)) {
    await s.command('RSET');
    return { rcpt };
  }
  expect((await s.command('DATA')).code).toBe(354);
  const data = await s.command(`From: <${from}>\r\nSubject: test\r\n\r\nhello\r\n.`);
  return { rcpt, data };
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
  daemon = await startDaemon({ databaseUrl: db.url });
  const started = startTestSync({ databaseUrl: db.url, directory: createDirectory({ recipientDelimiter: '+' }) });
  sync = started.sync;
  await sync.firstLoad();
  const config = parseConfigText('send_max_recipients = 3\nsync_poll_interval = 100ms\n', 'test.conf');
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
  doorPort = door.port;

  pfx = postfixInstance(tmpdir(), 'mailmapd-policy-');
  smtpPort = await freePort();
  const daemonConfig = parseConfigText(readFileSync(daemon.configPath, 'utf8'), daemon.configPath);
  const policyLines = policyServiceLines(parseListenList(`inet:127.0.0.1:${doorPort}`)[0]).join('\n');
  expect(policyLines).toContain(`check_policy_service { inet:127.0.0.1:${doorPort}, default_action=DUNNO }`);
  writeFileSync(
    join(pfx.dir, 'etc', 'main.cf'),
    pfx.mainCf([
      postfixConfig(daemonConfig),
      policyLines,
      'smtpd_sasl_auth_enable = yes',
      'smtpd_sasl_type = dovecot',
      `smtpd_sasl_path = inet:127.0.0.1:${daemon.ports.auth}`,
      'smtpd_tls_auth_only = no',
      'smtpd_relay_restrictions = permit_sasl_authenticated, reject_unauth_destination',
      '# Nothing is delivered: what smtpd accepted is dropped.',
      'virtual_transport = discard',
      'default_transport = discard',
    ]),
  );
  writeFileSync(join(pfx.dir, 'etc', 'master.cf'), masterCf([`127.0.0.1:${smtpPort} inet n - y - - smtpd`]));
  const pf = pfx.run('start');
  expect(pf.status, `postfix start failed:\n${pf.stderr}\n${maillog()}`).toBe(0);
  await waitFor(
    async () => {
      try {
        await (await smtpSession(smtpPort)).close();
        return true;
      } catch {
        return false;
      }
    },
    15_000,
    'Postfix smtpd',
  );
}, 90_000);

afterAll(async () => {
  await pfx?.stop();
  await door?.close();
  await policy?.stop();
  await sync?.stop();
  await daemon?.stop();
  await db?.drop();
  if (pfx) rmSync(pfx.dir, { recursive: true, force: true });
}, 60_000);

describe('sending limits through a real Postfix', () => {
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
      // An hour later the first messages have left the window.
      offset += 61 * 60_000;
      const later = await send(s, 'alice@example.org', remote(2, 'a4-'));
      expect(later.rcpt.map((x) => x.code)).toEqual([250, 250]);
    } finally {
      await s.close();
    }
    // Mail from outside to alice is not limited.
    const inbound = await session();
    try {
      expect((await send(inbound, 'someone@remote.test', ['alice@example.org'])).rcpt[0]!.code).toBe(250);
    } finally {
      await inbound.close();
    }
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
});

describe('quota at RCPT through a real Postfix', () => {
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
    const rcpt = async (address: string) => {
      const s = await session();
      try {
        await s.command('MAIL FROM:<someone@remote.test>');
        return (await s.command(`RCPT TO:<${address}>`)).code;
      } finally {
        await s.close();
      }
    };
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
    const old = door;
    await old.close();
    door = await startTestDoorOn(empty, doorPort);
    try {
      const s = await session();
      try {
        await s.command('MAIL FROM:<someone@remote.test>');
        expect((await s.command('RCPT TO:<roomy@example.org>')).code).toBe(250);
      } finally {
        await s.close();
      }
    } finally {
      await door.close();
      await empty.stop();
    }
  });

  it('with the service down, default_action=DUNNO lets mail flow', async () => {
    const s = await session('carol@example.org');
    try {
      const r = await send(s, 'carol@example.org', remote(1, 'down-'));
      expect(r.rcpt[0]!.code, maillog()).toBe(250);
      expect(r.data?.code).toBe(250);
    } finally {
      await s.close();
    }
  });
});

async function startTestDoorOn(p: Policy, port: number): Promise<TestDoor> {
  return startTestDoor(p.service, port);
}
