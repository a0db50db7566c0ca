// Written back from real Dovecots: Debian 12's 2.3 and Debian 13's 2.4 (in the root
// scripts/dovecot24-root.sh makes), each logging users in through the Lua door and with
// the count quota backend and the quota-clone plugin, all configured exactly as
// `mailmapd dovecot-config` prints it, against the door, the dict listener and the real
// write-back to PostgreSQL served by this process. A Dovecot login lands in last_logins; a
// message saved with doveadm shows in quota_usage within seconds, and so does its expunge.
// Fails without either Dovecot.

import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dovecotConfig } from '../../src/cli/dovecot-config.js';
import { quotaCloneConfig23, quotaCloneConfig24 } from '../../src/cli/dovecot-quota-clone-config.js';
import { dovecotLuaConfig23, dovecotLuaConfig24 } from '../../src/cli/dovecot-lua-config.js';
import { createAuthenticator, type AuthenticatorHandle } from '../../src/auth/authenticator.js';
import { parseConfigText, type Config } from '../../src/config.js';
import { createDirectory } from '../../src/directory/directory.js';
import { createDovecotRoutes } from '../../src/dovecot/route.js';
import { serveHttp, type HttpServer } from '../../src/http/server.js';
import { createHashPool, type HashPool } from '../../src/password/pool.js';
import { nativeProfile } from '../../src/sync/profile.js';
import { createSync, type Sync } from '../../src/sync/sync.js';
import { createDictHandler } from '../../src/dict/server.js';
import { parseListenAddress } from '../../src/net/listen-address.js';
import { createLogger } from '../../src/log.js';
import { createMetrics } from '../../src/metrics.js';
import { listen, type Listener } from '../../src/net/listener.js';
import { createWritebackMetrics } from '../../src/metrics.js';
import { nativeStatements } from '../../src/writeback/statements.js';
import { createWriter, type Writer } from '../../src/writeback/writer.js';
import { freePort } from '../helpers/daemon.js';
import { createTestDatabase, waitFor, type TestDatabase } from '../helpers/db.js';
import { dovecot23Target, dovecot24Target, dovecotInstance, type DovecotInstance, type DovecotTarget } from '../helpers/dovecot.js';

interface DovecotUnderTest extends DovecotTarget {
  /** Maildir under the home the daemon's userdb gives. */
  mail: string[];
  /** The Lua door's snippet `mailmapd dovecot-config --lua` prints for this version. */
  lua(config: Config, luaFile: string): string;
  quotaClone(socket: string): string[];
}

const dovecot23: DovecotUnderTest = {
  ...dovecot23Target,
  mail: ['mail_location = maildir:~/Maildir'],
  lua: (config) => dovecotLuaConfig23(config),
  quotaClone: quotaCloneConfig23,
};

const dovecot24: DovecotUnderTest = {
  ...dovecot24Target,
  mail: ['mail_driver = maildir', 'mail_path = ~/Maildir'],
  lua: (config, luaFile) => dovecotLuaConfig24(config, { luaFile }),
  quotaClone: quotaCloneConfig24,
};

describe('dovecot-config: quota-clone', () => {
  it('prints the 2.3 and 2.4 settings for the dict socket', () => {
    const out = dovecotConfig(parseConfigText('dict_listen = unix:/run/mailmapd/dict\nunix_socket_group = vmail', 'test'), []);
    expect(out).toContain('  quota_clone_dict = proxy:/run/mailmapd/dict:quota\n');
    expect(out).toContain('mail_plugins = $mail_plugins quota quota_clone\n');
    expect(out).toContain('quota_clone {\n  dict proxy {\n    dict_proxy_socket_path = /run/mailmapd/dict\n    dict_proxy_name = quota\n  }\n}\n');
    expect(out).toContain('group vmail');
  });

  it('says what to set when dict_listen has no UNIX socket', () => {
    expect(dovecotConfig(parseConfigText('', 'test'), [])).toContain('set dict_listen = unix:/run/mailmapd/dict');
    expect(dovecotConfig(parseConfigText('dict_listen = inet:127.0.0.1:7026', 'test'), [])).not.toContain('quota_clone_dict');
  });
});

const message = ['From: a@example.net', 'To: alice@example.org', 'Subject: quota', '', 'x'.repeat(2000), ''].join('\r\n');

for (const d of [dovecot23, dovecot24]) {
  describe(`interop: Dovecot ${d.version} quota-clone to dict_listen`, { timeout: 30_000 }, () => {
    let db: TestDatabase;
    let writer: Writer;
    let dict: Listener;
    let sync: Sync;
    let pool: HashPool;
    let auth: AuthenticatorHandle;
    let http: HttpServer;
    let dc: DovecotInstance;
    const logs: string[] = [];
    const doveadm = (args: string[], input?: string) => dc.doveadm(args, input);
    const usage = async (address: string) =>
      (await db.sql.query<{ bytes: string | null; messages: string | null }>('SELECT bytes, messages FROM mailmapd.quota_usage WHERE address = $1', [address]))
        .rows[0];

    beforeAll(async () => {
      d.requireInstalled();
      db = await createTestDatabase();
      await db.sql.query(`INSERT INTO mailmapd.domains (name) VALUES ('example.org');
        INSERT INTO mailmapd.alias_domains (name, target) VALUES ('alias.test', 'example.org');
        INSERT INTO mailmapd.mailboxes (address, password, quota_bytes) VALUES ('alice@example.org', '{PLAIN}alice-pw', 1073741824)`);
      const logger = createLogger('debug', (l) => logs.push(l));
      const metrics = createMetrics(false);
      const wm = createWritebackMetrics(metrics.registry);
      writer = createWriter({
        url: db.url,
        checkRecovery: true,
        statements: nativeStatements,
        logger,
        metrics: wm,
        lastLoginIntervalMs: 60_000,
        maxPending: 1000,
        flushIntervalMs: 200,
        reconnectMaxDelayMs: 500,
      });
      dc = dovecotInstance(d, 'mailmapd-quota-clone-');

      // The daemon's parts as serve.ts wires them: directory from SQL, the Lua door over the
      // authenticator, whose logins go to the writer, and the dict listener.
      const directory = createDirectory({ recipientDelimiter: '+' });
      sync = createSync({
        databaseUrl: db.url,
        profile: nativeProfile,
        directory,
        logger,
        metrics,
        pollIntervalMs: 5000,
        retentionMs: 86_400_000,
        reconnectMaxDelayMs: 500,
      });
      sync.start();
      await sync.firstLoad();
      const config = parseConfigText(
        [`http_listen = 127.0.0.1:${await freePort()}`, `mail_home = ${dc.inside(dc.dir)}/vmail/%d/%n`, 'mail_gid = 5001'].join('\n'),
        'test',
      );
      pool = createHashPool({ workers: 1, queueLimit: 100, defaultScheme: 'CRYPT', metrics, logger });
      auth = createAuthenticator({
        directory,
        pool,
        logger,
        metrics,
        userdb: { mailHome: config.mail_home, mailUid: config.mail_uid, mailGid: config.mail_gid },
        cacheSize: 100,
        onLogin: (address, ctx) => writer.login(address, ctx.service, ctx.remoteIp),
      });
      http = await serveHttp(
        config.http_listen[0]!,
        createDovecotRoutes({ authenticator: auth, directory, config, logger, metrics }),
        { maxConnections: 100, maxBodyBytes: 65536, idleTimeoutMs: 5000, requestTimeoutMs: 10_000 },
        { mode: 0o660, group: '' },
        logger,
        metrics,
      );

      const socket = join(dc.dir, 'dict');
      dict = await listen(
        parseListenAddress(`unix:${socket}`),
        'dict',
        createDictHandler({
          usage: writer.usage,
          mailbox: (u) => {
            const m = directory.user(u);
            return m.status === 'unknown' ? undefined : m.address;
          },
          logger,
          metrics,
          writebackMetrics: wm,
          maxRequestBytes: 4096,
        }),
        { maxConnections: 100, idleTimeoutMs: 10_000 },
        { mode: 0o666, group: '' }, // the mail processes run as uid 5000
        logger,
      );
      dc.writeConfig(['protocols =', 'auth_failure_delay = 0', ...d.mail, d.lua(config, dc.luaFile), ...d.quotaClone(dc.inside(socket))]);
      await dc.start(['auth-userdb']);
    }, 60_000);

    afterAll(async () => {
      await dc?.stop();
      await dict?.close(0);
      auth?.close();
      await http?.close(0);
      await sync?.stop();
      await pool?.close();
      await writer?.stop();
      await db?.drop();
    }, 30_000);

    it('a login through Dovecot lands in last_logins, under the canonical address', async () => {
      const r = await doveadm(['auth', 'test', '-x', 'service=imap', '-x', 'rip=192.0.2.44', 'Alice@Alias.TEST', 'alice-pw']);
      expect(r.code, r.out).toBe(0);
      await waitFor(
        async () => (await db.sql.query(`SELECT 1 FROM mailmapd.last_logins WHERE address = 'alice@example.org'`)).rowCount === 1,
        5000,
        'the login in last_logins',
      );
      const row = (await db.sql.query(`SELECT service, host(remote_ip) AS ip FROM mailmapd.last_logins WHERE address = 'alice@example.org'`)).rows[0];
      expect(row).toEqual({ service: 'imap', ip: '192.0.2.44' });
    });

    // Eventually: how soon is the write-back's flush interval, measured in bench/ (writeback).
    it('a saved message shows in quota_usage, and its expunge too', async () => {
      const saved = await doveadm(['save', '-u', 'alice@example.org'], message);
      expect(saved.code, saved.out + dc.log()).toBe(0);
      await waitFor(async () => (await usage('alice@example.org'))?.messages === '1', 15_000, 'the saved message in quota_usage');
      const row = await usage('alice@example.org');
      expect(Number(row!.bytes)).toBeGreaterThanOrEqual(message.length - 10);

      const second = await doveadm(['save', '-u', 'alice@example.org'], message);
      expect(second.code, second.out).toBe(0);
      await waitFor(async () => (await usage('alice@example.org'))?.messages === '2', 15_000, 'the second message');

      const expunged = await doveadm(['expunge', '-u', 'alice@example.org', 'mailbox', 'INBOX', 'all']);
      expect(expunged.code, expunged.out).toBe(0);
      await waitFor(async () => (await usage('alice@example.org'))?.messages === '0', 15_000, 'the expunge in quota_usage');
      expect((await usage('alice@example.org'))!.bytes).toBe('0');
      const log = dc.log();
      expect(log).toMatch(/starting up/); // the log these Dovecots write
      expect(log).not.toMatch(/quota.clone.*(failed|error)|dict.*(failed|error)|Received reply/i);
    });
  });
}
