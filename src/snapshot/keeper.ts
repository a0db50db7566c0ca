// The directory's copy on local disk, so that a restart while PostgreSQL is down still
// serves mail and logins. At start: the snapshot is read, verified and served (restore);
// the sync starts once the database answers and says whether the snapshot is its own, and
// then catches up from the snapshot's position or reloads in full. While running: a new
// snapshot is written in the background after changes, at most every `interval` (30 s, or
// twenty times the last write's duration for a directory so big that writing it takes
// longer; the first one 5 s after start), every snapshot_max_age / 4 while nothing changes (so a quiet directory's
// snapshot does not expire), and at shutdown.

import { errorMessage, type Logger } from '../log.js';
import type { Metrics } from '../metrics.js';
import type { Directory } from '../directory/directory.js';
import type { Sync, SyncOptions } from '../sync/sync.js';
import { setTimeout as sleep } from 'node:timers/promises';
import { createBackoff } from '../backoff.js';
import { readFileSync } from 'node:fs';
import type { DatabaseIdentity, SnapshotHeader, SnapshotSource } from './format.js';
import { gateSync, type Resume } from './gate.js';
import { queryIdentity, sameIdentity } from './identity.js';
import { readSnapshot } from './read.js';
import { BACKGROUND_SHARE, writeSnapshot } from './write.js';

export interface SnapshotKeeperOptions {
  path: string;
  maxAgeMs: number;
  source: SnapshotSource;
  directory: Directory;
  logger: Logger;
  metrics: Metrics;
  /** Shortest time between two writes while the directory changes. */
  intervalMs?: number;
}

export interface SnapshotKeeper {
  /** Serves the snapshot when it passes every check; false (and a log line saying why) otherwise. */
  restore(): boolean;
  /** Age in seconds of the snapshot being served while the database has not confirmed it. */
  servingAge(): number | undefined;
  /** The sync, wired to record positions; after a restore it starts once the database answers. */
  sync(url: string, options: SyncOptions, create: (o: SyncOptions) => Sync): Sync;
  /** Ends background writes and writes what changed since the last one. */
  close(): Promise<void>;
}

const software = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;

// Long because it is one closure over the keeper's state (the last position applied, the
// timer, the write in progress); each step inside — schedule, write, check, decide — is short.
export function createSnapshotKeeper(o: SnapshotKeeperOptions): SnapshotKeeper {
  const { directory, logger, metrics, path } = o;
  const minInterval = o.intervalMs ?? 30_000;
  let interval = minInterval;
  let position: unknown;
  let dataAt = 0;
  let generation = 0;
  let dirty = false;
  let restored: SnapshotHeader | undefined;
  let confirmed = false;
  let url: string | undefined;
  let identity: DatabaseIdentity | undefined;
  let identityGeneration = -1;
  // The first write waits a few seconds: right after a start, clients reconnecting and the
  // first load have the cores.
  let lastWriteEnd = Date.now() + 5000 - minInterval;
  let timer: NodeJS.Timeout | undefined;
  let writing: Promise<void> | undefined;
  let closing = false;
  let lastFailure: string | undefined;
  let gateError: string | undefined;
  let maxDelay = 10_000;

  directory.onChange((_kind, key) => {
    dirty = true;
    if (key === null) {
      // A full replacement: the old position no longer describes the directory.
      generation++;
      position = undefined;
    }
    schedule();
  });

  function schedule(): void {
    if (closing || writing || timer || !dirty || position === undefined) return;
    timer = setTimeout(
      () => {
        timer = undefined;
        writing = write(false).finally(() => {
          writing = undefined;
          schedule();
        });
      },
      Math.max(0, lastWriteEnd + interval - Date.now()),
    );
    timer.unref();
  }

  async function write(final: boolean): Promise<void> {
    // The position first: entries copied after it are as new as it or newer.
    const gen = generation;
    const pos = position;
    const at = dataAt;
    dirty = false;
    if (url !== undefined && identityGeneration !== gen) {
      try {
        identity = await queryIdentity(url, 2000);
        identityGeneration = gen;
      } catch {
        /* keep the last one: a mismatch only costs a full reload at the next start */
      }
    }
    const t0 = performance.now();
    const header: SnapshotHeader = {
      software,
      writtenAt: Date.now(),
      dataAt: at,
      source: o.source,
      identity: identity ?? null,
      position: pos,
      counts: directory.counts(),
    };
    try {
      const r = await writeSnapshot({
        path,
        data: directory.data(),
        header,
        cancelled: () => generation !== gen || (closing && !final),
        // In the background, pauses leave the cores to lookups and logins for part of the
        // time; at shutdown nothing waits for them.
        share: final ? 1 : BACKGROUND_SHARE,
      });
      if (r.status === 'cancelled') {
        dirty = true;
        metrics.snapshotWrites.inc({ result: 'cancelled' });
        return;
      }
      const seconds = (performance.now() - t0) / 1000;
      lastWriteEnd = Date.now();
      interval = Math.max(minInterval, 20 * seconds * 1000);
      lastFailure = undefined;
      metrics.snapshotWrites.inc({ result: 'written' });
      metrics.snapshotWriteSeconds.set(seconds);
      metrics.snapshotBytes.set(r.bytes);
      logger.debug('snapshot written', { file: path, bytes: r.bytes, seconds: seconds.toFixed(3) });
    } catch (err) {
      dirty = true;
      lastWriteEnd = Date.now();
      metrics.snapshotWrites.inc({ result: 'failed' });
      const msg = errorMessage(err);
      // Once per distinct cause: a missing directory must not flood the log every interval.
      if (msg !== lastFailure) logger.warn('cannot write the snapshot', { file: path, error: msg });
      lastFailure = msg;
    }
  }

  function applied(p: unknown): void {
    position = p;
    dataAt = Date.now();
    if (!confirmed) {
      confirmed = true;
      metrics.snapshotServing.set(0);
    }
    if (!dirty && Date.now() - lastWriteEnd > o.maxAgeMs / 4) dirty = true;
    schedule();
  }

  function check(h: SnapshotHeader): string | undefined {
    if (h.software !== software) return `written by mailmapd ${h.software}, this is ${software}`;
    if (h.source?.database !== o.source.database || h.source?.schema !== o.source.schema) {
      return `from another database (${h.source?.database} schema ${h.source?.schema}; configured: ${o.source.database} schema ${o.source.schema})`;
    }
    const age = Date.now() - h.dataAt;
    if (!(age <= o.maxAgeMs)) return `older than snapshot_max_age (${Math.round(age / 1000)} s)`;
    return undefined;
  }

  async function decide(signal: AbortSignal): Promise<Resume | 'stopped'> {
    const header = restored!;
    const backoff = createBackoff(maxDelay);
    let warned = false;
    for (;;) {
      if (signal.aborted) return 'stopped';
      try {
        const id = await queryIdentity(url!);
        gateError = undefined;
        identity = id;
        identityGeneration = generation;
        if (sameIdentity(header.identity, id)) return { position: header.position };
        logger.warn('the snapshot is not from this database; reloading in full', {
          file: path,
          snapshot: header.identity ? `${header.identity.systemIdentifier}/${header.identity.database}/${header.identity.databaseOid}` : 'unknown',
          database: `${id.systemIdentifier}/${id.database}/${id.databaseOid}`,
        });
        return undefined;
      } catch (err) {
        gateError = errorMessage(err);
        if (!warned) logger.warn('database unreachable; serving the snapshot until it answers', { error: gateError });
        warned = true;
        try {
          await sleep(backoff.next(), undefined, { signal });
        } catch {
          return 'stopped';
        }
      }
    }
  }

  return {
    restore() {
      const t0 = performance.now();
      const r = readSnapshot(path, check);
      if (r.status === 'missing') {
        logger.info('no snapshot to start from', { file: path });
        return false;
      }
      if (r.status === 'refused') {
        logger.warn('snapshot refused', { file: path, reason: r.reason });
        return false;
      }
      directory.replaceAll(r.data);
      restored = r.header;
      position = r.header.position;
      dataAt = r.header.dataAt;
      dirty = false;
      lastWriteEnd = Date.now();
      metrics.snapshotServing.set(1);
      metrics.snapshotBytes.set(r.bytes);
      metrics.directoryLoaded.set(1);
      const c = directory.counts();
      for (const [table, n] of Object.entries(c)) metrics.directoryEntries.set({ table }, n);
      logger.info('serving the snapshot', {
        file: path,
        age_seconds: Math.round((Date.now() - r.header.dataAt) / 1000),
        seconds: ((performance.now() - t0) / 1000).toFixed(3),
        mailboxes: c.mailbox,
        aliases: c.alias,
      });
      return true;
    },
    servingAge() {
      if (restored === undefined || confirmed) return undefined;
      return Math.round((Date.now() - restored.dataAt) / 1000);
    },
    sync(dbUrl, options, create) {
      url = dbUrl;
      maxDelay = options.reconnectMaxDelayMs;
      const make = (resume: Resume) => create({ ...options, resume, onApplied: applied });
      if (restored === undefined) return make(undefined);
      return gateSync(decide, make, () => gateError);
    },
    async close() {
      closing = true;
      if (timer) clearTimeout(timer);
      timer = undefined;
      await writing;
      if (dirty && position !== undefined) await write(true);
    },
  };
}
