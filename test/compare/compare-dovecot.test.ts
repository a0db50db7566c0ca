// Differential test for logins: the same SASL PLAIN logins (right and wrong passwords, every
// password scheme, case variants, alias-domain logins, inactive mailboxes and domains,
// disabled services, odd user names) asked of Dovecot's own SQL passdb over the native
// schema and of mailmapd's auth-client door, both over the same database and through the
// same client. Passwords are hashed by `doveadm pw`, not by mailmapd. Every difference is
// printed as a table; the listed ones are wanted, with their reasons, and a listed one that
// no longer occurs fails too. COMPARE_SEED=N reproduces a run's random rows.

import { execFile } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, expect, it } from 'vitest';
import {
  differenceTable,
  generateRows,
  insertRows,
  judge,
  maxAppPasswords,
  seedFromEnv,
  type Credential,
  type Difference,
  type ExpectedDifference,
  type Rows,
} from '../helpers/compare-directory.js';
import { startDaemon, type Daemon } from '../helpers/daemon.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { dovecot23Target, dovecotInstance, type DovecotInstance } from '../helpers/dovecot.js';
import { authPlainBatch, type Login } from '../helpers/logins.js';

const run = promisify(execFile);

/**
 * Schemes Dovecot 2.3 and mailmapd both verify, with `doveadm pw` options; each hashes its
 * own cleartext. One Argon2 only: at Dovecot's 64 MiB a check, it dominates the run time.
 */
const schemes = [
  'PLAIN',
  'SHA512-CRYPT',
  'SHA512-CRYPT -r 1000',
  'SHA256-CRYPT',
  'BLF-CRYPT',
  'BLF-CRYPT -r 4',
  'MD5-CRYPT',
  'ARGON2ID',
  'PBKDF2',
  'SSHA512',
  'SSHA256',
  'SHA512',
  'SHA256',
  'SSHA',
  'SHA1',
  'SMD5',
  'PLAIN-MD5',
  'CRAM-MD5',
  'SCRAM-SHA-1',
  'SCRAM-SHA-256',
];

async function credentials(): Promise<Credential[]> {
  const hashed = await Promise.all(
    schemes.map(async (scheme, i) => {
      const [name, ...options] = scheme.split(' ');
      const cleartext = `pw-${name!.toLowerCase()}-${i}`;
      const { stdout } = await run('doveadm', ['pw', '-s', name!, ...options, '-p', cleartext]);
      return { stored: stdout.trim(), cleartext };
    }),
  );
  const crypt = hashed.find((c) => c.stored.startsWith('{SHA512-CRYPT}'))!;
  return [
    ...hashed,
    // A bare crypt string, as old panels store them (the contract allows it).
    { stored: crypt.stored.replace('{SHA512-CRYPT}', ''), cleartext: crypt.cleartext },
    // A scheme name in lower case, and a cleartext with spaces and non-ASCII characters.
    { stored: crypt.stored.replace('{SHA512-CRYPT}', '{sha512-crypt}'), cleartext: crypt.cleartext },
    { stored: '{PLAIN}pässwörd mit Leerzeichen', cleartext: 'pässwörd mit Leerzeichen' },
    // A scheme neither knows: no password logs in.
    { stored: '{NO-SUCH-SCHEME}abc', cleartext: undefined },
  ];
}

// Dovecot expands %u (the user name, already lower-cased by the default auth_username_format
// %Lu in ASCII; lower() does the rest) and %s (the service), SQL-escaped. A login in an alias
// domain logs in as the mailbox of the target domain, whose address Dovecot takes as the user.
// A mailbox in maintenance fails the query (a cast that fails only when evaluated): Dovecot
// answers a passdb's error with a temporary failure, as mailmapd answers maintenance.

/** The mailbox a login names, and its active domain; `extra` joins more, `password` is the column. */
const mailboxQuery = (password: string, extra = '') => `SELECT m.address AS user,
    CASE WHEN m.maintenance THEN ((m.address || ' is in maintenance')::int)::text ELSE ${password} END AS password
  FROM (SELECT coalesce(
          (SELECT x.address FROM mailmapd.mailboxes x WHERE x.address = lower('%u')),
          (SELECT substring(lower('%u') from '^(.+)@') || '@' || ad.target FROM mailmapd.alias_domains ad
            WHERE ad.name = substring(lower('%u') from '@([^@]*)$') AND ad.active)) AS address) t
  JOIN mailmapd.mailboxes m ON m.address = t.address
  JOIN mailmapd.domains d ON d.name = m.domain ${extra}
 WHERE m.active AND d.active AND '%s' <> ALL (m.disabled_services) AND ${password} IS NOT NULL`;

const passwordQueries = [
  mailboxQuery('m.password'),
  ...Array.from({ length: maxAppPasswords }, (_, i) =>
    mailboxQuery(
      'a.password',
      `JOIN LATERAL (SELECT a.password FROM mailmapd.app_passwords a WHERE a.mailbox = m.address AND a.active
        AND (cardinality(a.services) = 0 OR '%s' = ANY (a.services)) ORDER BY a.id OFFSET ${i} LIMIT 1) a ON true`,
    ),
  ),
];

const services = ['imap', 'pop3', 'smtp', 'submission'];

/** Every login worth trying: each mailbox with its password, a wrong one, in other spellings and domains. */
function loginsFor(rows: Rows): Login[] {
  const out: Login[] = [];
  const aliasDomainsOf = (domain: string) => rows.aliasDomains.filter((a) => a.target === domain).map((a) => a.name);
  // A mailbox in maintenance gets a few logins only: each costs Dovecot's pgsql driver a reconnect.
  const inMaintenance = new Set(rows.mailboxes.filter((m) => m.maintenance).map((m) => m.address));
  for (const m of rows.mailboxes.filter((m) => inMaintenance.has(m.address))) {
    const password = m.cleartext ?? 'anything';
    out.push({ user: m.address, password, service: 'imap' }, { user: m.address.toUpperCase(), password: `${password}x`, service: 'smtp' });
    for (const ad of aliasDomainsOf(m.address.slice(m.address.lastIndexOf('@') + 1)).slice(0, 1))
      out.push({ user: m.address.replace(/@.*$/, `@${ad}`), password, service: 'imap' });
  }
  rows.mailboxes.forEach((m, i) => {
    if (inMaintenance.has(m.address)) return;
    const password = m.cleartext ?? 'anything';
    const at = m.address.lastIndexOf('@');
    const local = m.address.slice(0, at);
    const domain = m.address.slice(at + 1);
    const service = services[i % services.length]!;
    out.push({ user: m.address, password, service: 'imap' });
    out.push({ user: m.address, password, service });
    out.push({ user: m.address, password: `${password}x`, service: 'imap' });
    out.push({ user: m.address, password: password.toUpperCase(), service: 'imap' });
    out.push({ user: m.address.toUpperCase(), password, service: 'imap' });
    out.push({ user: `${local}+tag@${domain}`, password, service: 'imap' });
    for (const ad of aliasDomainsOf(domain)) out.push({ user: `${local}@${ad.toUpperCase()}`, password, service: 'imap' });
  });
  for (const a of rows.appPasswords) {
    const password = a.cleartext ?? 'anything';
    for (const service of inMaintenance.has(a.mailbox) ? ['imap'] : services) out.push({ user: a.mailbox, password, service });
    if (inMaintenance.has(a.mailbox)) continue;
    const domain = a.mailbox.slice(a.mailbox.lastIndexOf('@') + 1);
    for (const ad of aliasDomainsOf(domain)) out.push({ user: `${a.mailbox.slice(0, a.mailbox.lastIndexOf('@'))}@${ad}`, password, service: 'imap' });
  }
  const known = rows.mailboxes[0]!;
  for (const user of ['nobody@example.org', 'alice', 'alice@', '@example.org', 'alice@unknown.invalid', 'alice@example.org*master', ' alice@example.org'])
    out.push({ user, password: known.cleartext ?? 'x', service: 'imap' });
  out.push({ user: 'alice@example.org', password: '', service: 'imap' });
  return out;
}

/** A reply as compared: OK with the user it logged in as, or FAIL, temporary or not. */
function outcome(line: string): string {
  const fields = line.split('\t');
  if (fields[0] === 'OK') return `OK ${fields.find((f) => f.startsWith('user=')) ?? '(no user)'}`;
  return fields.some((f) => f === 'temp' || f === 'code=temp_fail') ? 'FAIL temp' : 'FAIL';
}

const expected: ExpectedDifference[] = [
  {
    map: 'logins',
    reason:
      "a mailbox in maintenance with a wrong password: mailmapd tells a mailbox's state only once the password is proven (a wrong one gets the plain FAIL); an SQL passdb can only fail the whole lookup, whatever the password",
    matches: (d) => /maint/i.test(d.key) && d.reference === 'FAIL temp' && d.mailmapd === 'FAIL',
  },
];

const seed = seedFromEnv();
let db: TestDatabase;
let daemon: Daemon;
let dovecot: DovecotInstance;
let rows: Rows;

beforeAll(async () => {
  console.log(`compare-dovecot: seed ${seed} (COMPARE_SEED=${seed} reproduces this run)`);
  expect(existsSync('/usr/lib/dovecot/modules/auth/libdriver_pgsql.so'), "install Debian's dovecot-pgsql package").toBe(true);
  db = await createTestDatabase();
  rows = generateRows(seed, await credentials());
  await insertRows(db.sql, rows);
  // No guessing limiter: Dovecot's SQL passdb has none, and the wrong passwords here are many.
  daemon = await startDaemon({ databaseUrl: db.url, config: { policy_enabled: 'no' } });
  dovecot = dovecotInstance(dovecot23Target, 'mailmapd-compare-dovecot-');
  const server = new URL(db.url);
  const passdbs = passwordQueries.map((query, i) => {
    const path = join(dovecot.dir, `dovecot-sql-${i}.conf.ext`);
    writeFileSync(
      path,
      [
        'driver = pgsql',
        `connect = host=${server.hostname} port=${server.port || '5432'} dbname=${db.name} user=${decodeURIComponent(server.username) || 'postgres'}`,
        // A bare crypt string is a password too (the contract allows it).
        'default_pass_scheme = CRYPT',
        `password_query = ${query.replace(/\n\s*/g, ' ')}`,
        '',
      ].join('\n'),
      { mode: 0o644 },
    );
    // A failed passdb goes on to the next (Dovecot's default): the mailbox's password, then each
    // app password. The first one's error (maintenance) is the answer: no app password is asked.
    return `passdb {\n  driver = sql\n  args = ${path}\n${i === 0 ? '  result_internalfail = return-fail\n' : ''}}`;
  });
  dovecot.writeConfig([
    'protocols =',
    'default_internal_user = dovecot',
    'default_login_user = dovenull',
    'auth_failure_delay = 0',
    // Dovecot refuses user names with other characters (`+`, `'`, non-ASCII) before any
    // passdb by default; the comparison is about what the passdb decides.
    'auth_username_chars =',
    'disable_plaintext_auth = no',
    ...passdbs,
    'userdb {\n  driver = static\n  args = uid=5000 gid=5000 home=/var/vmail/%d/%n\n}',
  ]);
  await dovecot.start(['auth-client']);
});

afterAll(async () => {
  await dovecot?.stop();
  await daemon?.stop();
  await db?.drop();
});

/**
 * The logins' replies, the ones about mailboxes in maintenance one at a time after the rest:
 * Dovecot's pgsql driver drops its connection on a failed query (the maintenance cast), and
 * the logins whose queries were on it at that moment would fail temporarily too.
 */
async function ask(target: string | number, logins: readonly Login[]): Promise<string[]> {
  const about = (l: Login) => /maint/i.test(l.user);
  const rest = logins.filter((l) => !about(l));
  const maintenance = logins.filter(about);
  const replies = [...(await authPlainBatch(target, rest)), ...(await authPlainBatch(target, maintenance, 60_000, 1))];
  const order = [...rest, ...maintenance];
  return logins.map((l) => replies[order.indexOf(l)]!);
}

it('Dovecot SQL passdb and mailmapd decide every login alike', async () => {
  const logins = loginsFor(rows);
  const [reference, mailmapd] = await Promise.all([ask(join(dovecot.dir, 'run', 'auth-client'), logins), ask(daemon.ports.auth, logins)]);
  const diffs: Difference[] = [];
  logins.forEach((l, i) => {
    const r = outcome(reference[i]!);
    const m = outcome(mailmapd[i]!);
    if (r !== m) diffs.push({ map: 'logins', key: `${l.service} ${l.user} / ${l.password}`, reference: r, mailmapd: m });
  });
  const ok = reference.filter((l) => l.startsWith('OK')).length;
  const { unexpected, unused } = judge(diffs, expected);
  console.log(`compare-dovecot: ${logins.length} logins, ${ok} accepted by Dovecot's SQL passdb, ${diffs.length - unexpected.length} expected differences`);
  if (unexpected.length > 0) console.log(`logins: unexpected differences\n${differenceTable(unexpected, 'dovecot sql')}`);
  if (diffs.length > unexpected.length)
    console.log(
      `logins: expected differences\n${differenceTable(
        diffs.filter((d) => !unexpected.includes(d)),
        'dovecot sql',
      )}`,
    );
  // Both outcomes must occur, or the comparison proves nothing.
  expect(ok).toBeGreaterThan(20);
  expect(ok).toBeLessThan(logins.length - 20);
  expect(unexpected, `unexpected differences:\n${differenceTable(unexpected, 'dovecot sql')}\n${dovecot.log().slice(-3000)}`).toEqual([]);
  expect(
    unused.map((e) => e.reason),
    'listed differences that no longer occur: remove them from the list',
  ).toEqual([]);
});
