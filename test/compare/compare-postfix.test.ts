// Differential test: the same keys asked of mailmapd (socketmap, through the real postmap)
// and of Postfix's own `pgsql:` tables over the same native-schema database, map by map.
// The .cf files below (and the few functions the senders query calls) are what a careful administrator would write for the contract's
// semantics against the native schema; where Postfix would do a fallback itself for an SQL
// table (address without extension, `@domain`) but never does for a socketmap (it sends the
// full key only), the query does it, so that `postmap -q` of one key compares with one
// socketmap answer. Every difference is printed as a table; the few that are wanted are
// listed below with their reasons, and a listed one that no longer occurs fails too.
// The seed of the random rows is printed; COMPARE_SEED=N reproduces a run.

import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  asSet,
  delimiters,
  differences,
  differenceTable,
  generateRows,
  insertRows,
  judge,
  keysFor,
  seedFromEnv,
  type ExpectedDifference,
} from '../helpers/compare-directory.js';
import { startDaemon, type Daemon } from '../helpers/daemon.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { POSTMAP, postmapBatch, postmapOne } from '../helpers/postfix.js';

// Postfix expands %s (the key), %u (its local part; the whole key when it has no `@`) and %d
// (its domain; no `@`: the query is not run), each SQL-quoted, after folding the key to lower
// case (Unicode case folding: Straße → strasse). A query whose %u is empty (`@domain`) is not
// run either. `[+-]` is the recipient_delimiter the daemon is given.
// Postfix joins a query's lines into one: no `--` comments inside a query.

/** The key's parts: address, local part, domain, local part without extension, the extension. */
const keyParts = `k0 AS (SELECT '%u' AS lp, '%d' AS dom),
    k AS (SELECT lp || '@' || dom AS a, lp, dom, substring(lp from '^(.[^+-]*)[+-]') AS blp, substring(lp from '^.[^+-]*([+-].*)$') AS ext FROM k0)`;

/** Each mailbox: `live` = it and its domain are active; `rcpt` = live and receives mail; `maint`. */
const mailboxState = `mb AS (SELECT m.address, m.active AND d.active AS live,
      m.active AND d.active AND NOT 'receive' = ANY (m.disabled_services) AS rcpt, m.maintenance AS maint
      FROM mailmapd.mailboxes m JOIN mailmapd.domains d ON d.name = m.domain)`;

/**
 * A query error for an answer that must be deferred (a mailbox in maintenance): Postfix
 * defers on a table's error as on a socketmap's TEMP. The cast fails only when evaluated.
 */
const deferIf = (condition: string, address: string, answer: string) =>
  `CASE WHEN ${condition} THEN ((${address} || ' is in maintenance')::int)::text ELSE ${answer} END`;

/** Active alias domains of active domains, and every domain the server takes mail for. */
const served = `adt AS (SELECT ad.name, ad.target FROM mailmapd.alias_domains ad
      JOIN mailmapd.domains t ON t.name = ad.target WHERE ad.active AND t.active),
    served AS (SELECT name FROM mailmapd.domains WHERE active UNION SELECT name FROM adt)`;

/** Active alias rows whose address is in a served domain. */
const activeAliases = `al AS (SELECT a.address, a.destination FROM mailmapd.aliases a
      JOIN served s ON s.name = substring(a.address from '@([^@]*)$') WHERE a.active)`;

/** sender_dependent maps: the address, then without its extension, then `@domain`; first active row wins. */
const senderColumn = (column: string) => `WITH k0 AS (SELECT '%s' AS a),
    k AS (SELECT a, substring(a from '^(.*)@') AS lp, substring(a from '@([^@]*)$') AS dom FROM k0),
    c AS (SELECT 1 AS o, k.a AS sender FROM k WHERE k.lp <> ''
      UNION ALL SELECT 2, substring(k.lp from '^(.[^+-]*)[+-]') || '@' || k.dom FROM k
      UNION ALL SELECT 3, '@' || k.dom FROM k WHERE k.dom <> '')
  SELECT s.${column} FROM c JOIN mailmapd.sender_relayhosts s ON s.sender = c.sender
   WHERE s.active AND s.${column} IS NOT NULL ORDER BY c.o LIMIT 1`;

/** BCC maps: the address, then without its extension, then `@domain`; the first active row. */
const bccColumn = (direction: string) => `WITH k0 AS (SELECT '%s' AS a),
    k AS (SELECT a, substring(a from '^(.*)@') AS lp, substring(a from '@([^@]*)$') AS dom FROM k0),
    c AS (SELECT 1 AS o, k.a AS address FROM k WHERE k.lp <> ''
      UNION ALL SELECT 2, substring(k.lp from '^(.[^+-]*)[+-]') || '@' || k.dom FROM k
      UNION ALL SELECT 3, '@' || k.dom FROM k WHERE k.dom <> '')
  SELECT b.bcc FROM c JOIN mailmapd.bcc b ON b.address = c.address AND b.direction = '${direction}'
   WHERE b.active ORDER BY c.o LIMIT 1`;

const queries: Record<string, string> = {
  domains: `SELECT name FROM mailmapd.domains WHERE name = '%s' AND active
  UNION SELECT ad.name FROM mailmapd.alias_domains ad JOIN mailmapd.domains t ON t.name = ad.target
   WHERE ad.name = '%s' AND ad.active AND t.active`,

  // The address itself, or — unless the address is a live mailbox — the address without its extension.
  mailboxes: `WITH ${keyParts}, ${mailboxState}
  SELECT ${deferIf('mb.maint', 'mb.address', "substring(mb.address from '@(.*)$') || '/' || substring(mb.address from '^([^@]*)@') || '/'")} FROM mb, k
   WHERE mb.rcpt AND (mb.address = k.a OR (mb.address = k.blp || '@' || k.dom
     AND NOT EXISTS (SELECT 1 FROM mb x WHERE x.address = k.a AND x.live)))`,

  // The contract's search order as steps; the first step with rows answers. A live mailbox
  // that does not receive (or whose base address does not) answers nothing at all.
  aliases: `WITH ${keyParts}, ${mailboxState}, ${served}, ${activeAliases},
    refused AS (SELECT 1 FROM k WHERE EXISTS (SELECT 1 FROM mb WHERE mb.address = k.a AND mb.live AND NOT mb.rcpt)
      OR (k.blp IS NOT NULL AND NOT EXISTS (SELECT 1 FROM mb WHERE mb.address = k.a AND mb.live)
        AND EXISTS (SELECT 1 FROM mb WHERE mb.address = k.blp || '@' || k.dom AND mb.live AND NOT mb.rcpt))),
    steps AS (SELECT 1 AS step, al.destination AS dest, false AS maint FROM al, k WHERE al.address = k.a
      UNION ALL SELECT 2, CASE WHEN al.destination LIKE '@%%' THEN al.destination
          ELSE substring(al.destination from '^(.*)@') || k.ext || substring(al.destination from '(@[^@]*)$') END, false
        FROM al, k WHERE al.address = k.blp || '@' || k.dom
      UNION ALL SELECT 3, k.a, x.maint FROM k, LATERAL (SELECT mb.maint FROM mb WHERE mb.rcpt AND mb.address IN (k.a, k.blp || '@' || k.dom)
        ORDER BY mb.address = k.a DESC LIMIT 1) x
      UNION ALL SELECT 4, k.lp || '@' || adt.target, false FROM k JOIN adt ON adt.name = k.dom
        WHERE NOT EXISTS (SELECT 1 FROM mb WHERE mb.address = k.lp || '@' || adt.target AND mb.live AND NOT mb.rcpt)
          AND NOT (k.blp IS NOT NULL AND NOT EXISTS (SELECT 1 FROM mb WHERE mb.address = k.lp || '@' || adt.target AND mb.live)
            AND EXISTS (SELECT 1 FROM mb WHERE mb.address = k.blp || '@' || adt.target AND mb.live AND NOT mb.rcpt))
          AND (EXISTS (SELECT 1 FROM al WHERE al.address IN (k.lp || '@' || adt.target, k.blp || '@' || adt.target, '@' || adt.target))
            OR EXISTS (SELECT 1 FROM mb WHERE mb.rcpt AND mb.address IN (k.lp || '@' || adt.target, k.blp || '@' || adt.target)))
      UNION ALL SELECT 5, al.destination, false FROM al, k WHERE al.address = '@' || k.dom)
  SELECT ${deferIf('maint', 'dest', 'dest')} FROM steps WHERE NOT EXISTS (SELECT 1 FROM refused) AND step = (SELECT min(step) FROM steps)`,

  // The address's own names that are live mailboxes, the mailboxes its alias reaches (ref_members),
  // and the live mailboxes granted its names or their @domain in a domain that is served or unknown.
  senders: `WITH k AS (SELECT '%u' || '@' || '%d' AS a), own AS (SELECT n FROM k, ref_names(k.a)),
    g AS (SELECT n FROM own UNION SELECT '@' || substring(n from '@([^@]*)$') FROM own),
    granted AS (SELECT s.mailbox AS m FROM g JOIN mailmapd.send_as s ON s.address = g.n AND s.active
      WHERE NOT ref_unserved(substring(g.n from '@([^@]*)$')))
  SELECT DISTINCT m FROM (SELECT n AS m FROM own UNION ALL SELECT m FROM k, ref_members(k.a) m UNION ALL SELECT m FROM granted) x
   WHERE m IN (SELECT address FROM ref_mb)`,

  // A domain's own transport, else its relay domain's; the key is a domain or an address.
  transport: `WITH k0 AS (SELECT '%s' AS key), k AS (SELECT substring(key from '([^@]*)$') AS dom FROM k0)
  SELECT coalesce(d.transport, r.transport) FROM k
    LEFT JOIN mailmapd.domains d ON d.name = k.dom AND d.active
    LEFT JOIN mailmapd.relay_domains r ON r.name = k.dom AND r.active
   WHERE coalesce(d.transport, r.transport) IS NOT NULL`,

  relay_domains: `SELECT name FROM mailmapd.relay_domains WHERE name = '%s' AND active`,

  // Every address of an active relay domain that lists no recipients; else the listed ones.
  relay_recipients: `WITH ${keyParts}
  SELECT k.a FROM k JOIN mailmapd.relay_domains r ON r.name = k.dom AND r.active
   WHERE NOT EXISTS (SELECT 1 FROM mailmapd.relay_recipients x WHERE substring(x.address from '@([^@]*)$') = k.dom)
      OR EXISTS (SELECT 1 FROM mailmapd.relay_recipients x WHERE x.address IN (k.a, k.blp || '@' || k.dom, '@' || k.dom))`,

  sender_relayhost: senderColumn('relayhost'),
  sender_relay_credentials: senderColumn('credentials'),
  sender_bcc: bccColumn('sender'),
  recipient_bcc: bccColumn('recipient'),
};

/**
 * What the senders query calls, made once in the test's database as an administrator would:
 * the directory's live parts (tables here, as the rows do not change during the comparison and
 * views made postmap's batch too slow; an administrator would use views), an address's names, the alias that resolves it (as the
 * aliases map finds it, never a catch-all), and the mailboxes its alias reaches. The expansion
 * is set-based (a recursive CTE), not a walk: every address reached is expanded once, and one
 * reached twice (or one of the sender's own names reached again) also stands for its own
 * mailbox, as Postfix's cleanup keeps an address it has seen before.
 */
const referenceSql = String.raw`
CREATE TABLE ref_mb AS SELECT m.address FROM mailmapd.mailboxes m JOIN mailmapd.domains d ON d.name = m.domain WHERE m.active AND d.active;
CREATE TABLE ref_adt AS SELECT ad.name, ad.target FROM mailmapd.alias_domains ad JOIN mailmapd.domains t ON t.name = ad.target WHERE ad.active AND t.active;
CREATE TABLE ref_served AS SELECT name FROM mailmapd.domains WHERE active UNION SELECT name FROM ref_adt;
CREATE TABLE ref_al AS SELECT a.address, a.destination FROM mailmapd.aliases a
  JOIN ref_served s ON s.name = substring(a.address from '@([^@]*)$') WHERE a.active;
CREATE INDEX ON ref_mb (address);
CREATE INDEX ON ref_adt (name);
CREATE INDEX ON ref_al (address);
ANALYZE ref_mb, ref_adt, ref_served, ref_al;
CREATE FUNCTION ref_unserved(dom text) RETURNS boolean LANGUAGE sql STABLE AS $$
  SELECT (EXISTS (SELECT 1 FROM mailmapd.domains WHERE name = dom) OR EXISTS (SELECT 1 FROM mailmapd.alias_domains WHERE name = dom))
     AND NOT EXISTS (SELECT 1 FROM ref_served WHERE name = dom) $$;
CREATE FUNCTION ref_parts(x text, OUT lp text, OUT dom text, OUT blp text, OUT target text) LANGUAGE sql STABLE AS $$
  SELECT p.lp, p.dom, substring(p.lp from '^(.[^+-]*)[+-]'), (SELECT t.target FROM ref_adt t WHERE t.name = p.dom)
    FROM (SELECT substring(x from '^(.*)@') AS lp, substring(x from '@([^@]*)$') AS dom) p $$;
-- The address and its form in the target domain; without the extension only when neither is a live mailbox.
CREATE FUNCTION ref_names(x text) RETURNS TABLE (o int, n text) LANGUAGE sql STABLE AS $$
  WITH p AS (SELECT * FROM ref_parts(x)),
    f AS (SELECT 1 AS o, x AS n UNION ALL SELECT 2, p.lp || '@' || p.target FROM p WHERE p.target IS NOT NULL)
  SELECT o, n FROM f
  UNION ALL SELECT v.o, v.n FROM p CROSS JOIN LATERAL (VALUES (3, p.blp || '@' || p.dom), (4, p.blp || '@' || p.target)) v (o, n)
   WHERE v.n IS NOT NULL AND NOT EXISTS (SELECT 1 FROM f JOIN ref_mb m ON m.address = f.n) $$;
CREATE FUNCTION ref_mailbox_of(x text) RETURNS text LANGUAGE sql STABLE AS $$
  SELECT r.n FROM ref_names(x) r JOIN ref_mb m ON m.address = r.n ORDER BY r.o LIMIT 1 $$;
CREATE FUNCTION ref_alias_for(x text) RETURNS SETOF text LANGUAGE sql STABLE AS $$
  WITH p AS (SELECT * FROM ref_parts(x)),
    mailbox AS (SELECT EXISTS (SELECT 1 FROM ref_mb m, p WHERE m.address IN (x, p.blp || '@' || p.dom)) AS yes),
    steps AS (SELECT 1 AS o, al.destination AS d FROM ref_al al WHERE al.address = x
      UNION ALL SELECT 2, al.destination FROM ref_al al, p WHERE al.address = p.blp || '@' || p.dom
      UNION ALL SELECT 3, al.destination FROM ref_al al, p, mailbox WHERE NOT mailbox.yes AND al.address = p.lp || '@' || p.target
      UNION ALL SELECT 4, al.destination FROM ref_al al, p, mailbox WHERE NOT mailbox.yes AND al.address = p.blp || '@' || p.target)
  SELECT d FROM steps WHERE o = (SELECT min(o) FROM steps) AND d NOT LIKE '@%' $$;
CREATE FUNCTION ref_members(a text) RETURNS SETOF text LANGUAGE sql STABLE AS $$
  WITH RECURSIVE own AS (SELECT n FROM ref_names(a)),
    reached (d) AS (SELECT y FROM ref_alias_for(a) y
      UNION SELECT y FROM reached r CROSS JOIN LATERAL ref_alias_for(r.d) y WHERE r.d NOT IN (SELECT n FROM own)),
    hits AS (SELECT y AS d FROM ref_alias_for(a) y
      UNION ALL SELECT y FROM reached r CROSS JOIN LATERAL ref_alias_for(r.d) y WHERE r.d NOT IN (SELECT n FROM own)
      UNION ALL SELECT n FROM own)
  SELECT ref_mailbox_of(r.d) FROM reached r
   WHERE (SELECT count(*) FROM hits h WHERE h.d = r.d) >= 2 OR NOT EXISTS (SELECT 1 FROM ref_alias_for(r.d)) $$;
`;

/**
 * Postfix 3.7's pgsql client sets the connection's encoding to LATIN1 (3.8 added the
 * `encoding` setting): the UTF-8 bytes of a key arrive as LATIN1 characters, and an answer
 * with a non-LATIN1 byte sequence would reach postmap as invalid UTF-8. So the key is read
 * back as the UTF-8 it was, and the answer sent as its UTF-8 bytes: what an administrator of
 * Postfix 3.7 with internationalized addresses has to write.
 */
function utf8OverLatin1(query: string): string {
  const keyed = query.replace(/'%([sud])'/g, "convert_from(convert_to('%$1', 'LATIN1'), 'UTF8')");
  return `SELECT convert_from(convert_to(v, 'UTF8'), 'LATIN1') FROM (${keyed}) q (v)`;
}

/** Answers that are sets (Postfix returns SQL rows in no particular order). */
const setMaps = new Set(['aliases', 'senders']);

const atDomain = (key: string) => key.startsWith('@');

/** A key whose Unicode case folding differs from lower-casing it (`ß` folds to `ss`). */
const foldsBeyondLowerCase = (key: string) => key.toLowerCase() !== key.toUpperCase().toLowerCase();

const caseFolding = (map: string): ExpectedDifference => ({
  map,
  reason:
    'Postfix folds the keys of its own tables with Unicode case folding (Straße → strasse); mailmapd lower-cases them, as the schema does its rows with lower(), so `Straße@` finds a row stored as `straße@`, not `strasse@`',
  matches: (d) => foldsBeyondLowerCase(d.key),
});

/** The differences that are meant, each with its reason; any other fails the test. */
const expected: ExpectedDifference[] = [
  caseFolding('mailboxes'),
  caseFolding('aliases'),
  caseFolding('senders'),
  {
    map: 'aliases',
    reason:
      'key `@domain`: Postfix runs no query whose %u is empty; mailmapd answers the catch-all itself (Postfix never asks a socketmap for `@domain`, it sends the full address)',
    matches: (d) => atDomain(d.key) && d.reference === undefined && d.mailmapd !== undefined,
  },
];

const seed = seedFromEnv();
let db: TestDatabase;
let daemon: Daemon;
let dir: string;
let socket: string;
let keys: string[];

beforeAll(async () => {
  console.log(`compare-postfix: seed ${seed} (COMPARE_SEED=${seed} reproduces this run)`);
  db = await createTestDatabase();
  const rows = generateRows(seed, [{ stored: '{PLAIN}unused' }]);
  await insertRows(db.sql, rows);
  await db.sql.query(referenceSql);
  keys = keysFor(rows);
  dir = mkdtempSync(join(tmpdir(), 'mailmapd-compare-'));
  // A UNIX socket: mailmapd answers sender_relay_credentials (passwords) on no TCP listener.
  socket = join(dir, 'socketmap');
  daemon = await startDaemon({ databaseUrl: db.url, config: { recipient_delimiter: delimiters, socketmap_listen: `unix:${socket}` } });
  const server = new URL(db.url);
  for (const [map, query] of Object.entries(queries)) {
    const cf = [
      `hosts = ${server.hostname}:${server.port || '5432'}`,
      `user = ${decodeURIComponent(server.username) || 'postgres'}`,
      `password = ${decodeURIComponent(server.password)}`,
      `dbname = ${db.name}`,
      `query = ${utf8OverLatin1(query)}`,
      '',
    ];
    writeFileSync(join(dir, `${map}.cf`), cf.join('\n'));
  }
});

afterAll(async () => {
  await daemon?.stop();
  await db?.drop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

it('postmap and its pgsql: client are installed (this comparison must run, not skip)', () => {
  expect(existsSync(POSTMAP), `${POSTMAP} is missing: install Debian's postfix package`).toBe(true);
  expect(existsSync('/usr/lib/postfix/postfix-pgsql.so'), "install Debian's postfix-pgsql package").toBe(true);
});

/** Maps whose answer for a mailbox in maintenance is TEMP, which ends a `postmap -q -` batch. */
const deferring = new Set(['mailboxes', 'aliases']);
const aboutMaintenance = (key: string) => /maint/i.test(key);

/**
 * postmapBatch over a few hundred keys at a time, one after another: each postmap gets 30 s,
 * and the senders reference (a recursive expansion per key) needs more than that for them all
 * on a busy machine.
 */
async function inChunks(table: string, all: readonly string[]): Promise<Map<string, string>> {
  const found = new Map<string, string>();
  for (let i = 0; i < all.length; i += 400) for (const [k, v] of await postmapBatch(table, all.slice(i, i + 400))) found.set(k, v);
  return found;
}

/**
 * Every key's answer from one table: batches of keys, except that the keys about the mailboxes in
 * maintenance go one postmap each to the maps that may defer them (answer `TEMP`).
 */
async function ask(table: string, map: string): Promise<Map<string, string>> {
  if (!deferring.has(map)) return inChunks(table, keys);
  const found = await inChunks(
    table,
    keys.filter((k) => !aboutMaintenance(k)),
  );
  const single = keys.filter(aboutMaintenance);
  for (let i = 0; i < single.length; i += 8) {
    const batch = single.slice(i, i + 8);
    const answers = await Promise.all(batch.map((k) => postmapOne(table, k)));
    batch.forEach((k, j) => {
      if (answers[j] !== undefined) found.set(k, answers[j]!);
    });
  }
  return found;
}

describe('pgsql: tables and mailmapd answer every key alike', { timeout: 180_000 }, () => {
  for (const map of Object.keys(queries)) {
    it(map, async () => {
      const [reference, mailmapd] = await Promise.all([ask(`pgsql:${join(dir, `${map}.cf`)}`, map), ask(`socketmap:unix:${socket}:${map}`, map)]);
      const diffs = differences(map, keys, reference, mailmapd, setMaps.has(map) ? asSet : undefined);
      const { unexpected, unused } = judge(
        diffs,
        expected.filter((e) => e.map === map),
      );
      const listed = diffs.length - unexpected.length;
      console.log(`${map}: ${keys.length} keys, ${reference.size} found by pgsql:, ${mailmapd.size} by mailmapd, ${listed} expected differences`);
      if (unexpected.length > 0) console.log(`${map}: unexpected differences\n${differenceTable(unexpected, 'pgsql:')}`);
      if (diffs.length > unexpected.length)
        console.log(
          `${map}: expected differences\n${differenceTable(
            diffs.filter((d) => !unexpected.includes(d)),
            'pgsql:',
          )}`,
        );
      // Both sides must find something, or the comparison proves nothing.
      expect(reference.size).toBeGreaterThan(5);
      if (deferring.has(map)) expect([...reference.values()]).toContain('TEMP');
      expect(unexpected, `unexpected differences in ${map}:\n${differenceTable(unexpected, 'pgsql:')}`).toEqual([]);
      expect(
        unused.map((e) => e.reason),
        'listed differences that no longer occur: remove them from the list',
      ).toEqual([]);
    });
  }
});
