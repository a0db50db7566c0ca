// Reads the database into the directory: a full load in one REPEATABLE READ snapshot, or a
// catch-up that reads the change-log rows the position (position.ts) has not applied and
// re-reads only the keys they name, applied all at once. Holds what the directory is a copy
// of: the position, the panel layout read, whether the aliases with an end are all known.
// Whether a catch-up must become a full load is verdict.ts's to say.

import type pg from 'pg';
import { changeKinds, emptyData, type ChangeKind, type Directory, type DirectoryData } from '../directory/directory.js';
import { fold } from '../directory/address.js';
import { sqlstate, sqlstateOf } from '../db/sqlstate.js';
import { errorMessage, type Logger } from '../log.js';
import type { Deferred } from '../deferred.js';
import { secondsSince, type Metrics } from '../metrics.js';
import { abortRead, endRead, loadKind, loadedTail, rereadKeys, type ChangeRow, type ReadHead } from './changelog.js';
import type { Freshness } from './freshness.js';
import { advance, readPosition, type Position } from './position.js';
import { catchUpVerdict } from './verdict.js';
import type { AliasExpiry, Clock } from './alias-expiry.js';
import type { Profile } from './profile.js';
import { chooseLayout } from './profile-layout.js';
import { rowAdder, setEntry, type AliasTimes } from './rows.js';
import type { SyncStatus } from './status.js';

const known: ReadonlySet<string> = new Set(changeKinds);

/** Per kind: the keys a catch-up re-read, and the profile's rows for them. */
type KeyReads = Array<[ChangeKind, string[], unknown[][]]>;

export interface LoaderOptions {
  profile: Profile;
  directory: Directory;
  logger: Logger;
  metrics: Metrics;
  fetchSize: number;
  clock: Clock;
  expiry: AliasExpiry;
  freshness: Freshness;
  /** The sync's status: read for the server and its role, written for what is loaded. */
  status: SyncStatus;
  /** Resolved by the first full load (or the first catch-up from a resumed position). */
  first: Deferred<void>;
  resume?: { position: unknown };
  onApplied?: (position: unknown) => void;
  /** A read or probe succeeded. */
  succeeded(): void;
  stopped(): boolean;
}

export interface Loader {
  /** Brings the directory up to date: a catch-up, or a full load when the verdict asks one. */
  catchUp(c: pg.Client): Promise<void>;
  /** Reads a panel as the layout the database holds; a change of layout reloads in full. */
  useLayout(c: pg.Client): Promise<void>;
  /** The position now applied, if any. */
  position(): Position | undefined;
  /** The profile in use (a panel's layout chosen by useLayout). */
  profile(): Profile;
}

// Long because it is one closure over what the directory is a copy of (the position, the
// layout, the timed aliases); the steps inside it are held to the rule.
export function createLoader(o: LoaderOptions): Loader {
  const { directory, logger, metrics, status } = o;
  // A panel with several layouts (Modoboa 1.0 and 2.x) is read as the one the database
  // holds, chosen on every connection (chooseLayout).
  let profile = o.profile;
  // Whether the aliases with an end are all known: a full load reads them all; a daemon
  // resumed from a saved position reads them once with its first catch-up.
  let timedKnown = false;
  const aliasTimes = (): AliasTimes | undefined => (/\bexpires_at\b/.test(profile.queries.alias) ? { now: o.clock.now(), timed: new Map() } : undefined);
  let position: Position | undefined = o.resume ? readPosition(o.resume.position) : undefined;
  if (o.resume && !position) logger.warn('the saved sync position is unreadable; reloading in full');
  // The kinds whose change-log keys a join computes (a watch's key expression names another table).
  const joinedKindsOf = (p: Profile) => new Set((p.watches ?? []).filter((w) => /\{\{/.test(w.keyExpr)).map((w) => w.kind));
  let joinedKinds = joinedKindsOf(profile);

  const updateCounts = () => {
    const c = directory.counts();
    for (const k of changeKinds) metrics.directoryEntries.set({ table: k }, c[k]);
  };

  const applied = () => {
    if (position) status.history = { system: position.system, timeline: position.timeline };
    if (position && o.onApplied) {
      try {
        o.onApplied(structuredClone(position));
      } catch (err) {
        logger.warn('onApplied failed', { error: errorMessage(err) });
      }
    }
  };

  async function fullLoad(c: pg.Client, reason: string): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await fullLoadOnce(c, reason);
      } catch (err) {
        // A long read on a standby may be cancelled when replay needs the rows it holds.
        if (sqlstateOf(err) !== sqlstate.serializationFailure || attempt >= 5 || o.stopped()) throw err;
        logger.warn('full load cancelled by a recovery conflict; retrying', { attempt });
      }
    }
  }

  async function fullLoadOnce(c: pg.Client, reason: string): Promise<void> {
    const t0 = process.hrtime.bigint();
    const data: DirectoryData = emptyData();
    const times = aliasTimes();
    let head: ReadHead;
    let tail: Awaited<ReturnType<typeof loadedTail>>;
    try {
      head = (await o.freshness.open(c)).head;
      for (const kind of changeKinds) await loadKind(c, profile, kind, data, o.fetchSize, times);
      tail = await loadedTail(c, head.xmin);
      await endRead(c);
    } catch (err) {
      await abortRead(c);
      throw err;
    }
    o.freshness.noteRead(head.xip);
    directory.replaceAll(data);
    o.expiry.replaceAll(times?.timed ?? new Map());
    timedKnown = true;
    position = {
      v: 1,
      system: head.system,
      timeline: head.timeline,
      server: status.host,
      xmin: head.xmin,
      xmax: head.xmax,
      seen: tail.seen,
      lastId: tail.last.id,
      lastXid: tail.last.xid,
      lastAt: tail.last.at,
      ...(status.standby ? {} : { open: head.xip }),
    };
    status.loaded = true;
    status.fullLoads++;
    metrics.directoryLoaded.set(1);
    metrics.fullReloads.inc({ reason });
    const seconds = secondsSince(t0);
    metrics.loadDuration.set(seconds);
    updateCounts();
    o.succeeded();
    applied();
    const counts = directory.counts();
    logger.info('directory loaded', {
      reason,
      seconds: seconds.toFixed(3),
      domains: counts.domain,
      alias_domains: counts.alias_domain,
      mailboxes: counts.mailbox,
      aliases: counts.alias,
    });
    o.first.resolve();
  }

  /** The current rows of every key the changes name, by kind, in the open read. */
  async function rereadChanged(c: pg.Client, changes: ChangeRow[]): Promise<KeyReads> {
    // Keys exactly as PostgreSQL computed them: its lower() and JavaScript's fold()
    // differ outside ASCII (a C-ctype database leaves `Ä` alone), so the database
    // matches its own text, and only the directory folds.
    const byKind = new Map<ChangeKind, Set<string>>();
    for (const r of changes) {
      let set = byKind.get(r.kind);
      if (!set) byKind.set(r.kind, (set = new Set()));
      set.add(r.key!);
    }
    const reads: KeyReads = [];
    for (const [kind, set] of byKind) {
      const keys = [...set];
      reads.push([kind, keys, await rereadKeys(c, profile, kind, keys)]);
    }
    return reads;
  }

  /** A resumed daemon's aliases that have an end (the saved directory has no ends): re-read in the same snapshot. */
  async function rereadTimedAliases(c: pg.Client): Promise<KeyReads> {
    if (aliasTimes() === undefined) return [];
    const r = await c.query<{ a: string }>(`SELECT DISTINCT q.address AS a FROM (${profile.queries.alias}) q WHERE q.expires_at IS NOT NULL`);
    const keys = r.rows.map((x) => x.a);
    return keys.length === 0 ? [] : [['alias', keys, await rereadKeys(c, profile, 'alias', keys)]];
  }

  /** Applies everything one read found at once, so no lookup sees half a batch; returns the entries set. */
  function applyReads(reads: KeyReads): number {
    let n = 0;
    for (const [kind, keys, rows] of reads) {
      const data = emptyData();
      const times = kind === 'alias' ? aliasTimes() : undefined;
      const add = rowAdder(data, kind, times);
      for (const r of rows) add.add(r);
      add.finish();
      const folded = new Set(keys.map(fold));
      for (const k of folded) setEntry(directory, data, kind, k);
      if (times !== undefined) o.expiry.replaceKeys(folded, times.timed);
      metrics.changesApplied.inc({ table: kind }, folded.size);
      n += folded.size;
    }
    return n;
  }

  /** What one catch-up's read found: applied by catchUp, or a verdict's reload. */
  interface Found {
    head: ReadHead;
    changes: ChangeRow[];
    readXids: Set<string>;
    reads: KeyReads;
    /** The read's COMMIT, in flight while the rows are applied. */
    ending: Promise<void>;
  }

  /** Reads what `p` has not applied; a string: the reason to reload in full instead (the read is ended). */
  async function readChanges(c: pg.Client, p: Position): Promise<Found | string> {
    try {
      const read = await o.freshness.open(c, p);
      const head = read.head;
      const found = read.unapplied!;
      // A kind this daemon does not know was logged by a newer mailmapd's schema (hosts are
      // upgraded one at a time): it has nothing of that kind to update.
      const changes = found.changes.filter((r) => known.has(r.kind));
      // All of them are read, the unknown kinds' too: the poll must not find them again.
      const readXids = new Set(found.changes.map((r) => r.xid));
      const verdict = catchUpVerdict(p, { ...head, server: status.host, lastApplied: found.lastApplied }, changes, joinedKinds);
      if (verdict !== undefined) {
        await abortRead(c);
        if (verdict.reload === 'history') logger.warn('the database is not the history the directory was read from; reloading in full', { why: verdict.why });
        if (verdict.reload === 'behind') logger.warn('change log pruned past our position; reloading in full');
        return verdict.reload;
      }
      const reads = await rereadChanged(c, changes);
      if (!timedKnown) reads.push(...(await rereadTimedAliases(c)));
      // Everything is read: the COMMIT of a read-only snapshot changes nothing of it, so
      // its round trip runs while the rows are applied (awaited by catchUp).
      const ending = endRead(c);
      ending.catch(() => {});
      return { head, changes, readXids, reads, ending };
    } catch (err) {
      await abortRead(c);
      throw err;
    }
  }

  async function catchUp(c: pg.Client): Promise<void> {
    const p = position;
    if (p === undefined) return fullLoad(c, 'start');
    const found = await readChanges(c, p);
    if (typeof found === 'string') return fullLoad(c, found);
    const { head, changes, readXids, reads, ending } = found;
    o.freshness.noteRead(head.xip);
    const entries = applyReads(reads);
    timedKnown = true;
    for (const r of changes) metrics.syncLag.observe(Math.max(0, r.age));
    let last: ChangeRow | undefined;
    for (const r of changes) if (last === undefined || BigInt(r.id) > BigInt(last.id)) last = r;
    position = advance(p, { ...head, ...(status.standby ? {} : { open: head.xip }) }, readXids, last);
    if (entries > 0) {
      updateCounts();
      logger.debug('changes applied', { entries });
    }
    if (!status.loaded) {
      // Resumed from a saved position: the directory was loaded by whoever saved it.
      status.loaded = true;
      metrics.directoryLoaded.set(1);
      o.first.resolve();
    }
    o.succeeded();
    applied();
    try {
      await ending;
    } catch (err) {
      await abortRead(c);
      throw err;
    }
  }

  return {
    catchUp,
    async useLayout(c) {
      if (o.profile.layouts === undefined) return;
      const chosen = await chooseLayout(c, o.profile);
      if (chosen === profile) return;
      if (profile !== o.profile) position = undefined;
      profile = chosen;
      joinedKinds = joinedKindsOf(profile);
      logger.info('panel layout', { schema: profile.name, layout: profile.layout ?? '' });
    },
    position: () => position,
    profile: () => profile,
  };
}
