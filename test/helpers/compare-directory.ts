// The directory the differential tests (test/compare-*.test.ts) ask mailmapd and Postfix's or
// Dovecot's own SQL lookups about: hand-written rows for every rule's edge cases plus random
// rows drawn with fast-check from a fixed, printed seed (COMPARE_SEED=N picks another; not a
// MAILMAPD_ name, which the daemon would read as its config), written to the native schema as
// any other application would; the keys to ask; and the comparison that prints every
// difference as a table. No name is both a domain and an alias domain: the reference SQL
// follows an alias domain one step, which is all such a directory needs.

import fc from 'fast-check';
import type pg from 'pg';

/** The recipient_delimiter of the comparison: two characters, so "every character listed" is tested. */
export const delimiters = '+-';

export interface MailboxRow {
  address: string;
  password: string | null;
  active: boolean;
  disabledServices: string[];
  /** The cleartext that logs in, when `password` is a real hash of one. */
  cleartext?: string;
  maintenance?: boolean;
}

/**
 * Most active app passwords one mailbox gets: Dovecot's SQL passdb returns one password a
 * lookup, so compare-dovecot asks one passdb per app password.
 */
export const maxAppPasswords = 4;

export interface AppPasswordRow {
  mailbox: string;
  name: string;
  password: string;
  cleartext?: string;
  services: string[];
  active: boolean;
}

export interface Rows {
  domains: { name: string; active: boolean; transport: string | null }[];
  aliasDomains: { name: string; target: string; active: boolean }[];
  mailboxes: MailboxRow[];
  aliases: { address: string; destination: string; active: boolean }[];
  relayDomains: { name: string; transport: string | null; active: boolean }[];
  relayRecipients: string[];
  senderRelayhosts: { sender: string; relayhost: string | null; credentials: string | null; active: boolean }[];
  appPasswords: AppPasswordRow[];
  sendAs: { mailbox: string; address: string; active: boolean }[];
  bcc: { address: string; direction: 'sender' | 'recipient'; bcc: string; active: boolean }[];
}

/** A stored password and the cleartext it accepts (undefined: none does). */
export interface Credential {
  stored: string | null;
  cleartext?: string;
}

const defaultSeed = 20261126;

export function seedFromEnv(): number {
  const s = process.env.COMPARE_SEED;
  return s === undefined || s === '' ? defaultSeed : Number(s);
}

/**
 * The hand-written rows: one or more per rule of the contract's maps and logins. Mailbox
 * passwords are taken round-robin from `credentials`.
 */
function edgeRows(credential: (i: number) => Credential): Rows {
  let n = 0;
  const mb = (address: string, active = true, disabledServices: string[] = []): MailboxRow => {
    const c = credential(n++);
    return { address, password: c.stored, cleartext: c.cleartext, active, disabledServices };
  };
  const app = (mailbox: string, name: string, services: string[] = [], active = true): AppPasswordRow => {
    const c = credential(n++);
    return { mailbox, name, password: c.stored!, cleartext: c.cleartext, services, active };
  };
  return {
    domains: [
      { name: 'example.org', active: true, transport: null },
      { name: 'example.net', active: true, transport: 'smtp:[mx.example.net]:25' },
      { name: 'off.test', active: false, transport: 'smtp:[mx.off.test]' },
      { name: 'relay.test', active: true, transport: null }, // also a relay domain: the domain's transport is NULL
    ],
    aliasDomains: [
      { name: 'alias.test', target: 'example.org', active: true },
      { name: 'alias2.test', target: 'example.net', active: true },
      { name: 'offalias.test', target: 'example.org', active: false },
      { name: 'deadtarget.test', target: 'off.test', active: true },
    ],
    mailboxes: [
      mb('alice@example.org'),
      mb('bob@example.org', false),
      mb('carol@off.test'),
      mb('dave@example.net'),
      mb('info@example.org'), // also an alias: the alias wins
      mb('norecv@example.org', true, ['receive']),
      mb('noimap@example.org', true, ['imap']),
      mb('nosmtp@example.org', true, ['smtp', 'pop3']),
      mb('a+b@example.org'), // a delimiter inside a real mailbox's name
      mb('x-y@example.org', false), // inactive, with a delimiter: x@ may answer for it
      mb('x@example.org'),
      mb('x-norecv@example.org', true, ['receive']), // no recipient, though x@ is one: no fallback to it
      mb('+lead@example.org'), // a leading delimiter is no extension
      mb('jörg@example.org'),
      mb('strasse@example.org'),
      mb("o'brien@example.org"),
      { address: 'nopass@example.org', password: null, active: true, disabledServices: [] },
      mb('inboth@example.net'),
      mb('offnorecv@example.org', false, ['receive']),
      { ...mb('maint@example.org'), maintenance: true },
      { ...mb('maint-x@example.org', false), maintenance: true },
    ],
    aliases: [
      { address: 'info@example.org', destination: 'alice@example.org', active: true },
      { address: 'info@example.org', destination: 'dave@example.net', active: true },
      { address: 'sales@example.org', destination: 'alice@example.org', active: true },
      { address: 'sales+eu@example.org', destination: 'dave@example.net', active: true },
      { address: 'list@example.org', destination: 'alice@example.org', active: true },
      { address: 'list@example.org', destination: 'bob@example.org', active: false },
      { address: 'dead@example.org', destination: 'alice@example.org', active: false },
      { address: 'old@off.test', destination: 'alice@example.org', active: true },
      { address: 'ghost@unknown.test', destination: 'alice@example.org', active: true },
      { address: 'fwd@alias.test', destination: 'dave@example.net', active: true },
      { address: 'alice@example.org', destination: 'archive@example.net', active: true },
      { address: 'alice@example.org', destination: 'alice@example.org', active: true },
      { address: 'norecv@example.org', destination: 'alice@example.org', active: true },
      { address: 'ext@example.org', destination: 'x+y@example.net', active: true },
      { address: 'domfwd@example.org', destination: '@example.net', active: true },
      { address: 'x@example.org', destination: 'dave@example.net', active: true },
      { address: 'inboth@example.net', destination: 'alice@example.org', active: true },
      { address: '@example.net', destination: 'alice@example.org', active: true },
      { address: '@alias.test', destination: 'dave@example.net', active: true },
      { address: '@off.test', destination: 'alice@example.org', active: true },
      { address: '@offalias.test', destination: 'alice@example.org', active: true },
      { address: '@deadtarget.test', destination: 'alice@example.org', active: true },
      { address: 'sender@example.org', destination: 'bob@example.org', active: true },
      { address: 'sender@example.org', destination: 'dave@example.net', active: true },
      { address: 'sender@example.org', destination: 'carol@off.test', active: true },
    ],
    relayDomains: [
      { name: 'relay.test', transport: 'smtp:[mx.relay.test]', active: true },
      { name: 'open.relay.test', transport: null, active: true },
      { name: 'offrelay.test', transport: 'smtp:[mx.offrelay.test]', active: false },
      { name: 'wild.relay.test', transport: 'relay:[wild]', active: true },
    ],
    relayRecipients: ['known@relay.test', 'k+x@relay.test', 'ghost@offrelay.test', '@wild.relay.test'],
    senderRelayhosts: [
      { sender: 'alice@example.org', relayhost: '[smtp.example.net]:587', credentials: 'alice:relay-pw', active: true },
      { sender: '@example.net', relayhost: '[relay.example.net]', credentials: null, active: true },
      { sender: 'dave@example.net', relayhost: null, credentials: 'dave:pw', active: true },
      { sender: 'old@example.org', relayhost: '[old.example.net]', credentials: 'old:pw', active: false },
      { sender: 'sales@example.org', relayhost: '[sales.example.net]', credentials: null, active: true },
    ],
    sendAs: [
      { mailbox: 'alice@example.org', address: 'ceo@example.org', active: true },
      { mailbox: 'alice@example.org', address: '@example.net', active: true }, // covers alias2.test too
      { mailbox: 'dave@example.net', address: '@alias.test', active: true }, // not example.org
      { mailbox: 'dave@example.net', address: 'ceo@example.org', active: false },
      { mailbox: 'dave@example.net', address: 'sales+eu@example.org', active: true },
      { mailbox: 'bob@example.org', address: 'ceo@example.org', active: true }, // an inactive mailbox
      { mailbox: 'carol@off.test', address: 'ceo@example.org', active: true }, // in an inactive domain
      { mailbox: 'alice@example.org', address: 'me@outside.test', active: true }, // a domain the directory does not know
      { mailbox: 'alice@example.org', address: 'old@off.test', active: true }, // an inactive domain
      { mailbox: 'alice@example.org', address: 'x@offalias.test', active: true }, // an inactive alias domain
      { mailbox: 'x@example.org', address: 'info@example.org', active: true },
    ],
    bcc: [
      { address: 'alice@example.org', direction: 'sender', bcc: 'alice-sent@example.net', active: true },
      { address: '@example.org', direction: 'sender', bcc: 'all-sent@example.net', active: true },
      { address: 'alice@example.org', direction: 'recipient', bcc: 'alice-in@example.net', active: true },
      { address: 'x+y@example.net', direction: 'recipient', bcc: 'xy@example.net', active: true },
      { address: '@off.test', direction: 'recipient', bcc: 'off@example.net', active: true },
      { address: 'old@example.org', direction: 'sender', bcc: 'old@example.net', active: false },
    ],
    appPasswords: [
      app('alice@example.org', 'phone'),
      app('alice@example.org', 'mailer', ['smtp']),
      app('alice@example.org', 'laptop', ['imap', 'pop3']),
      app('alice@example.org', 'old', [], false),
      app('noimap@example.org', 'imap-only', ['imap']),
      app('bob@example.org', 'inactive-mailbox'),
      app('carol@off.test', 'inactive-domain'),
      app('nopass@example.org', 'only-way-in'),
      app('maint@example.org', 'maintenance'),
    ],
  };
}

/** Local parts as people type them: upper case (folded by the schema), dots, delimiters. */
const localPart = fc.stringMatching(/^[a-zA-Z0-9][a-zA-Z0-9._+-]{0,7}$/).filter((s) => !s.includes('..'));

/** Random rows on top of the edge rows, deterministic for a seed. */
function randomRows(seed: number, base: Rows, credential: (i: number) => Credential): Rows {
  const label = fc.stringMatching(/^[a-z][a-z0-9]{0,5}$/);
  const arb = fc.record({
    domains: fc.uniqueArray(label, { minLength: 5, maxLength: 5 }),
    domainActive: fc.array(fc.integer({ min: 0, max: 9 }), { minLength: 5, maxLength: 5 }),
    aliasDomains: fc.uniqueArray(fc.record({ name: label, target: fc.nat(), active: fc.integer({ min: 0, max: 4 }) }), {
      minLength: 3,
      maxLength: 3,
      selector: (d) => d.name,
    }),
    mailboxes: fc.array(fc.record({ local: localPart, domain: fc.nat(), active: fc.integer({ min: 0, max: 6 }), disabled: fc.integer({ min: 0, max: 9 }) }), {
      minLength: 50,
      maxLength: 50,
    }),
    aliases: fc.array(
      fc.record({
        local: fc.oneof({ weight: 1, arbitrary: fc.constant('') }, { weight: 8, arbitrary: localPart }),
        domain: fc.nat(),
        destinations: fc.array(
          fc.oneof(
            fc.nat().map((i) => ({ mailbox: i })),
            fc.record({ local: localPart, domain: label }),
          ),
          { minLength: 1, maxLength: 3 },
        ),
        active: fc.integer({ min: 0, max: 6 }),
      }),
      { minLength: 40, maxLength: 40 },
    ),
    appPasswords: fc.array(
      fc.record({ mailbox: fc.nat(), services: fc.subarray(['imap', 'pop3', 'smtp', 'submission']), active: fc.integer({ min: 0, max: 4 }) }),
      { minLength: 12, maxLength: 12 },
    ),
  });
  const [r] = fc.sample(arb, { seed, numRuns: 1 });
  const out: Rows = structuredClone(base);
  const domains = r!.domains.map((d, i) => ({ name: `${d}.rnd.test`, active: r!.domainActive[i]! > 1, transport: null }));
  out.domains.push(...domains);
  const domainNames = out.domains.map((d) => d.name);
  const aliasDomains = r!.aliasDomains.map((a) => ({
    name: `${a.name}.ralias.test`,
    target: domainNames[a.target % domainNames.length]!,
    active: a.active > 0,
  }));
  out.aliasDomains.push(...aliasDomains);
  const seen = new Set(out.mailboxes.map((m) => m.address));
  let n = 1000;
  for (const m of r!.mailboxes) {
    const address = `${m.local}@${domainNames[m.domain % domainNames.length]!}`.toLowerCase();
    if (seen.has(address)) continue;
    seen.add(address);
    const disabled = m.disabled === 0 ? ['receive'] : m.disabled === 1 ? ['imap'] : [];
    const c = credential(n++);
    out.mailboxes.push({ address, password: c.stored, cleartext: c.cleartext, active: m.active > 0, disabledServices: disabled });
  }
  const mailboxes = out.mailboxes.map((m) => m.address);
  const aliasHomes = [...domainNames, ...out.aliasDomains.map((a) => a.name), 'unknown.test'];
  const pairs = new Set(out.aliases.map((a) => `${a.address} ${a.destination}`));
  for (const a of r!.aliases) {
    const address = `${a.local}@${aliasHomes[a.domain % aliasHomes.length]!}`.toLowerCase();
    for (const d of a.destinations) {
      const destination = ('mailbox' in d ? mailboxes[d.mailbox % mailboxes.length]! : `${d.local}@${d.domain}.example`).toLowerCase();
      if (pairs.has(`${address} ${destination}`)) continue;
      pairs.add(`${address} ${destination}`);
      out.aliases.push({ address, destination, active: a.active > 0 });
    }
  }
  const active = (mailbox: string) => out.appPasswords.filter((a) => a.mailbox === mailbox && a.active).length;
  r!.appPasswords.forEach((a, i) => {
    const mailbox = mailboxes[a.mailbox % mailboxes.length]!;
    const c = credential(n++);
    if (c.stored === null || active(mailbox) >= maxAppPasswords) return;
    out.appPasswords.push({ mailbox, name: `app${i}`, password: c.stored, cleartext: c.cleartext, services: a.services, active: a.active > 0 });
  });
  return out;
}

export function generateRows(seed: number, credentials: readonly Credential[]): Rows {
  const credential = (i: number) => credentials[i % credentials.length]!;
  return randomRows(seed, edgeRows(credential), credential);
}

/** Writes the rows to the native schema in one transaction, as another application would. */
export async function insertRows(sql: pg.Client, rows: Rows): Promise<void> {
  await sql.query('BEGIN');
  for (const d of rows.domains) await sql.query('INSERT INTO mailmapd.domains (name, active, transport) VALUES ($1, $2, $3)', [d.name, d.active, d.transport]);
  for (const a of rows.aliasDomains)
    await sql.query('INSERT INTO mailmapd.alias_domains (name, target, active) VALUES ($1, $2, $3)', [a.name, a.target, a.active]);
  for (const m of rows.mailboxes)
    await sql.query('INSERT INTO mailmapd.mailboxes (address, password, active, disabled_services, maintenance) VALUES ($1, $2, $3, $4, $5)', [
      m.address,
      m.password,
      m.active,
      m.disabledServices,
      m.maintenance === true,
    ]);
  for (const a of rows.appPasswords)
    await sql.query('INSERT INTO mailmapd.app_passwords (mailbox, name, password, services, active) VALUES ($1, $2, $3, $4, $5)', [
      a.mailbox,
      a.name,
      a.password,
      a.services,
      a.active,
    ]);
  for (const a of rows.aliases)
    await sql.query('INSERT INTO mailmapd.aliases (address, destination, active) VALUES ($1, $2, $3)', [a.address, a.destination, a.active]);
  for (const r of rows.relayDomains)
    await sql.query('INSERT INTO mailmapd.relay_domains (name, transport, active) VALUES ($1, $2, $3)', [r.name, r.transport, r.active]);
  for (const a of rows.relayRecipients) await sql.query('INSERT INTO mailmapd.relay_recipients (address) VALUES ($1)', [a]);
  for (const s of rows.senderRelayhosts)
    await sql.query('INSERT INTO mailmapd.sender_relayhosts (sender, relayhost, credentials, active) VALUES ($1, $2, $3, $4)', [
      s.sender,
      s.relayhost,
      s.credentials,
      s.active,
    ]);
  for (const g of rows.sendAs) await sql.query('INSERT INTO mailmapd.send_as (mailbox, address, active) VALUES ($1, $2, $3)', [g.mailbox, g.address, g.active]);
  for (const b of rows.bcc)
    await sql.query('INSERT INTO mailmapd.bcc (address, direction, bcc, active) VALUES ($1, $2, $3, $4)', [b.address, b.direction, b.bcc, b.active]);
  await sql.query('COMMIT');
}

/** Keys that are no address of the directory: odd syntax, quoting, case folding beyond ASCII. */
const oddKeys = [
  '*',
  '[1.2.3.4]',
  'user@[1.2.3.4]',
  '"a@b"@example.org',
  '"alice"@example.org',
  'a@',
  '@',
  'a@@example.org',
  "o'brien@example.org",
  "O'Brien+x@Example.org",
  'back\\slash@example.org',
  'Straße@example.org',
  'JÖRG@EXAMPLE.ORG',
  'Jörg+Tag@Alias.Test',
  'alice++x@example.org',
  'alice+-x@example.org',
  'alice-+x@example.org',
  '-alice@example.org',
  'alice@example.org.',
  'alice@EXAMPLE.org',
  'a b@example.org',
  'alice@alias.test@example.org',
  `${'l'.repeat(300)}@example.org`,
  'example.org@',
  '.@example.org',
  '%@example.org',
  '_@example.org',
];

/** Every key worth asking: each address in every spelling and every domain in every role. */
export function keysFor(rows: Rows): string[] {
  const keys = new Set<string>(oddKeys);
  const aliasDomainsOf = (domain: string) => rows.aliasDomains.filter((a) => a.target === domain).map((a) => a.name);
  const addresses = new Set<string>([
    ...rows.mailboxes.map((m) => m.address),
    ...rows.aliases.flatMap((a) => [a.address, a.destination]),
    ...rows.relayRecipients,
    ...rows.senderRelayhosts.map((s) => s.sender),
    ...rows.sendAs.map((g) => g.address),
    ...rows.bcc.map((b) => b.address),
  ]);
  for (const a of addresses) {
    const at = a.lastIndexOf('@');
    const local = a.slice(0, at);
    const domain = a.slice(at + 1);
    if (local === '') continue; // `@domain`: asked below with the domains
    keys.add(a);
    keys.add(a.toUpperCase());
    keys.add(`${local.charAt(0).toUpperCase()}${local.slice(1)}@${domain.toUpperCase()}`);
    for (const ext of ['+ext', '-Ext', '+', '+a-b']) keys.add(`${local}${ext}@${domain}`);
    const cut = local.slice(1).search(/[+-]/);
    if (cut >= 0) keys.add(`${local.slice(0, cut + 1)}@${domain}`);
    for (const ad of aliasDomainsOf(domain)) {
      keys.add(`${local}@${ad}`);
      keys.add(`${local}+ext@${ad.toUpperCase()}`);
    }
  }
  const domains = new Set<string>([
    ...rows.domains.map((d) => d.name),
    ...rows.aliasDomains.map((a) => a.name),
    ...rows.relayDomains.map((r) => r.name),
    ...[...addresses].map((a) => a.slice(a.lastIndexOf('@') + 1)),
    'unknown.invalid',
  ]);
  for (const d of domains) {
    for (const k of [d, d.toUpperCase(), `@${d}`, `nobody@${d}`, `nobody+x@${d}`, `Nobody@${d.toUpperCase()}`]) keys.add(k);
  }
  return [...keys].sort();
}

/** One difference: what each side answered for a key of a map (undefined: not found). */
export interface Difference {
  map: string;
  key: string;
  reference: string | undefined;
  mailmapd: string | undefined;
}

/** A difference that is known and wanted, with the reason why; `matches` picks its rows. */
export interface ExpectedDifference {
  map: string;
  reason: string;
  matches(d: Difference): boolean;
}

/** Every key whose answers differ; `normalize` makes equal answers compare equal (e.g. order). */
export function differences(
  map: string,
  keys: readonly string[],
  reference: Map<string, string>,
  mailmapd: Map<string, string>,
  normalize: (v: string) => string = (v) => v,
): Difference[] {
  const out: Difference[] = [];
  for (const key of keys) {
    const r = reference.get(key);
    const m = mailmapd.get(key);
    if ((r === undefined ? r : normalize(r)) !== (m === undefined ? m : normalize(m))) out.push({ map, key, reference: r, mailmapd: m });
  }
  return out;
}

/** Destinations and logins as a set: Postfix gives SQL rows in no particular order. */
export const asSet = (v: string) => v.split(',').sort().join(',');

/** The differences as a readable table. */
export function differenceTable(diffs: readonly Difference[], referenceName: string): string {
  const rows = [['map', 'key', referenceName, 'mailmapd'], ...diffs.map((d) => [d.map, d.key, d.reference ?? '(not found)', d.mailmapd ?? '(not found)'])];
  const cell = (s: string) => (s.length > 60 ? `${s.slice(0, 57)}...` : s);
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => cell(r[i]!).length)));
  return rows.map((r) => r.map((c, i) => cell(c).padEnd(widths[i]!)).join('  ')).join('\n');
}

/**
 * Splits the differences into unexpected ones and expected rules that matched nothing: both
 * must be empty, so a fixed difference cannot leave a stale excuse behind.
 */
export function judge(diffs: readonly Difference[], expected: readonly ExpectedDifference[]): { unexpected: Difference[]; unused: ExpectedDifference[] } {
  const used = new Set<ExpectedDifference>();
  const unexpected = diffs.filter((d) => {
    const rule = expected.find((e) => e.map === d.map && e.matches(d));
    if (rule) used.add(rule);
    return rule === undefined;
  });
  return { unexpected, unused: expected.filter((e) => !used.has(e)) };
}
