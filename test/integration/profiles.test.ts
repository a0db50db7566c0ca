// Each admin panel's own tables, filled the way that panel writes them (its password
// formats included), served through its profile: the directory answers as the panel's
// Postfix/Dovecot queries would, `triggers install` makes the panel's plain-SQL writes
// arrive within a second, and install + remove leave the panel's tables exactly as they
// were (pg_dump before and after). Custom profiles: a good file passes the check, broken
// ones get errors that say what is wrong.

import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { triggersCommand } from '../../src/cli/triggers.js';
import { ConfigError, parseConfigText } from '../../src/config.js';
import { createDirectory, MAINTENANCE_ANSWER, type Directory } from '../../src/directory/directory.js';
import { verifyPassword } from '../../src/password/verify.js';
import { checkProfile } from '../../src/sync/profile-check.js';
import { chooseLayout } from '../../src/sync/profile-layout.js';
import { profileFor } from '../../src/sync/profile-select.js';
import type { Sync } from '../../src/sync/sync.js';
import { createTestDatabase, waitFor, type TestDatabase } from '../helpers/db.js';
import { modoboa10, modoboa2, panelDdl, sq } from '../helpers/panel-rows.js';
import { startTestSync } from '../helpers/sync.js';

/** A hash as the real Dovecot makes it (`{SCHEME}…`); `bare` drops the prefix, as crypt(3) users store it. */
function dovecotHash(scheme: string, password: string, bare = false, options: string[] = []): string {
  const h = execFileSync('doveadm', ['pw', '-s', scheme, ...options, '-p', password], { encoding: 'utf8' }).trim();
  return bare ? h.replace(/^\{[^}]+\}/, '') : h;
}

async function loginOk(dir: Directory, login: string, password: string): Promise<boolean> {
  const u = dir.user(login);
  if (u.status !== 'ok' || u.password === null) return false;
  return (await verifyPassword(password, u.password, 'CRYPT')).result === 'ok';
}

function pgDump(url: string, tables: string[], part: '--schema-only' | '--data-only'): string {
  const args = [part, '--no-owner', ...tables.flatMap((t) => ['-t', t]), url];
  // pg_dump ≥ 15.14 frames its output with a random \restrict key: not part of the tables.
  return execFileSync('pg_dump', args, { encoding: 'utf8' }).replace(/^\\(un)?restrict .*$/gm, '');
}

interface Lines {
  lines: string[];
  out(line: string): void;
}
const capture = (): Lines => {
  const lines: string[] = [];
  return { lines, out: (l) => lines.push(l) };
};

interface PanelCase {
  schema: string;
  /** The layout `mailmapd check` must report (a panel with several). */
  layout?: string;
  tables: string[];
  ddl: string;
  seed(): string;
  /** Answers right after the first load. */
  answers(dir: Directory): Promise<void>;
  /** Plain-SQL writes as the panel makes them, each with what must follow within a second. */
  writes: Array<{ what: string; sql: string; probe(dir: Directory): boolean | Promise<boolean> }>;
}

const pw = {
  alice: 'alice-Secret-1',
  aliceNew: 'alice-New-2',
  bob: 'bob pass wörd',
};

/** Alice's new Modoboa 2.x password, as Modoboa hashes it. */
const modoboaNewHash = dovecotHash('SHA512-CRYPT', pw.aliceNew, false, ['-r', '70000']);

const cases: PanelCase[] = [
  {
    schema: 'postfixadmin',
    tables: ['domain', 'mailbox', 'alias', 'alias_domain'],
    ddl: `
      CREATE TABLE domain (
        domain varchar(255) PRIMARY KEY, description varchar(255) NOT NULL DEFAULT '',
        aliases integer NOT NULL DEFAULT 0, mailboxes integer NOT NULL DEFAULT 0,
        maxquota bigint NOT NULL DEFAULT 0, quota bigint NOT NULL DEFAULT 0,
        transport varchar(255), backupmx boolean NOT NULL DEFAULT false,
        created timestamptz NOT NULL DEFAULT '2000-01-01', modified timestamptz NOT NULL DEFAULT '2000-01-01',
        active boolean NOT NULL DEFAULT true, password_expiry integer NOT NULL DEFAULT 0);
      CREATE TABLE mailbox (
        username varchar(255) PRIMARY KEY, password varchar(255) NOT NULL, name varchar(255) NOT NULL DEFAULT '',
        maildir varchar(255) NOT NULL DEFAULT '', quota bigint NOT NULL DEFAULT 0,
        created timestamptz NOT NULL DEFAULT '2000-01-01', modified timestamptz NOT NULL DEFAULT '2000-01-01',
        active boolean NOT NULL DEFAULT true, domain varchar(255) REFERENCES domain, local_part varchar(255) NOT NULL,
        phone varchar(30) NOT NULL DEFAULT '', email_other varchar(255) NOT NULL DEFAULT '',
        token varchar(255) NOT NULL DEFAULT '', token_validity timestamptz NOT NULL DEFAULT '2000-01-01');
      CREATE TABLE alias (
        address varchar(255) PRIMARY KEY, goto text NOT NULL, domain varchar(255) NOT NULL REFERENCES domain,
        created timestamptz NOT NULL DEFAULT '2000-01-01', modified timestamptz NOT NULL DEFAULT '2000-01-01',
        active boolean NOT NULL DEFAULT true);
      CREATE TABLE alias_domain (
        alias_domain varchar(255) PRIMARY KEY REFERENCES domain(domain) ON UPDATE CASCADE ON DELETE CASCADE,
        target_domain varchar(255) NOT NULL REFERENCES domain(domain) ON UPDATE CASCADE ON DELETE CASCADE,
        created timestamptz NOT NULL DEFAULT '2000-01-01', modified timestamptz NOT NULL DEFAULT '2000-01-01',
        active boolean NOT NULL DEFAULT true);
      -- The panel's own trigger on a watched table: it must survive install and remove.
      CREATE FUNCTION touch_modified() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN NEW.modified := now(); RETURN NEW; END $$;
      CREATE TRIGGER mailbox_modified BEFORE UPDATE ON mailbox FOR EACH ROW EXECUTE FUNCTION touch_modified();
    `,
    seed: () => `
      INSERT INTO domain (domain, description) VALUES ('ALL', '');
      INSERT INTO domain (domain, maxquota, transport) VALUES ('Example.ORG', 2048, 'virtual'), ('alias.example', 0, NULL);
      INSERT INTO domain (domain, backupmx) VALUES ('relay.example', true);
      INSERT INTO alias_domain (alias_domain, target_domain) VALUES ('alias.example', 'Example.ORG');
      INSERT INTO mailbox (username, password, name, maildir, quota, domain, local_part) VALUES
        ('alice@example.org', ${sq(dovecotHash('SHA512-CRYPT', pw.alice))}, 'Alice', 'example.org/alice/', 1024000000, 'Example.ORG', 'alice'),
        ('Bob@Example.org', ${sq(dovecotHash('MD5-CRYPT', pw.bob, true))}, 'Bob', 'example.org/bob/', 0, 'Example.ORG', 'bob');
      INSERT INTO alias (address, goto, domain) VALUES
        ('alice@example.org', 'alice@example.org', 'Example.ORG'),
        ('Bob@Example.org', 'Bob@Example.org', 'Example.ORG'),
        ('info@example.org', 'alice@example.org,Bob@Example.org', 'Example.ORG'),
        ('@example.org', 'alice@example.org', 'Example.ORG');
    `,
    async answers(dir) {
      expect(dir.domain('example.org')).toBe('example.org');
      expect(dir.domain('ALL')).toBeUndefined();
      expect(dir.domain('relay.example')).toBeUndefined();
      // A backup-MX domain is a relay domain; the default transport 'virtual' is no transport.
      expect(dir.lookup('relay_domains', 'relay.example')).toBe('relay.example');
      expect(dir.lookup('relay_recipients', 'anyone@relay.example')).toBe('anyone@relay.example');
      expect(dir.lookup('transport', 'alice@example.org')).toBeUndefined();
      expect(dir.mailbox('alice@example.org')).toBe('example.org/alice/');
      expect(dir.mailbox('BOB@example.org')).toBe('example.org/bob/');
      expect(dir.alias('info@example.org')).toBe('alice@example.org,bob@example.org');
      expect(dir.alias('bob@example.org')).toBe('bob@example.org');
      expect(dir.alias('nobody@example.org')).toBe('alice@example.org');
      expect(dir.alias('bob@alias.example')).toBe('bob@example.org');
      expect(dir.senders('info@example.org')).toBe('alice@example.org,bob@example.org');
      expect(dir.user('alice@example.org')).toMatchObject({ status: 'ok', quotaBytes: 1024000000 });
      expect(await loginOk(dir, 'alice@example.org', pw.alice)).toBe(true);
      expect(await loginOk(dir, 'bob@example.org', pw.bob)).toBe(true);
      expect(await loginOk(dir, 'bob@alias.example', pw.bob)).toBe(true);
      expect(await loginOk(dir, 'bob@example.org', pw.alice)).toBe(false);
    },
    writes: [
      {
        what: 'password change',
        sql: `UPDATE mailbox SET password = ${sq(dovecotHash('SHA512-CRYPT', pw.aliceNew))} WHERE username = 'alice@example.org'`,
        probe: async (d) => (await loginOk(d, 'alice@example.org', pw.aliceNew)) && !(await loginOk(d, 'alice@example.org', pw.alice)),
      },
      {
        what: 'mailbox deactivation',
        sql: `UPDATE mailbox SET active = false WHERE username = 'Bob@Example.org'`,
        probe: (d) => d.user('bob@example.org').status === 'disabled' && d.mailbox('bob@example.org') === undefined,
      },
      {
        what: 'new alias',
        sql: `INSERT INTO alias (address, goto, domain) VALUES ('sales@example.org', 'alice@example.org, boss@elsewhere.test', 'Example.ORG')`,
        probe: (d) => d.alias('sales@example.org') === 'alice@example.org,boss@elsewhere.test',
      },
      {
        what: 'a transport for a domain and for a backup-MX domain',
        sql: `UPDATE domain SET transport = 'smtp:[mx2.example.net]' WHERE domain IN ('Example.ORG', 'relay.example')`,
        probe: (d) =>
          d.lookup('transport', 'alice@example.org') === 'smtp:[mx2.example.net]' && d.lookup('transport', 'x@relay.example') === 'smtp:[mx2.example.net]',
      },
      {
        what: 'alias domain deactivation',
        sql: `UPDATE alias_domain SET active = false WHERE alias_domain = 'alias.example'`,
        probe: (d) => d.alias('alice@alias.example') === undefined,
      },
      {
        what: 'domain deactivation',
        sql: `UPDATE domain SET active = false WHERE domain = 'Example.ORG'`,
        probe: (d) => d.domain('example.org') === undefined && d.mailbox('alice@example.org') === undefined,
      },
    ],
  },
  {
    schema: 'modoboa',
    layout: 'Modoboa 2.x (core_user)',
    tables: [
      'core_user',
      'admin_domain',
      'admin_domainalias',
      'admin_mailbox',
      'admin_alias',
      'modoboa_admin_aliasrecipient',
      'admin_quota',
      'admin_mailboxoperation',
      'transport_transport',
    ],
    ddl: `${panelDdl('modoboa-2')}
      -- From Modoboa's Dovecot page: its own quota trigger stays as it is.
      CREATE FUNCTION merge_quota() RETURNS trigger AS $$
      BEGIN
        UPDATE admin_quota SET bytes = bytes + NEW.bytes, messages = messages + NEW.messages WHERE username = NEW.username;
        IF found THEN RETURN NULL; END IF;
        RETURN NEW;
      END; $$ LANGUAGE plpgsql;
      CREATE TRIGGER mergequota BEFORE INSERT ON admin_quota FOR EACH ROW EXECUTE PROCEDURE merge_quota();
    `,
    seed: () => {
      const d = { id: 1, name: 'example.org' };
      return [
        modoboa2.transport(1, 'relay.example', 'relay', '[mx.relay.example]:25'),
        modoboa2.domain(1, 'example.org', { messageLimit: 500 }),
        modoboa2.domain(2, 'relay.example', { type: 'relaydomain', transportId: 1 }),
        modoboa2.domainAlias(1, 'alias.example', d),
        // Passwords as Modoboa 2.x hashes them: SHA512-CRYPT at rounds_number (70,000), and a legacy bcrypt (passlib: $2b$).
        modoboa2.mailbox(2, 'alice', d, dovecotHash('SHA512-CRYPT', pw.alice, false, ['-r', '70000']), { quotaMb: 100, messageLimit: 20 }),
        modoboa2.mailbox(3, 'bob', d, dovecotHash('BLF-CRYPT', pw.bob).replace('$2y$', '$2b$')),
        modoboa2.mailbox(4, 'sender', d, dovecotHash('SHA512-CRYPT', pw.bob), { sendOnly: true }),
        modoboa2.alias(10, 'info@example.org', 1, [
          { address: 'alice@example.org', mailbox: 2 },
          { address: 'bob@example.org', mailbox: 3 },
        ]),
        modoboa2.alias(11, 'gone@example.org', 1, [{ address: 'alice@example.org', mailbox: 2 }], { expireAt: '2001-01-01 00:00:00+00' }),
        `INSERT INTO core_user (id, password, is_superuser, username, first_name, last_name, email, is_staff, is_active, date_joined,
           is_local, master_user, language, _parameters, totp_enabled, webauthn_enabled)
         VALUES (1, ${sq(dovecotHash('SHA512-CRYPT', 'admin-pw'))}, true, 'admin', '', '', '', true, true, now(), true, false, 'en', '{}', false, false);`,
        modoboa2.restart,
      ].join('\n');
    },
    async answers(dir) {
      expect(dir.domain('example.org')).toBe('example.org');
      expect(dir.domain('relay.example')).toBeUndefined();
      expect(dir.lookup('relay_domains', 'relay.example')).toBe('relay.example');
      expect(dir.lookup('transport', 'x@relay.example')).toBe('relay:[mx.relay.example]:25');
      expect(dir.domain('alias.example')).toBe('alias.example');
      expect(dir.mailbox('alice@example.org')).toBe('example.org/alice/');
      expect(dir.alias('info@example.org')).toBe('alice@example.org,bob@example.org');
      expect(dir.alias('info@alias.example')).toBe('info@example.org');
      expect(dir.alias('gone@example.org')).toBeUndefined();
      expect(dir.senders('info@example.org')).toBe('alice@example.org,bob@example.org');
      expect(dir.user('alice@example.org')).toMatchObject({ status: 'ok', quotaBytes: 100 * 1048576 });
      expect(dir.user('admin')).toEqual({ status: 'unknown' });
      // A send-only mailbox: no IMAP, no POP3, no delivery (Modoboa's Dovecot queries).
      expect(dir.mailbox('sender@example.org')).toBeUndefined();
      // message_limit: the mailbox's own limit a day, and the domain's total (the policy service's).
      expect(dir.user('alice@example.org')).toMatchObject({ sendLimits: { hour: null, day: 20 } });
      expect(dir.domainSendLimits('example.org')).toEqual({ mailboxHour: null, mailboxDay: null, totalDay: 500 });
      expect(await loginOk(dir, 'alice@example.org', pw.alice)).toBe(true);
      expect(await loginOk(dir, 'bob@example.org', pw.bob)).toBe(true);
    },
    writes: [
      {
        what: 'password change (core_user, keyed through the mailbox join)',
        sql: `UPDATE core_user SET password = ${sq(modoboaNewHash)} WHERE email = 'alice@example.org'`,
        // The stored hash, then one verification: the old one's 70,000 rounds would make
        // every poll of the probe slow on a busy machine.
        probe: async (d) => {
          const u = d.user('alice@example.org');
          return u.status === 'ok' && u.password === modoboaNewHash && (await loginOk(d, 'alice@example.org', pw.aliceNew));
        },
      },
      {
        what: 'account deactivation (the user and its self alias, as Modoboa saves them)',
        sql: `BEGIN; UPDATE core_user SET is_active = false WHERE username = 'bob@example.org';
              UPDATE admin_alias SET enabled = false WHERE address = 'bob@example.org' AND internal; COMMIT;`,
        probe: (d) => d.user('bob@example.org').status === 'disabled' && d.mailbox('bob@example.org') === undefined,
      },
      {
        what: 'new alias (alias row and recipients in one transaction, as Django saves them)',
        sql: `BEGIN; ${modoboa2.alias(20, 'sales@example.org', 1, [{ address: 'alice@example.org', mailbox: 2 }, { address: 'boss@elsewhere.test' }])} COMMIT;`,
        probe: (d) => d.alias('sales@example.org') === 'alice@example.org,boss@elsewhere.test',
      },
      {
        what: 'a pending mailbox operation (sql-maintain.cf: 450)',
        sql: modoboa2.operation(2, 'rename'),
        probe: (d) => d.mailbox('alice@example.org') === MAINTENANCE_ANSWER,
      },
      {
        what: "the domain's message_limit (the policy service's domain total)",
        sql: `UPDATE admin_domain SET message_limit = 600 WHERE id = 1`,
        probe: (d) => d.domainSendLimits('example.org').totalDay === 600,
      },
      {
        what: 'domain rename (every mailbox key changes through the join)',
        sql: `UPDATE admin_domain SET name = 'renamed.example' WHERE id = 1`,
        probe: (d) => d.user('bob@renamed.example').status === 'disabled' && d.mailbox('alice@example.org') === undefined,
      },
    ],
  },
  {
    schema: 'modoboa',
    layout: 'Modoboa 1.0 (admin_user)',
    tables: [
      'admin_user',
      'admin_domain',
      'admin_domainalias',
      'admin_mailbox',
      'admin_alias',
      'admin_alias_mboxes',
      'admin_alias_aliases',
      'admin_quota',
      'admin_mailboxoperation',
    ],
    ddl: panelDdl('modoboa-1.0'),
    seed: () => {
      const d = { id: 1, name: 'example.org' };
      return [
        modoboa10.domain(1, 'example.org'),
        modoboa10.domain(2, 'other.example'),
        modoboa10.domainAlias(1, 'alias.example', 1),
        // Passwords as Modoboa 1.0.1 writes them: md5crypt bare, {SHA256} base64, {PLAIN}.
        modoboa10.mailbox(2, 'alice', d, dovecotHash('MD5-CRYPT', pw.alice, true), { quotaMb: 100 }),
        modoboa10.mailbox(3, 'bob', d, dovecotHash('SHA256', pw.bob)),
        modoboa10.alias(10, 'info', 1, { mailboxes: [2, 3] }),
        modoboa10.alias(11, 'team', 2, { aliases: [10], external: ['boss@elsewhere.test', 'x@y.test'] }),
        modoboa10.alias(12, '*', 2, { mailboxes: [2] }),
        modoboa10.restart,
      ].join('\n');
    },
    async answers(dir) {
      expect(dir.domain('example.org')).toBe('example.org');
      expect(dir.domain('alias.example')).toBe('alias.example');
      expect(dir.mailbox('alice@example.org')).toBe('example.org/alice/');
      expect(dir.alias('info@example.org')).toBe('alice@example.org,bob@example.org');
      expect(dir.alias('team@other.example')).toBe('info@example.org,boss@elsewhere.test,x@y.test');
      expect(dir.alias('anyone@other.example')).toBe('alice@example.org');
      expect(dir.alias('info@alias.example')).toBe('info@example.org');
      expect(dir.user('alice@example.org')).toMatchObject({ status: 'ok', quotaBytes: 100 * 1048576 });
      expect(await loginOk(dir, 'alice@example.org', pw.alice)).toBe(true);
      expect(await loginOk(dir, 'bob@example.org', pw.bob)).toBe(true);
    },
    writes: [
      {
        what: 'password change (admin_user, keyed through the mailbox join)',
        sql: `UPDATE admin_user SET password = ${sq(dovecotHash('SHA512-CRYPT', pw.aliceNew))} WHERE email = 'alice@example.org'`,
        probe: async (d) => (await loginOk(d, 'alice@example.org', pw.aliceNew)) && !(await loginOk(d, 'alice@example.org', pw.alice)),
      },
      {
        what: 'a mailbox added to an alias (admin_alias_mboxes)',
        sql: `DELETE FROM admin_alias_mboxes WHERE alias_id = 10 AND mailbox_id = 3`,
        probe: (d) => d.alias('info@example.org') === 'alice@example.org',
      },
      {
        what: 'outside addresses changed (extmboxes)',
        sql: `UPDATE admin_alias SET extmboxes = 'boss@elsewhere.test' WHERE id = 11`,
        probe: (d) => d.alias('team@other.example') === 'info@example.org,boss@elsewhere.test',
      },
      {
        what: 'domain rename (mailbox and alias keys change through the joins)',
        sql: `UPDATE admin_domain SET name = 'renamed.example' WHERE id = 1`,
        probe: (d) =>
          d.mailbox('alice@renamed.example') === 'renamed.example/alice/' &&
          d.alias('info@renamed.example') === 'alice@renamed.example' &&
          d.alias('info@example.org') === undefined &&
          d.alias('team@other.example') === 'info@renamed.example,boss@elsewhere.test',
      },
    ],
  },
  {
    schema: 'dinomail',
    tables: ['dinomail_virtualdomain', 'dinomail_virtualuser', 'dinomail_virtualalias'],
    ddl: `
      CREATE TABLE dinomail_virtualdomain (
        id serial PRIMARY KEY, name varchar(50) NOT NULL UNIQUE, dkim_key_name varchar(200) NOT NULL DEFAULT '',
        dkim_key text NOT NULL DEFAULT '', dkim_status integer NOT NULL DEFAULT 0,
        dkim_last_update timestamptz NOT NULL DEFAULT '2000-01-01', display_name varchar(200) NOT NULL DEFAULT '');
      CREATE TABLE dinomail_virtualuser (
        id serial PRIMARY KEY, domain_id integer NOT NULL REFERENCES dinomail_virtualdomain(id) DEFERRABLE INITIALLY DEFERRED,
        email varchar(254) NOT NULL UNIQUE, password varchar(300) NOT NULL, quota bigint DEFAULT 0);
      CREATE TABLE dinomail_virtualalias (
        id serial PRIMARY KEY, domain_id integer NOT NULL REFERENCES dinomail_virtualdomain(id) DEFERRABLE INITIALLY DEFERRED,
        source varchar(254) NOT NULL, destination varchar(254) NOT NULL);
    `,
    seed: () => `
      INSERT INTO dinomail_virtualdomain (id, name) VALUES (1, 'example.org');
      INSERT INTO dinomail_virtualuser (domain_id, email, password, quota) VALUES
        (1, 'alice@example.org', ${sq(dovecotHash('SSHA512', pw.alice))}, 5000000),
        (1, 'bob@example.org', ${sq(dovecotHash('SHA512-CRYPT', pw.bob))}, NULL);
      INSERT INTO dinomail_virtualalias (domain_id, source, destination) VALUES
        (1, 'postmaster@example.org', 'alice@example.org'), (1, 'postmaster@example.org', 'bob@example.org');
    `,
    async answers(dir) {
      expect(dir.domain('example.org')).toBe('example.org');
      expect(dir.mailbox('bob@example.org')).toBe('example.org/bob/');
      expect(dir.alias('postmaster@example.org')).toBe('alice@example.org,bob@example.org');
      expect(dir.senders('postmaster@example.org')).toBe('alice@example.org,bob@example.org');
      expect(dir.user('alice@example.org')).toMatchObject({ status: 'ok', quotaBytes: 5000000 });
      expect(dir.user('bob@example.org')).toMatchObject({ status: 'ok', quotaBytes: 0 });
      expect(await loginOk(dir, 'alice@example.org', pw.alice)).toBe(true);
      expect(await loginOk(dir, 'bob@example.org', pw.bob)).toBe(true);
    },
    writes: [
      {
        what: 'password change',
        sql: `UPDATE dinomail_virtualuser SET password = ${sq(dovecotHash('SSHA512', pw.aliceNew))} WHERE email = 'alice@example.org'`,
        probe: async (d) => (await loginOk(d, 'alice@example.org', pw.aliceNew)) && !(await loginOk(d, 'alice@example.org', pw.alice)),
      },
      {
        what: 'user deleted (DinoMail has no active flag)',
        sql: `DELETE FROM dinomail_virtualuser WHERE email = 'bob@example.org'`,
        probe: (d) => d.user('bob@example.org').status === 'unknown' && d.alias('postmaster@example.org') === 'alice@example.org,bob@example.org',
      },
      {
        what: 'new alias',
        sql: `INSERT INTO dinomail_virtualalias (domain_id, source, destination) VALUES (1, 'sales@example.org', 'alice@example.org')`,
        probe: (d) => d.alias('sales@example.org') === 'alice@example.org',
      },
    ],
  },
  {
    schema: 'django',
    tables: ['mail_domain', 'mail_emailaccount'],
    ddl: panelDdl('fayvad'),
    seed: () => `
      INSERT INTO mail_domain (id, name, enabled, created_at) VALUES (1, 'fayvad.test', true, now());
      INSERT INTO mail_emailaccount (email, password_hash, is_active, domain_id, created_at) VALUES
        ('d.kuria@fayvad.test', ${sq(dovecotHash('SHA512-CRYPT', pw.alice, true))}, true, 1, now()),
        ('bob@fayvad.test', ${sq(dovecotHash('SHA512-CRYPT', pw.bob, true))}, true, 1, now()),
        ('nohash@fayvad.test', NULL, true, 1, now());
    `,
    async answers(dir) {
      expect(dir.domain('fayvad.test')).toBe('fayvad.test');
      expect(dir.mailbox('d.kuria@fayvad.test')).toBe('fayvad.test/d.kuria/');
      expect(dir.alias('d.kuria@fayvad.test')).toBe('d.kuria@fayvad.test');
      expect(dir.senders('d.kuria@fayvad.test')).toBe('d.kuria@fayvad.test');
      expect(await loginOk(dir, 'd.kuria@fayvad.test', pw.alice)).toBe(true);
      expect(await loginOk(dir, 'nohash@fayvad.test', '')).toBe(false);
    },
    writes: [
      {
        what: 'password change (crypt.crypt, as the seed shows)',
        sql: `UPDATE mail_emailaccount SET password_hash = ${sq(dovecotHash('SHA512-CRYPT', pw.aliceNew, true))} WHERE email = 'd.kuria@fayvad.test'`,
        probe: async (d) => (await loginOk(d, 'd.kuria@fayvad.test', pw.aliceNew)) && !(await loginOk(d, 'd.kuria@fayvad.test', pw.alice)),
      },
      {
        what: 'account deactivation',
        sql: `UPDATE mail_emailaccount SET is_active = false WHERE email = 'bob@fayvad.test'`,
        probe: (d) => d.user('bob@fayvad.test').status === 'disabled' && d.mailbox('bob@fayvad.test') === undefined,
      },
      {
        what: 'new account (the seed has no alias table)',
        sql: `INSERT INTO mail_emailaccount (email, password_hash, is_active, domain_id, created_at) VALUES ('new@fayvad.test', ${sq(dovecotHash('SHA512-CRYPT', pw.bob, true))}, true, 1, now())`,
        probe: async (d) => d.mailbox('new@fayvad.test') === 'fayvad.test/new/' && (await loginOk(d, 'new@fayvad.test', pw.bob)),
      },
      {
        what: 'domain disabled',
        sql: `UPDATE mail_domain SET enabled = false WHERE name = 'fayvad.test'`,
        probe: (d) => d.domain('fayvad.test') === undefined && d.user('d.kuria@fayvad.test').status === 'disabled',
      },
    ],
  },
  {
    schema: 'laravel',
    tables: ['domains', 'email_accounts', 'aliases'],
    ddl: panelDdl('laravel'),
    seed: () => `
      INSERT INTO domains (id, domain, created_at, updated_at) VALUES (1, 'example.org', '2024-01-01', '2024-01-01');
      INSERT INTO email_accounts (domain_id, email, username, password, quota) VALUES
        -- 2 GiB as EmailAccountController stores it: the form's MB * 1024 * 1024.
        (1, 'alice@example.org', 'alice', ${sq(dovecotHash('BLF-CRYPT', pw.alice, true))}, 2147483648),
        (1, 'bob@example.org', 'bob', ${sq(dovecotHash('BLF-CRYPT', pw.bob, true))}, 0);
      INSERT INTO aliases (source, destination) VALUES ('info@example.org', 'alice@example.org'), ('@example.org', 'bob@example.org');
    `,
    async answers(dir) {
      expect(dir.domain('example.org')).toBe('example.org');
      expect(dir.mailbox('alice@example.org')).toBe('example.org/alice/');
      expect(dir.alias('info@example.org')).toBe('alice@example.org');
      expect(dir.alias('alice@example.org')).toBe('alice@example.org');
      expect(dir.alias('someone@example.org')).toBe('bob@example.org');
      expect(dir.senders('info@example.org')).toBe('alice@example.org');
      // The panel stores bytes (0 = unlimited): Dovecot gets them as they are.
      expect(dir.user('alice@example.org')).toMatchObject({ status: 'ok', quotaBytes: 2147483648 });
      expect(dir.user('bob@example.org')).toMatchObject({ status: 'ok', quotaBytes: 0 });
      expect(await loginOk(dir, 'alice@example.org', pw.alice)).toBe(true);
      expect(await loginOk(dir, 'bob@example.org', pw.bob)).toBe(true);
    },
    writes: [
      {
        what: 'password change (Hash::make → $2y$)',
        sql: `UPDATE email_accounts SET password = ${sq(dovecotHash('BLF-CRYPT', pw.aliceNew, true))}, updated_at = now() WHERE email = 'alice@example.org'`,
        probe: async (d) => (await loginOk(d, 'alice@example.org', pw.aliceNew)) && !(await loginOk(d, 'alice@example.org', pw.alice)),
      },
      {
        what: 'account deactivation',
        sql: `UPDATE email_accounts SET active = false WHERE email = 'bob@example.org'`,
        probe: (d) => d.user('bob@example.org').status === 'disabled',
      },
      {
        what: 'new alias',
        sql: `INSERT INTO aliases (source, destination, created_at, updated_at) VALUES ('Sales@Example.org', 'alice@example.org', now(), now())`,
        probe: (d) => d.alias('sales@example.org') === 'alice@example.org',
      },
      {
        what: 'alias deactivated (the catch-all answers again)',
        sql: `UPDATE aliases SET active = false WHERE source = 'info@example.org'`,
        probe: (d) => d.alias('info@example.org') === 'bob@example.org',
      },
    ],
  },
];

for (const panel of cases) {
  describe(`schema = ${panel.schema}${panel.layout ? ` (${panel.layout})` : ''}`, () => {
    let db: TestDatabase;
    let sync: Sync | undefined;
    const directory = createDirectory({ recipientDelimiter: '+' });
    let config: ReturnType<typeof parseConfigText>;
    let schemaBefore: string;

    beforeAll(async () => {
      db = await createTestDatabase({ migrate: false });
      await db.sql.query(panel.ddl);
      await db.sql.query(panel.seed());
      config = parseConfigText(`database_url = ${db.url}\nschema = ${panel.schema}\n`, 'test.conf');
      schemaBefore = pgDump(db.url, panel.tables, '--schema-only');
    });

    afterAll(async () => {
      await sync?.stop();
      await db?.drop();
    });

    it('passes the profile check against the panel tables', async () => {
      const profile = await chooseLayout(db.sql, await profileFor(panel.schema));
      expect(profile.layout).toBe(panel.layout);
      expect(await checkProfile(db.sql, profile)).toEqual([]);
    });

    it('triggers install adds triggers only, and status sees them', async () => {
      const dataBefore = pgDump(db.url, panel.tables, '--data-only');
      const o = capture();
      expect(await triggersCommand(config, ['install'], o.out)).toBe(0);
      expect(o.lines.join('\n')).toMatch(/tables watched/);
      expect(pgDump(db.url, panel.tables, '--data-only')).toBe(dataBefore);
      const s = capture();
      expect(await triggersCommand(config, ['status'], s.out)).toBe(0);
      expect(s.lines.every((l) => l.startsWith('ok '))).toBe(true);
    });

    it('serves the panel data: domains, mailboxes, aliases, senders, logins', async () => {
      sync = startTestSync({
        databaseUrl: db.url,
        profile: await profileFor(panel.schema),
        directory,
        pollIntervalMs: 200,
        reconnectMaxDelayMs: 1000,
      }).sync;
      await sync.firstLoad();
      await panel.answers(directory);
    });

    // Eventually; the times are printed, and measured in bench/ (sync).
    it("sees the panel's plain-SQL writes, each by its exact key", async () => {
      const took: Record<string, number> = {};
      const loads = sync!.status().fullLoads;
      for (const w of panel.writes) {
        await db.sql.query(w.sql);
        took[w.what] = await waitFor(w.probe.bind(null, directory), 10_000, w.what);
      }
      // Every trigger key was exact: no write fell back to a full reload.
      expect(sync!.status().fullLoads).toBe(loads);
      console.log(`${panel.schema}: commit → visible (ms)`, took);
    });

    it('triggers remove leaves the panel tables exactly as before install', async () => {
      const dataBefore = pgDump(db.url, panel.tables, '--data-only');
      const o = capture();
      expect(await triggersCommand(config, ['remove'], o.out)).toBe(0);
      expect(pgDump(db.url, panel.tables, '--data-only')).toBe(dataBefore);
      expect(pgDump(db.url, panel.tables, '--schema-only')).toBe(schemaBefore);
      const s = capture();
      expect(await triggersCommand(config, ['status'], s.out)).toBe(1);
      expect(s.lines.some((l) => l.startsWith('missing '))).toBe(true);
      // With the triggers gone, the panel's writes no longer reach the change log.
      const count = async () => (await db.sql.query('SELECT count(*)::int AS n FROM mailmapd.changes')).rows[0].n as number;
      const before = await count();
      await db.sql.query(panel.writes[0]!.sql);
      expect(await count()).toBe(before);
    });
  });
}

describe('custom profiles', () => {
  let db: TestDatabase;
  let dir: string;
  beforeAll(async () => {
    db = await createTestDatabase({ migrate: false });
    await db.sql.query(`
      CREATE SCHEMA mail;
      CREATE TABLE mail.doms (dname text PRIMARY KEY, on_ boolean NOT NULL DEFAULT true);
      CREATE TABLE mail.users (login text PRIMARY KEY, pw text, quota_mb integer NOT NULL DEFAULT 0, on_ boolean NOT NULL DEFAULT true);
      CREATE TABLE mail.fwd (src text, dst text);
      INSERT INTO mail.doms VALUES ('example.org', true);
      INSERT INTO mail.users VALUES ('alice@example.org', '{PLAIN}x', 10, true);
      INSERT INTO mail.fwd VALUES ('info@example.org', 'alice@example.org');
    `);
    dir = mkdtempSync(join(tmpdir(), 'mailmapd-profile-'));
  });
  afterAll(async () => {
    await db?.drop();
    rmSync(dir, { recursive: true, force: true });
  });

  const good = `-- my panel
-- domains:
SELECT dname AS name, on_ AS active FROM mail.doms;
-- mailboxes:
SELECT lower(login) AS address, pw AS password,
       quota_mb::bigint * 1048576 AS quota_bytes, on_ AS active
  FROM mail.users;
-- aliases:
SELECT lower(src) AS address, lower(dst) AS destination, true AS active FROM mail.fwd;
-- watch mail.doms domains lower(r.dname)
-- watch mail.users mailboxes lower(r.login)
-- watch mail.fwd aliases lower(r.src)
`;

  const write = (name: string, text: string) => {
    const p = join(dir, name);
    writeFileSync(p, text);
    return `custom:${p}`;
  };

  it('a good file passes the check, installs, and serves', async () => {
    const schema = write('good.sql', good);
    const profile = await profileFor(schema);
    expect(profile.watches).toHaveLength(3);
    expect(await checkProfile(db.sql, profile)).toEqual([]);
    const config = parseConfigText(`database_url = ${db.url}\nschema = ${schema}\n`, 'test.conf');
    expect(await triggersCommand(config, ['install'], () => {})).toBe(0);
    const directory = createDirectory({ recipientDelimiter: '+' });
    const { sync } = startTestSync({
      databaseUrl: db.url,
      profile,
      directory,
      pollIntervalMs: 200,
      reconnectMaxDelayMs: 1000,
    });
    try {
      await sync.firstLoad();
      expect(directory.alias('info@example.org')).toBe('alice@example.org');
      expect(directory.user('alice@example.org')).toMatchObject({ status: 'ok', password: '{PLAIN}x', quotaBytes: 10 * 1048576 });
      await db.sql.query(`UPDATE mail.users SET pw = '{PLAIN}y' WHERE login = 'alice@example.org'`);
      await waitFor(
        () => {
          const u = directory.user('alice@example.org');
          return u.status === 'ok' && u.password === '{PLAIN}y';
        },
        10_000,
        'custom profile password change',
      );
    } finally {
      await sync.stop();
      expect(await triggersCommand(config, ['remove', '--purge'], () => {})).toBe(0);
    }
    const left = await db.sql.query(`SELECT to_regnamespace('mailmapd') IS NULL AS gone`);
    expect(left.rows[0].gone).toBe(true);
  });

  it('a missing column is named', async () => {
    const p = await profileFor(write('missing.sql', good.replace('pw AS password,', '')));
    const problems = await checkProfile(db.sql, p);
    expect(problems).toContain('mailboxes query: missing column "password" (it must return address, password, quota_bytes, active, in that order)');
  });

  it('a wrong type is named', async () => {
    const p = await profileFor(write('type.sql', good.replace('on_ AS active FROM mail.doms', "'yes' AS active FROM mail.doms")));
    expect(await checkProfile(db.sql, p)).toEqual(['domains query: column "active" has type text, expected boolean']);
  });

  it('columns out of order, a failing query, a bad key expression and an unwatched table are named', async () => {
    const text = good
      .replace('SELECT dname AS name, on_ AS active', 'SELECT on_ AS active, dname AS name')
      .replace('FROM mail.fwd;', 'FROM mail.nosuch;')
      .replace('lower(r.login)', 'length(r.login)')
      .replace('-- watch mail.doms domains lower(r.dname)\n', '');
    const problems = await checkProfile(db.sql, await profileFor(write('bad.sql', text)));
    expect(problems).toEqual([
      'domains query: column "name" is number 2, it must be number 1 (name, active): the sync reads columns by position',
      'domains query: column "active" is number 1, it must be number 2 (name, active): the sync reads columns by position',
      'aliases query fails: relation "mail.nosuch" does not exist',
      'watch mail.users mailboxes: the key expression gives type int4, expected text (the lower-cased key of the mailboxes query)',
      'mailboxes query reads mail.users, but no watch sends its changes to mailboxes: changes to it would not reach the daemon (add a watch: table, kind mailboxes, key expression)',
    ]);
  });

  it('a watch on a table that does not exist, or cannot be named, is reported without stopping the check', async () => {
    const text = good.replace('-- watch mail.fwd aliases lower(r.src)', '-- watch a.b.c.d aliases lower(r.src)\n-- watch mail.nosuch aliases lower(r.src)');
    const problems = await checkProfile(db.sql, await profileFor(write('nosuch.sql', text)));
    expect(problems).toEqual([
      'watch a.b.c.d aliases: table "a.b.c.d" does not exist',
      'watch mail.nosuch aliases: table "mail.nosuch" does not exist',
      'aliases query reads mail.fwd, but no watch sends its changes to aliases: changes to it would not reach the daemon (add a watch: table, kind aliases, key expression)',
    ]);
  });

  it('refuses to install a profile that fails the check, touching nothing', async () => {
    const schema = write('bad-install.sql', good.replace('FROM mail.fwd;', 'FROM mail.nosuch;'));
    const config = parseConfigText(`database_url = ${db.url}\nschema = ${schema}\n`, 'test.conf');
    const o = capture();
    expect(await triggersCommand(config, ['install'], o.out)).toBe(2);
    expect(o.lines[0]).toBe('problem: aliases query fails: relation "mail.nosuch" does not exist');
    const r = await db.sql.query(`SELECT count(*)::int AS n FROM pg_trigger WHERE tgname LIKE 'mailmapd%'`);
    expect(r.rows[0].n).toBe(0);
  });

  it('syntax errors name the file and line', async () => {
    await expect(profileFor(write('s1.sql', 'SELECT 1;\n'))).rejects.toThrow(/s1\.sql:1: SQL before the first section/);
    await expect(profileFor(write('s2.sql', '-- domains:\nSELECT 1\n-- mailboxs:\nSELECT 2\n'))).rejects.toThrow(/s2\.sql:3: unknown section "mailboxs"/);
    await expect(profileFor(write('s3.sql', '-- domains:\nSELECT 1\n'))).rejects.toThrow(/the "-- mailboxes:" section is missing/);
    await expect(profileFor(write('s4.sql', good + '-- watch mail.users\n'))).rejects.toThrow(/s4\.sql:13: a watch line is/);
    await expect(profileFor(`custom:${join(dir, 'absent.sql')}`)).rejects.toThrow(ConfigError);
  });

  it('the shipped example parses', async () => {
    const p = await profileFor(`custom:${new URL('../../config/schema.custom.example.sql', import.meta.url).pathname}`);
    expect(p.watches!.length).toBeGreaterThan(0);
  });
});
