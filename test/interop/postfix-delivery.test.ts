// Mail through a real Postfix and a real Dovecot, configured with what `mailmapd
// postfix-config` and `mailmapd dovecot-config --lua` print: Debian's Postfix (smtpd and the
// lmtp client chrooted, as Debian ships them) asks the running daemon over its socketmap,
// authenticates SMTP clients on its auth socket, and delivers to Dovecot's LMTP, whose Lua
// userdb asks the daemon where each mailbox lives. Messages are sent over SMTP and looked for
// in the Maildirs. Two setups: an inet socketmap with Debian 12's Dovecot 2.3, and a UNIX
// socketmap (through proxymap) with Debian 13's Dovecot 2.4 in the root that
// scripts/dovecot24-root.sh makes. Fails, never skips, without postfix, dovecot-core,
// dovecot-lmtpd, dovecot-auth-lua or that root (`.ci/run` provides them). Runs as root.

import { spawnSync } from 'node:child_process';
import { chownSync, copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dovecotConfig } from '../../src/cli/dovecot-config.js';
import { dovecotLmtpSocket } from '../../src/cli/dovecot-lmtp-config.js';
import { defaultLuaFile, dovecotLuaConfig, dovecotLuaConfig23, dovecotLuaConfig24 } from '../../src/cli/dovecot-lua-config.js';
import { postfixConfig } from '../../src/cli/postfix-config.js';
import { parseConfigText, type Config } from '../../src/config.js';
import { hashPassword } from '../../src/password/hash.js';
import { freePort, startDaemon, type Daemon } from '../helpers/daemon.js';
import { createTestDatabase, waitFor, type TestDatabase } from '../helpers/db.js';
import { dovecot24Root, hasLuaModule } from '../helpers/dovecot.js';
import { stopByPidFile } from '../helpers/pid-file.js';
import { masterCf, postfixInstance, type PostfixInstance } from '../helpers/postfix.js';
import { smtpSession, type SmtpSession } from '../helpers/smtp.js';

const MAIL_UID = 5000; // the daemon's default mail_uid and mail_gid, answered by its userdb

interface DovecotUnderTest {
  version: '2.3' | '2.4';
  /** '' for the host's Dovecot; else the root it runs chrooted in. */
  root: string;
  /** Lines a dovecot.conf of this version starts with. */
  preamble: string[];
  /** dovecot.conf lines for a Maildir under each mailbox's home and the Lua passdb/userdb. */
  settings(config: Config, luaFile: string): string[];
}

const dovecot23: DovecotUnderTest = {
  version: '2.3',
  root: '',
  preamble: [],
  settings: (config) => ['mail_location = maildir:~/Maildir', dovecotLuaConfig23(config)],
};

const dovecot24: DovecotUnderTest = {
  version: '2.4',
  root: dovecot24Root,
  preamble: ['dovecot_config_version = 2.4.1', 'dovecot_storage_version = 2.4.1'],
  settings: (config, luaFile) => ['mail_driver = maildir', 'mail_path = ~/Maildir', dovecotLuaConfig24(config, { luaFile })],
};

function requirePeers(d: DovecotUnderTest): void {
  expect(existsSync('/usr/sbin/postfix'), 'Postfix must be installed (apt-get install postfix)').toBe(true);
  const where = d.root === '' ? 'apt-get install' : `scripts/dovecot24-root.sh (as root) puts in ${d.root}:`;
  expect(existsSync(`${d.root}/usr/sbin/dovecot`), `Dovecot ${d.version} must be installed (${where} dovecot-core)`).toBe(true);
  expect(existsSync(`${d.root}/usr/lib/dovecot/lmtp`), `Dovecot ${d.version}'s LMTP server must be installed (${where} dovecot-lmtpd)`).toBe(true);
  expect(hasLuaModule(d.root), `Dovecot ${d.version}'s Lua module must be installed (${where} dovecot-auth-lua)`).toBe(true);
}

/**
 * The LMTP listener belongs to the host's postfix user; a chrooted Dovecot resolves that
 * name in its root's own files, which Debian 13's minimal root does not have it in.
 */
function lendPostfixUser(root: string): void {
  for (const [db, file] of [
    ['passwd', 'etc/passwd'],
    ['group', 'etc/group'],
  ] as const) {
    const line = spawnSync('getent', [db, 'postfix'], { encoding: 'utf8' }).stdout.trim();
    expect(line, `the host has no ${db} entry for postfix`).not.toBe('');
    const path = join(root, file);
    const lines = readFileSync(path, 'utf8')
      .split('\n')
      .filter((l) => l !== '');
    if (lines.includes(line)) continue;
    // Replaced whole, never rewritten in place: the Lua suite's chrooted Dovecot may be reading it.
    writeFileSync(`${path}.mailmapd-test`, [...lines.filter((l) => !l.startsWith('postfix:')), line, ''].join('\n'));
    renameSync(`${path}.mailmapd-test`, path);
  }
}

// Both socketmap listener kinds: inet (the default config; chrooted smtpd and cleanup connect
// to it directly) and UNIX (the tables go through proxymap, outside the chroot).
describeDelivery('inet', dovecot23);
describeDelivery('unix', dovecot24);

function describeDelivery(listener: 'inet' | 'unix', d: DovecotUnderTest): void {
  describe(`mail through a real Postfix and Dovecot ${d.version} LMTP, configured as mailmapd prints it (${listener} socketmap)`, { timeout: 60_000 }, () => {
    let db: TestDatabase;
    let daemon: Daemon;
    let dir: string;
    let smtpPort: number;
    let submitPort: number;
    const daemonConfig: Record<string, string> = {};
    let pfx: PostfixInstance | undefined;
    const maillog = () => pfx?.maillog() ?? '';
    /** A path under d.root as the chrooted Dovecot sees it. */
    const inside = (path: string) => (d.root === '' ? path : path.slice(d.root.length));
    const dovecotLog = () => (existsSync(join(dir, 'dovecot', 'dovecot.log')) ? readFileSync(join(dir, 'dovecot', 'dovecot.log'), 'utf8') : '');

    /** The messages in a mailbox's Maildir INBOX. */
    const inbox = (domain: string, user: string): string[] => {
      const n = join(dir, 'vmail', domain, user, 'Maildir', 'new');
      return existsSync(n) ? readdirSync(n).map((f) => readFileSync(join(n, f), 'utf8')) : [];
    };
    const hasMessage = (domain: string, user: string, subject: string) =>
      inbox(domain, user).some((m) => m.includes(`Subject: ${subject}\r\n`) || m.includes(`Subject: ${subject}\n`));

    /** A session on port 25's stand-in (`smtpPort`), or on the submission one (`submitPort`, AUTH on). */
    const session = async (port = smtpPort): Promise<SmtpSession> => {
      const s = await smtpSession(port);
      expect(s.greeting.code).toBe(220);
      expect((await s.command('EHLO client.test')).code).toBe(250);
      return s;
    };

    const rcpt = async (address: string) => {
      const s = await session();
      try {
        expect((await s.command('MAIL FROM:<sender@remote.test>')).code).toBe(250);
        return await s.command(`RCPT TO:<${address}>`);
      } finally {
        await s.close();
      }
    };

    beforeAll(async () => {
      requirePeers(d);
      db = await createTestDatabase();
      await db.sql.query(`
        INSERT INTO mailmapd.domains (name, active) VALUES ('example.org', true), ('catchall.test', true), ('off.test', false);
        INSERT INTO mailmapd.alias_domains (name, target) VALUES ('example.net', 'example.org');`);
      await db.sql.query(
        `INSERT INTO mailmapd.mailboxes (address, password, active) VALUES
          ('alice@example.org', $1, true), ('bob@example.org', $2, true), ('carol@example.org', $2, false), ('x@off.test', $2, true)`,
        [await hashPassword('alice-pw', 'SHA512-CRYPT'), await hashPassword('bob-pw', 'SHA512-CRYPT')],
      );
      await db.sql.query(`
        INSERT INTO mailmapd.aliases (address, destination) VALUES
          ('info@example.org', 'alice@example.org'), ('info@example.org', 'bob@example.org'), ('@catchall.test', 'alice@example.org');`);

      // Postfix's and Dovecot's unprivileged users must reach the sockets and the mail store.
      // Under the root for a chrooted Dovecot: it must see the LMTP socket and the Maildirs.
      pfx = postfixInstance(d.root === '' ? tmpdir() : join(d.root, 'tmp'), 'mailmapd-postfix-', ['vmail', 'sock', 'dovecot', 'dovecot/run', 'dovecot/state']);
      dir = pfx.dir;
      const { postfixUid } = pfx;
      chownSync(join(dir, 'vmail'), MAIL_UID, MAIL_UID);

      // With UNIX sockets, the auth socket goes where Debian's Dovecot puts its own: in
      // Postfix's queue directory, for the chrooted smtpd.
      if (listener === 'unix') {
        mkdirSync(join(dir, 'spool', 'private'), { mode: 0o700 });
        chownSync(join(dir, 'spool', 'private'), postfixUid, 0); // as Postfix itself makes it
      }
      Object.assign(daemonConfig, {
        socketmap_listen: listener === 'unix' ? `unix:${dir}/sock/socketmap` : `inet:127.0.0.1:${await freePort()}`,
        ...(listener === 'unix' ? { auth_listen: `unix:${dir}/spool/private/mailmapd-auth` } : {}),
        unix_socket_group: 'postfix',
        mail_home: `${inside(dir)}/vmail/%d/%n`,
      });
      daemon = await startDaemon({ databaseUrl: db.url, config: daemonConfig });
      const config = parseConfigText(readFileSync(daemon.configPath, 'utf8'), daemon.configPath);

      // main.cf: an instance of its own, then exactly what mailmapd prints, then what the test changes.
      const sasl = dovecotConfig(config, []);
      const tables = postfixConfig(config);
      expect(tables).toContain(
        listener === 'unix'
          ? `virtual_mailbox_maps = proxy:socketmap:unix:${dir}/sock/socketmap:mailboxes`
          : 'virtual_mailbox_maps = socketmap:inet:127.0.0.1:',
      );
      smtpPort = await freePort();
      submitPort = await freePort();
      writeFileSync(
        join(dir, 'etc', 'main.cf'),
        pfx.mainCf([
          tables,
          // dovecot-config names a socket under /var/spool/postfix/ relative to it; this
          // Postfix's queue directory is elsewhere, so the test makes that one step itself.
          sasl.slice(sasl.indexOf('# ---- Postfix')).replace(`smtpd_sasl_path = unix:${dir}/spool/`, 'smtpd_sasl_path = '),
          '# The test speaks plain SMTP on loopback: no TLS to require before AUTH.',
          'smtpd_tls_auth_only = no',
          'smtpd_relay_restrictions = permit_sasl_authenticated, reject_unauth_destination',
          'smtpd_sender_restrictions = reject_sender_login_mismatch',
        ]),
      );
      // Two smtpd services: port 25's with main.cf as printed, and a submission one with AUTH
      // switched on, as postfix-config's submission block does (with TLS there too).
      writeFileSync(
        join(dir, 'etc', 'master.cf'),
        masterCf([`127.0.0.1:${smtpPort} inet n - y - - smtpd`, `127.0.0.1:${submitPort} inet n - y - - smtpd`, '  -o smtpd_sasl_auth_enable=yes']),
      );

      // Dovecot: an instance of its own with what `dovecot-config --lua` prints for its version
      // and the LMTP listener, whose socket goes in this Postfix's queue directory instead of
      // Debian's. A chrooted Dovecot sees no file outside its root: it gets a copy of the script.
      const lua = dovecotLuaConfig(config);
      expect(lua).toContain(dovecotLmtpSocket);
      let luaFile = defaultLuaFile;
      if (d.root !== '') {
        luaFile = join(dir, 'auth-mailmapd.lua');
        copyFileSync(defaultLuaFile, luaFile);
        lendPostfixUser(d.root);
      }
      writeFileSync(
        join(dir, 'dovecot', 'dovecot.conf'),
        [
          ...d.preamble,
          `base_dir = ${inside(dir)}/dovecot/run`,
          `state_dir = ${inside(dir)}/dovecot/state`,
          `log_path = ${inside(dir)}/dovecot/dovecot.log`,
          'protocols = lmtp',
          'ssl = no',
          'auth_verbose = yes',
          ...d.settings(config, inside(luaFile)),
          lua.slice(lua.indexOf('# ---- Dovecot 2.3 and 2.4: deliveries')).replace(dovecotLmtpSocket, `${inside(dir)}/spool/private/dovecot-lmtp`),
        ].join('\n'),
      );

      const pf = pfx.run('start');
      expect(pf.status, `postfix start failed:\n${pf.stderr}\n${maillog()}`).toBe(0);
      const conf = inside(join(dir, 'dovecot', 'dovecot.conf'));
      const [bin, args] = d.root === '' ? ['dovecot', ['-c', conf]] : ['chroot', [d.root, 'dovecot', '-c', conf]];
      const dc = spawnSync(bin, args, { stdio: 'ignore', timeout: 20_000 });
      expect(dc.status, `dovecot failed to start:\n${dovecotLog()}`).toBe(0);
      await waitFor(() => existsSync(join(dir, 'spool', 'private', 'dovecot-lmtp')), 10_000, "Dovecot's LMTP socket");
      await waitFor(
        async () => {
          try {
            await (await session()).close();
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
      if (dir) await stopByPidFile(join(dir, 'dovecot', 'run', 'master.pid'), 'Dovecot');
      await daemon?.stop();
      await db?.drop();
      if (dir) rmSync(dir, { recursive: true, force: true });
    }, 60_000);

    it('smtpd accepts and refuses recipients as the directory says', async () => {
      const cases: [string, number, RegExp?][] = [
        ['alice@example.org', 250],
        ['Alice+Tag@Example.ORG', 250],
        ['info@example.org', 250],
        ['bob@example.net', 250], // alias domain
        ['whoever@catchall.test', 250], // catch-all
        ['nobody@example.org', 550, /5\.1\.1 .*User unknown in virtual mailbox table/],
        ['carol@example.org', 550, /User unknown/], // inactive mailbox
        ['x@off.test', 554, /Relay access denied/], // inactive domain: not ours
        ['someone@elsewhere.test', 554, /Relay access denied/],
      ];
      for (const [address, code, text] of cases) {
        const r = await rcpt(address);
        expect(r.code, `${address}: ${r.text}`).toBe(code);
        if (text) expect(r.text).toMatch(text);
      }
    });

    it('accepted mail is delivered by Dovecot LMTP into the right Maildir, none deferred', async () => {
      const s = await session();
      const messages: [string, string[]][] = [
        ['to-extension', ['alice+news@example.org']],
        ['to-alias', ['info@example.org']],
        ['to-alias-domain', ['bob@example.net']],
        ['to-catch-all', ['whoever@catchall.test']],
      ];
      try {
        for (const [subject, to] of messages) {
          const r = await s.send('sender@remote.test', to, `From: sender@remote.test\nTo: ${to.join(', ')}\nSubject: ${subject}\n\nhello\n`);
          expect(r.code, `${subject}: ${r.text}`).toBe(250);
        }
      } finally {
        await s.close();
      }
      const expected: [string, string, string][] = [
        ['to-extension', 'example.org', 'alice'],
        ['to-alias', 'example.org', 'alice'],
        ['to-alias', 'example.org', 'bob'],
        ['to-alias-domain', 'example.org', 'bob'],
        ['to-catch-all', 'example.org', 'alice'],
      ];
      await waitFor(
        () => expected.every(([subject, domain, user]) => hasMessage(domain, user, subject)),
        20_000,
        `deliveries (maillog:\n${maillog()}\ndovecot:\n${dovecotLog()})`,
      );
      expect(hasMessage('example.org', 'bob', 'to-extension')).toBe(false);
      expect(hasMessage('example.org', 'bob', 'to-catch-all')).toBe(false);
      expect(maillog()).not.toMatch(/status=(deferred|bounced)/);
    });

    it('a mailbox added in SQL is accepted at once, and refused once deactivated', async () => {
      expect((await rcpt('dave@example.org')).code).toBe(550);
      await db.sql.query(`INSERT INTO mailmapd.mailboxes (address, password) VALUES ('dave@example.org', '{PLAIN}dave-pw')`);
      await waitFor(async () => (await rcpt('dave@example.org')).code === 250, 5_000, 'the new mailbox at RCPT');
      await db.sql.query(`UPDATE mailmapd.mailboxes SET active = false WHERE address = 'dave@example.org'`);
      await waitFor(async () => (await rcpt('dave@example.org')).code === 550, 5_000, 'the deactivated mailbox refused at RCPT');
    });

    it('a receive-disabled address is refused at RCPT even with a catch-all in its domain', async () => {
      await db.sql.query(`INSERT INTO mailmapd.mailboxes (address, password) VALUES ('eve@catchall.test', '{PLAIN}eve-pw')`);
      await waitFor(async () => (await rcpt('eve@catchall.test')).code === 250, 5_000, 'the new mailbox at RCPT');
      await db.sql.query(`UPDATE mailmapd.mailboxes SET disabled_services = '{receive}' WHERE address = 'eve@catchall.test'`);
      await waitFor(async () => (await rcpt('eve@catchall.test')).code === 550, 5_000, 'the receive-disabled address refused at RCPT');
      expect((await rcpt('eve+tag@catchall.test')).code).toBe(550);
      // The catch-all still takes every other address of the domain.
      expect((await rcpt('anyone-else@catchall.test')).code).toBe(250);
    });

    it('a mailbox in maintenance is deferred (4xx), and accepted again when it ends', async () => {
      await db.sql.query(`UPDATE mailmapd.mailboxes SET maintenance = true WHERE address = 'bob@example.org'`);
      await waitFor(
        async () => {
          const code = (await rcpt('bob@example.org')).code;
          return code >= 400 && code < 500;
        },
        5_000,
        'a 4xx for the mailbox in maintenance',
      );
      await db.sql.query(`UPDATE mailmapd.mailboxes SET maintenance = false WHERE address = 'bob@example.org'`);
      await waitFor(async () => (await rcpt('bob@example.org')).code === 250, 10_000, 'the mailbox accepted again');
    });

    it('SMTP AUTH through the daemon, and senders limited to what the login owns', async () => {
      // Port 25 offers no AUTH (main.cf as printed); the submission service does.
      const s25 = await smtpSession(smtpPort);
      try {
        expect((await s25.command('EHLO client.test')).text).not.toMatch(/^AUTH/m);
      } finally {
        await s25.close();
      }
      const s = await session(submitPort);
      try {
        const plain = (user: string, pass: string) => Buffer.from(`\0${user}\0${pass}`).toString('base64');
        expect((await s.command(`AUTH PLAIN ${plain('alice@example.org', 'wrong')}`)).code).toBe(535);
        expect((await s.command(`AUTH PLAIN ${plain('Alice@Example.NET', 'alice-pw')}`)).code).toBe(235);
        // smtpd judges the sender at RCPT (smtpd_delay_reject): one transaction per sender.
        const asSender = async (from: string) => {
          expect((await s.command(`MAIL FROM:<${from}>`)).code).toBe(250);
          const r = await s.command('RCPT TO:<someone@elsewhere.test>');
          expect((await s.command('RSET')).code).toBe(250);
          return r;
        };
        // The alias info@ delivers to alice: she may send as it, and as herself with an
        // extension; not as bob. Authenticated, she may relay to the world.
        expect((await asSender('alice@example.org')).code).toBe(250);
        expect((await asSender('info@example.org')).code).toBe(250);
        expect((await asSender('Alice+list@example.org')).code).toBe(250);
        const bob = await asSender('bob@example.org');
        expect(bob.code, bob.text).toBe(553);
        expect(bob.text).toMatch(/Sender address rejected: not owned by user alice@example\.org/);
      } finally {
        await s.close();
      }
    });

    it('with the daemon down Postfix defers (4xx), never bounces; it answers again once the daemon is back', async () => {
      // Postfix restarted while the daemon is down (a reboot that brings Postfix up first):
      // every smtpd is a new process. Had main.cf switched AUTH on for every smtpd (as
      // dovecot-config once printed), port 25's would find no mechanisms and exit before its
      // greeting ("fatal: no SASL authentication mechanisms"), and master would hold the
      // service back for 60 s; with AUTH in the submission service only, port 25 answers.
      await daemon.stop();
      for (const step of ['stop', 'start']) {
        const r = pfx!.run(step);
        expect(r.status, `postfix ${step} failed:\n${r.stderr}\n${maillog()}`).toBe(0);
      }
      let down: Awaited<ReturnType<typeof rcpt>> | undefined;
      await waitFor(
        async () => {
          try {
            down = await rcpt('alice@example.org');
            return true;
          } catch (err) {
            // Refused while master opens its listeners after the start; a drop would be a greeting never sent.
            if (err instanceof Error && /ECONNREFUSED/.test(err.message)) return false;
            throw new Error(`${String(err)}; maillog tail:\n${maillog().slice(-3000)}`);
          }
        },
        10_000,
        'Postfix to listen again',
      );
      if (down === undefined) throw new Error('no answer');
      expect(down.code, down.text).toBe(451);
      expect(down.text).toMatch(/4\.3\.0 .*[Tt]emporary lookup failure/);
      daemon = await startDaemon({ databaseUrl: db.url, config: daemonConfig });
      await waitFor(async () => (await rcpt('alice@example.org')).code === 250, 10_000, 'Postfix to reach the restarted daemon');
    });
  });
}
