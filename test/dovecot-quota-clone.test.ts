// Written back from real Dovecots: Debian 12's 2.3 and Debian 13's 2.4 (in the root
// scripts/dovecot24-root.sh makes), each logging users in through the Lua door and with
// the count quota backend and the quota-clone plugin, all configured exactly as
// `mailmapd dovecot-config` prints it, against the door, the dict listener and the real
// write-back to PostgreSQL served by this process. A Dovecot login lands in last_logins; a
// message saved with doveadm shows in quota_usage within seconds, and so does its expunge.
// Fails without either Dovecot.

import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, chownSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dovecotConfig } from '../src/cli/dovecot-config.js';
import { quotaCloneConfig23, quotaCloneConfig24 } from '../src/cli/dovecot-quota-clone-config.js';
import { defaultLuaFile, dovecotLuaConfig23, dovecotLuaConfig24 } from '../src/cli/dovecot-lua-config.js';
import { createAuthenticator, type AuthenticatorHandle } from '../src/auth/authenticator.js';
import { parseConfigText, type Config } from '../src/config.js';
import { createDirectory } from '../src/directory/directory.js';
import { createDovecotRoutes } from '../src/dovecot/route.js';
import { serveHttp, type HttpServer } from '../src/http/server.js';
import { createHashPool, type HashPool } from '../src/password/pool.js';
import { nativeProfile } from '../src/sync/profile.js';
import { createSync, type Sync } from '../src/sync/sync.js';
import { createDictHandler } from '../src/dict/server.js';
import { parseListenAddress } from '../src/net/listen-address.js';
import { createLogger } from '../src/log.js';
import { createMetrics } from '../src/metrics.js';
import { listen, type Listener } from '../src/net/listener.js';
import { createWritebackMetrics } from '../src/writeback/metrics.js';
import { nativeStatements } from '../src/writeback/statements.js';
import { createWriter, type Writer } from '../src/writeback/writer.js';
import { freePort } from './helpers/daemon.js';
import { createTestDatabase, waitFor, type TestDatabase } from './helpers/db.js';
import { dovecot24Root, hasLuaModule } from './helpers/dovecot.js';
import { stopByPidFile } from './helpers/pid-file.js';

interface DovecotUnderTest {
  version: string;
  root: string;
  requireInstalled(): void;
  preamble: string[];
  /** Maildir under the home the daemon's userdb gives. */
  mail: string[];
  /** The Lua door's snippet `mailmapd dovecot-config --lua` prints for this version. */
  lua(config: Config, luaFile: string): string;
  quotaClone(socket: string): string[];
}

const dovecot23: DovecotUnderTest = {
  version: '2.3',
  root: '',
  requireInstalled() {
    expect(spawnSync('dovecot', ['--version']).status, 'dovecot must be installed (apt-get install dovecot-core)').toBe(0);
    expect(hasLuaModule(''), 'dovecot-auth-lua must be installed').toBe(true);
  },
  preamble: [],
  mail: ['mail_location = maildir:~/Maildir'],
  lua: (config) => dovecotLuaConfig23(config),
  quotaClone: quotaCloneConfig23,
};

const dovecot24: DovecotUnderTest = {
  version: '2.4',
  root: dovecot24Root,
  requireInstalled() {
    expect(
      existsSync(join(dovecot24Root, 'usr/sbin/dovecot')) && hasLuaModule(dovecot24Root),
      `Dovecot 2.4 with dovecot-auth-lua must be in ${dovecot24Root}: run scripts/dovecot24-root.sh (as root)`,
    ).toBe(true);
  },
  preamble: ['dovecot_config_version = 2.4.1', 'dovecot_storage_version = 2.4.1'],
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
    let dir: string;
    let conf: string;
    const logs: string[] = [];
    const inside = (path: string) => (d.root === '' ? path : path.slice(d.root.length));
    const command = (bin: string, args: string[]): [string, string[]] => (d.root === '' ? [bin, args] : ['chroot', [d.root, bin, ...args]]);
    const doveadm = (args: string[], input?: string) =>
      new Promise<{ code: number | null; out: string }>((resolve, reject) => {
        const child = spawn(...command('doveadm', ['-c', conf, ...args]), { stdio: ['pipe', 'pipe', 'pipe'] });
        let out = '';
        child.stdout.on('data', (x) => (out += x));
        child.stderr.on('data', (x) => (out += x));
        child.once('error', (err) => reject(new Error(`doveadm is required for this interop test: ${err.message}`)));
        child.once('close', (code) => resolve({ code, out }));
        child.stdin.end(input ?? '');
      });
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
      dir = mkdtempSync(join(d.root === '' ? tmpdir() : join(d.root, 'tmp'), 'mailmapd-quota-clone-'));
      chmodSync(dir, 0o755);
      for (const sub of ['run', 'state', 'vmail']) mkdirSync(join(dir, sub));
      chownSync(join(dir, 'vmail'), 5000, 5001);

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
        [`http_listen = 127.0.0.1:${await freePort()}`, `mail_home = ${inside(dir)}/vmail/%d/%n`, 'mail_gid = 5001'].join('\n'),
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
        { maxConnections: 100, maxBodyBytes: 65536, idleTimeoutMs: 5000 },
        { mode: 0o660, group: '' },
        logger,
        metrics,
      );
      let luaFile = defaultLuaFile;
      if (d.root !== '') {
        luaFile = join(dir, 'auth-mailmapd.lua'); // a chrooted Dovecot sees no file outside its root
        copyFileSync(defaultLuaFile, luaFile);
      }

      const socket = join(dir, 'dict');
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
      conf = inside(join(dir, 'dovecot.conf'));
      writeFileSync(
        join(dir, 'dovecot.conf'),
        [
          ...d.preamble,
          `base_dir = ${inside(dir)}/run`,
          `state_dir = ${inside(dir)}/state`,
          `log_path = ${inside(dir)}/dovecot.log`,
          'protocols =',
          'ssl = no',
          'auth_failure_delay = 0',
          ...d.mail,
          d.lua(config, inside(luaFile)),
          ...d.quotaClone(inside(socket)),
        ].join('\n') + '\n',
      );
      const start = spawnSync(...command('dovecot', ['-c', conf]), { stdio: 'ignore', timeout: 20_000 });
      const log = () => (existsSync(join(dir, 'dovecot.log')) ? readFileSync(join(dir, 'dovecot.log'), 'utf8') : 'dovecot did not start');
      expect(start.status, log()).toBe(0);
      await waitFor(() => existsSync(join(dir, 'run', 'auth-userdb')) && existsSync(join(dir, 'run', 'master.pid')), 10_000, 'dovecot sockets');
    }, 60_000);

    afterAll(async () => {
      if (dir) await stopByPidFile(join(dir, 'run', 'master.pid'), 'dovecot');
      await dict?.close(0);
      auth?.close();
      await http?.close(0);
      await sync?.stop();
      await pool?.close();
      await writer?.stop();
      await db?.drop();
      if (dir) rmSync(dir, { recursive: true, force: true });
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

    it('a saved message shows in quota_usage within seconds, and its expunge too', async () => {
      const saved = await doveadm(['save', '-u', 'alice@example.org'], message);
      expect(saved.code, saved.out + readFileSync(join(dir, 'dovecot.log'), 'utf8')).toBe(0);
      const ms = await waitFor(async () => (await usage('alice@example.org'))?.messages === '1', 5000, 'the saved message in quota_usage');
      const row = await usage('alice@example.org');
      expect(Number(row!.bytes)).toBeGreaterThanOrEqual(message.length - 10);
      expect(ms).toBeLessThan(5000);

      const second = await doveadm(['save', '-u', 'alice@example.org'], message);
      expect(second.code, second.out).toBe(0);
      await waitFor(async () => (await usage('alice@example.org'))?.messages === '2', 5000, 'the second message');

      const expunged = await doveadm(['expunge', '-u', 'alice@example.org', 'mailbox', 'INBOX', 'all']);
      expect(expunged.code, expunged.out).toBe(0);
      await waitFor(async () => (await usage('alice@example.org'))?.messages === '0', 5000, 'the expunge in quota_usage');
      expect((await usage('alice@example.org'))!.bytes).toBe('0');
      const log = readFileSync(join(dir, 'dovecot.log'), 'utf8');
      expect(log).toMatch(/starting up/); // the log these Dovecots write
      expect(log).not.toMatch(/quota.clone.*(failed|error)|dict.*(failed|error)|Received reply/i);
    });
  });
}
