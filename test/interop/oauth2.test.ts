// OAuth2 bearer tokens end to end, against a real OpenID provider (helpers/openid.ts) and
// real clients: Postfix smtpd doing SMTP AUTH (OAUTHBEARER, XOAUTH2) through mailmapd's auth
// socket, and Dovecot 2.3's imap-login, whose oauth2 mechanisms hand the token to the Lua
// passdb. Fails, never skips, without Postfix, Dovecot or the provider library.

import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dovecotLuaConfig23, dovecotLuaConfig24 } from '../../src/cli/dovecot-lua-config.js';
import { dovecotOauth2Config24 } from '../../src/cli/dovecot-oauth2-config.js';
import { dovecotConfig } from '../../src/cli/dovecot-config.js';
import { parseConfigText } from '../../src/config.js';
import { freePort, startDaemon, type Daemon } from '../helpers/daemon.js';
import { createTestDatabase, waitFor, type TestDatabase } from '../helpers/db.js';
import { dovecot23Target, dovecot24Target, dovecotInstance, type DovecotInstance } from '../helpers/dovecot.js';
import { makeKeys, startOpenIdProvider, type OpenIdProvider } from '../helpers/openid.js';
import { masterCf, postfixInstance, type PostfixInstance } from '../helpers/postfix.js';
import { smtpSession, waitForSmtp } from '../helpers/smtp.js';

const b64 = (s: string) => Buffer.from(s).toString('base64');
const oauthbearer = (token: string, user = '') =>
  b64(`n,${user === '' ? '' : `a=${user}`},\x01host=mx.example.test\x01port=587\x01auth=Bearer ${token}\x01\x01`);
const xoauth2 = (user: string, token: string) => b64(`user=${user}\x01auth=Bearer ${token}\x01\x01`);

/** One IMAP AUTHENTICATE against Dovecot's imap-login: the tagged result line. */
function imapAuthAt(port: number, mech: string, initial: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    let buf = '';
    let sent = false;
    socket.setTimeout(15_000, () => socket.destroy(new Error(`no IMAP answer: ${buf}`)));
    socket.on('error', reject);
    socket.on('data', (d) => {
      buf += d.toString();
      if (!sent && buf.includes('* OK')) {
        sent = true;
        socket.write(`a1 AUTHENTICATE ${mech} ${initial}\r\n`);
      }
      // The error challenge of RFC 7628: answered with the dummy response.
      if (/^\+ \S+\r\n$/m.test(buf.split('\r\n').slice(-2).join('\r\n'))) socket.write(`${b64('\x01')}\r\n`);
      const tagged = /^a1 (OK|NO|BAD).*$/m.exec(buf);
      if (tagged) {
        socket.end('a2 LOGOUT\r\n');
        resolve(tagged[0]);
      }
    });
  });
}

describe('OAuth2 bearer tokens: a real OpenID provider, Postfix SMTP AUTH and Dovecot 2.3 IMAP', { timeout: 60_000 }, () => {
  let db: TestDatabase;
  let daemon: Daemon;
  let op: OpenIdProvider;
  let pfx: PostfixInstance;
  let dc: DovecotInstance;
  let smtpPort: number;
  let imapPort: number;
  const tokens: string[] = [];

  /** SMTP AUTH with a mechanism and initial response; answers the RFC 7628 error challenge with a dummy. */
  const smtpAuth = async (mech: string, initial: string): Promise<{ code: number; challenge?: string }> => {
    const s = await smtpSession(smtpPort);
    try {
      await s.command('EHLO client.test');
      const first = await s.command(`AUTH ${mech} ${initial}`);
      if (first.code !== 334) return { code: first.code };
      const last = await s.command(b64('\x01'));
      return { code: last.code, challenge: Buffer.from(first.text, 'base64').toString() };
    } finally {
      await s.close().catch(() => {});
    }
  };

  const imapAuth = (mech: string, initial: string) => imapAuthAt(imapPort, mech, initial);

  const token = async (email: string, alg?: 'RS256' | 'PS256' | 'ES256' | 'EdDSA') => {
    const t = await op.token(email, alg);
    tokens.push(t);
    return t;
  };

  beforeAll(async () => {
    dovecot23Target.requireInstalled();
    op = await startOpenIdProvider(makeKeys('one'));
    db = await createTestDatabase();
    await db.sql.query(`INSERT INTO mailmapd.domains (name, active) VALUES ('example.org', true);
      INSERT INTO mailmapd.alias_domains (name, target) VALUES ('example.net', 'example.org');
      INSERT INTO mailmapd.mailboxes (address, password, active) VALUES
        ('alice@example.org', '{PLAIN}alice-pw', true), ('bob@example.org', '{PLAIN}bob-pw', false), ('carol@example.org', '{PLAIN}carol-pw', true);
      UPDATE mailmapd.mailboxes SET disabled_services = '{smtp,imap}' WHERE address = 'carol@example.org';
      INSERT INTO mailmapd.mailboxes (address, password, active, disabled_services) VALUES ('dave@example.org', '{PLAIN}dave-pw', true, '{password}');
      INSERT INTO mailmapd.app_passwords (mailbox, name, password) VALUES ('dave@example.org', 'phone', '{PLAIN}dave-app-pw');`);
    dc = dovecotInstance(dovecot23Target, 'mailmapd-oauth2-');
    mkdirSync(join(dc.dir, 'vmail', 'example.org'), { recursive: true });
    daemon = await startDaemon({
      databaseUrl: db.url,
      config: { oauth2_issuer: op.issuer, oauth2_audience: 'mail', mail_home: `${dc.dir}/vmail/%d/%n`, policy_login_reject_after: '1000' },
    });
    const config = parseConfigText(readFileSync(daemon.configPath, 'utf8'), daemon.configPath);
    // The keys are fetched in the background at start; a login before that is refused.
    await waitFor(() => daemon.logs().includes('oauth2 keys loaded'), 30_000, "the provider's keys");

    pfx = postfixInstance(tmpdir(), 'mailmapd-oauth2-postfix-');
    smtpPort = await freePort();
    const sasl = dovecotConfig(config, []);
    writeFileSync(
      join(pfx.dir, 'etc', 'main.cf'),
      pfx.mainCf([sasl.slice(sasl.indexOf('# ---- Postfix')), 'smtpd_tls_auth_only = no', 'smtpd_relay_restrictions = permit_sasl_authenticated, reject']),
    );
    // The submission role: AUTH is switched on per service (postfix-config's submission block).
    writeFileSync(join(pfx.dir, 'etc', 'master.cf'), masterCf([`127.0.0.1:${smtpPort} inet n - y - - smtpd`, '  -o smtpd_sasl_auth_enable=yes']));
    const pf = pfx.run('start');
    expect(pf.status, `postfix start failed:\n${pf.stderr}\n${pfx.maillog()}`).toBe(0);

    imapPort = await freePort();
    dc.writeConfig([
      'protocols = imap',
      'listen = 127.0.0.1',
      'auth_verbose = yes',
      'auth_failure_delay = 0',
      'disable_plaintext_auth = no',
      'auth_mechanisms = plain oauthbearer xoauth2',
      'mail_location = maildir:~/Maildir',
      `service imap-login {\n  inet_listener imap {\n    address = 127.0.0.1\n    port = ${imapPort}\n  }\n  inet_listener imaps {\n    port = 0\n  }\n}`,
      'service anvil {\n  unix_listener anvil-auth-penalty {\n    mode = 0\n  }\n}',
      dovecotLuaConfig23(config),
    ]);
    await dc.start(['auth-client']);
    await waitForSmtp(smtpPort, 15_000);
  }, 120_000);

  afterAll(async () => {
    await pfx?.stop();
    await dc?.stop();
    await daemon?.stop();
    await op?.stop();
    await db?.drop();
    if (pfx) rmSync(pfx.dir, { recursive: true, force: true });
  }, 60_000);

  it('the auth socket offers OAUTHBEARER and XOAUTH2, and Postfix advertises them', async () => {
    const s = await smtpSession(smtpPort);
    const ehlo = await s.command('EHLO client.test');
    await s.close();
    expect(ehlo.text).toMatch(/^AUTH .*OAUTHBEARER/m);
    expect(ehlo.text).toMatch(/^AUTH .*XOAUTH2/m);
  });

  it('SMTP AUTH: tokens from the provider log in, signed RS256, PS256, ES256 and EdDSA, by either mechanism', async () => {
    for (const alg of ['RS256', 'PS256', 'ES256', 'EdDSA'] as const) {
      expect((await smtpAuth('OAUTHBEARER', oauthbearer(await token('alice@example.org', alg), 'alice@example.org'))).code, alg).toBe(235);
    }
    expect((await smtpAuth('XOAUTH2', xoauth2('alice@example.org', await token('alice@example.org')))).code).toBe(235);
    // No login named: the token alone says who. A login in the alias domain is the same mailbox.
    expect((await smtpAuth('OAUTHBEARER', oauthbearer(await token('alice@example.org')))).code).toBe(235);
    expect((await smtpAuth('XOAUTH2', xoauth2('Alice@Example.NET', await token('ALICE@example.org')))).code).toBe(235);
  });

  it('SMTP AUTH refuses, with the RFC 7628 error status first: expired, not yet valid, wrong audience, wrong issuer, unknown key, other mailbox', async () => {
    const now = Math.floor(Date.now() / 1000);
    const bad: [string, string][] = [
      ['expired', await op.forge({ email: 'alice@example.org', iat: now - 7200, exp: now - 3600 })],
      ['not yet valid', await op.forge({ email: 'alice@example.org', nbf: now + 3600 })],
      ['wrong audience', await op.forge({ email: 'alice@example.org', aud: 'calendar' })],
      ['wrong issuer', await op.forge({ email: 'alice@example.org', iss: 'http://127.0.0.1:1/elsewhere' })],
      ['unknown key', await op.forge({ email: 'alice@example.org' }, { keys: makeKeys('stranger') })],
      ['a token for someone else', await token('carol@example.org')],
    ];
    for (const [what, t] of bad) {
      tokens.push(t);
      const r = await smtpAuth('OAUTHBEARER', oauthbearer(t, 'alice@example.org'));
      expect(r.code, what).toBe(535);
      expect(JSON.parse(r.challenge ?? '{}'), what).toMatchObject({ status: 'invalid_token' });
    }
  });

  it('SMTP AUTH refuses a disabled service, a deactivated mailbox and no such mailbox', async () => {
    expect((await smtpAuth('XOAUTH2', xoauth2('carol@example.org', await token('carol@example.org')))).code).toBe(535);
    expect((await smtpAuth('XOAUTH2', xoauth2('bob@example.org', await token('bob@example.org')))).code).toBe(535);
    expect((await smtpAuth('XOAUTH2', xoauth2('nobody@example.org', await token('nobody@example.org')))).code).toBe(535);
  });

  it("a mailbox whose own password is refused ('password' in disabled_services) still logs in with a token or an app password", async () => {
    const plainAuth = async (user: string, pw: string) => {
      const s = await smtpSession(smtpPort);
      try {
        await s.command('EHLO client.test');
        return (await s.command(`AUTH PLAIN ${b64(`\0${user}\0${pw}`)}`)).code;
      } finally {
        await s.close().catch(() => {});
      }
    };
    expect(await plainAuth('dave@example.org', 'dave-pw')).toBe(535);
    expect(await plainAuth('dave@example.org', 'dave-app-pw')).toBe(235);
    expect((await smtpAuth('XOAUTH2', xoauth2('dave@example.org', await token('dave@example.org')))).code).toBe(235);
    expect(await imapAuth('PLAIN', b64('\0dave@example.org\0dave-pw'))).toMatch(/^a1 NO/);
    expect(await imapAuth('XOAUTH2', xoauth2('dave@example.org', await token('dave@example.org')))).toMatch(/^a1 OK/);
  });

  it('a mailbox deactivated after its token was verified is refused at once, cached token or not', async () => {
    const t = await token('alice@example.org');
    expect((await smtpAuth('XOAUTH2', xoauth2('alice@example.org', t))).code).toBe(235);
    await db.sql.query(`UPDATE mailmapd.mailboxes SET active = false WHERE address = 'alice@example.org'`);
    try {
      await waitFor(async () => (await smtpAuth('XOAUTH2', xoauth2('alice@example.org', t))).code === 535, 10_000, 'the deactivation');
    } finally {
      await db.sql.query(`UPDATE mailmapd.mailboxes SET active = true WHERE address = 'alice@example.org'`);
      await waitFor(async () => (await smtpAuth('XOAUTH2', xoauth2('alice@example.org', t))).code === 235, 10_000, 'the reactivation');
    }
  });

  it('Dovecot 2.3 IMAP: AUTHENTICATE OAUTHBEARER and XOAUTH2 log in through the Lua passdb; bad tokens do not', async () => {
    expect(await imapAuth('XOAUTH2', xoauth2('alice@example.org', await token('alice@example.org')))).toMatch(/^a1 OK/);
    expect(await imapAuth('OAUTHBEARER', oauthbearer(await token('alice@example.org', 'ES256'), 'alice@example.org'))).toMatch(/^a1 OK/);
    const now = Math.floor(Date.now() / 1000);
    const expired = await op.forge({ email: 'alice@example.org', iat: now - 7200, exp: now - 3600 });
    tokens.push(expired);
    expect(await imapAuth('XOAUTH2', xoauth2('alice@example.org', expired))).toMatch(/^a1 NO/);
    expect(await imapAuth('XOAUTH2', xoauth2('carol@example.org', await token('carol@example.org')))).toMatch(/^a1 NO/);
    expect(await imapAuth('XOAUTH2', xoauth2('bob@example.org', await token('bob@example.org')))).toMatch(/^a1 NO/);
    // The mailbox password still works beside tokens.
    expect(await imapAuth('PLAIN', b64('\0alice@example.org\0alice-pw'))).toMatch(/^a1 OK/);
  });

  it('a key rotation at the provider: a token with the new key logs in once the daemon has fetched it (at most every 10 s)', async () => {
    const old = await token('alice@example.org');
    await op.restart(makeKeys('two'));
    const fresh = await token('alice@example.org');
    await waitFor(async () => (await smtpAuth('XOAUTH2', xoauth2('alice@example.org', fresh))).code === 235, 30_000, 'the new key');
    // The old key is gone from the provider: a token signed with it, not seen before, is refused.
    const forgedOld = await op.forge({ email: 'alice@example.org', jti: 'x' }, { keys: makeKeys('one-again') });
    tokens.push(forgedOld, old);
    expect((await smtpAuth('XOAUTH2', xoauth2('alice@example.org', forgedOld))).code).toBe(535);
  });

  it('the provider down: tokens signed with the keys already fetched keep logging in', async () => {
    const t = await op.forge({ email: 'alice@example.org' });
    tokens.push(t);
    await op.stop();
    expect((await smtpAuth('OAUTHBEARER', oauthbearer(t, 'alice@example.org'))).code).toBe(235);
    expect(await imapAuth('XOAUTH2', xoauth2('alice@example.org', t))).toMatch(/^a1 OK/);
    expect(daemon.logs()).not.toMatch(/level=error/);
  });

  it('never logs a token', () => {
    const all = daemon.logs() + pfx.maillog() + dc.log();
    for (const t of tokens) {
      expect(all).not.toContain(t);
      expect(all).not.toContain(t.split('.')[2]);
    }
  });
});

describe("OAuth2 on Dovecot 2.4: the mechanism checks the token with keys from mailmapd's dict, the Lua userdb says who", { timeout: 60_000 }, () => {
  let db: TestDatabase;
  let daemon: Daemon;
  let op: OpenIdProvider;
  let dc: DovecotInstance;
  let imapPort: number;

  beforeAll(async () => {
    dovecot24Target.requireInstalled();
    op = await startOpenIdProvider(makeKeys('24'));
    db = await createTestDatabase();
    await db.sql.query(`INSERT INTO mailmapd.domains (name, active) VALUES ('example.org', true);
      INSERT INTO mailmapd.mailboxes (address, password, active) VALUES
        ('alice@example.org', '{PLAIN}alice-pw', true), ('bob@example.org', '{PLAIN}bob-pw', false), ('carol@example.org', '{PLAIN}carol-pw', true);
      UPDATE mailmapd.mailboxes SET disabled_services = '{imap}' WHERE address = 'carol@example.org';`);
    dc = dovecotInstance(dovecot24Target, 'mailmapd-oauth2-24-');
    daemon = await startDaemon({
      databaseUrl: db.url,
      config: {
        oauth2_issuer: op.issuer,
        oauth2_audience: 'mail',
        mail_home: `${dc.inside(dc.dir)}/vmail/%d/%n`,
        dict_listen: `unix:${dc.dir}/dict`,
        unix_socket_mode: '0666',
      },
    });
    const config = parseConfigText(readFileSync(daemon.configPath, 'utf8'), daemon.configPath);
    // The keys are fetched in the background at start; a login before that is refused.
    await waitFor(() => daemon.logs().includes('oauth2 keys loaded'), 30_000, "the provider's keys");
    imapPort = await freePort();
    dc.writeConfig([
      'protocols = imap',
      'listen = 127.0.0.1',
      'auth_verbose = yes',
      'auth_failure_delay = 0',
      'auth_allow_cleartext = yes',
      'mail_driver = maildir',
      'mail_path = ~/Maildir',
      `service imap-login {\n  inet_listener imap {\n    listen = 127.0.0.1\n    port = ${imapPort}\n  }\n  inet_listener imaps {\n    port = 0\n  }\n}`,
      dovecotLuaConfig24(config, { luaFile: dc.luaFile }),
      ...dovecotOauth2Config24(config, dc.inside(join(dc.dir, 'dict'))),
    ]);
    await dc.start(['auth-client']);
  }, 120_000);

  afterAll(async () => {
    await dc?.stop();
    await daemon?.stop();
    await op?.stop();
    await db?.drop();
  }, 60_000);

  const imap = (mech: string, initial: string) => imapAuthAt(imapPort, mech, initial);

  it('a token from the provider logs in by XOAUTH2 and OAUTHBEARER (RS256, PS256, ES256)', async () => {
    expect(await imap('XOAUTH2', xoauth2('alice@example.org', await op.token('alice@example.org'))), dc.log()).toMatch(/^a1 OK/);
    for (const alg of ['PS256', 'ES256'] as const) {
      expect(await imap('OAUTHBEARER', oauthbearer(await op.token('alice@example.org', alg), 'alice@example.org')), `${alg}\n${dc.log()}`).toMatch(/^a1 OK/);
    }
  });

  it('refuses an expired token, a wrong audience, an unknown key, a disabled mailbox and a disabled service', async () => {
    expect(await imap('XOAUTH2', xoauth2('carol@example.org', await op.token('carol@example.org')))).toMatch(/^a1 NO/);
    const now = Math.floor(Date.now() / 1000);
    expect(await imap('XOAUTH2', xoauth2('alice@example.org', await op.forge({ email: 'alice@example.org', iat: now - 7200, exp: now - 3600 })))).toMatch(
      /^a1 NO/,
    );
    expect(await imap('XOAUTH2', xoauth2('alice@example.org', await op.forge({ email: 'alice@example.org', aud: 'calendar' })))).toMatch(/^a1 NO/);
    expect(await imap('XOAUTH2', xoauth2('alice@example.org', await op.forge({ email: 'alice@example.org' }, { keys: makeKeys('stranger') })))).toMatch(
      /^a1 NO/,
    );
    expect(await imap('XOAUTH2', xoauth2('bob@example.org', await op.token('bob@example.org')))).toMatch(/^a1 NO/);
  });
});
