// Every Prometheus metric the daemon exports, created in one place so that names, labels
// and buckets stay consistent: the daemon's (createMetrics), the sync's (syncMetrics) and
// the write-back's (createWritebackMetrics). Labels are bounded sets (protocol, map, mechanism, result,
// listener, scheme, reason); never a user, an address or an IP.

import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { createLookupHistogram, type LookupHistogram } from './lookup-histogram.js';

export type Result = 'ok' | 'notfound' | 'temp' | 'fail';

// 10 µs to ~80 ms: socketmap answers take microseconds, password hashes tens of milliseconds.
const latencyBuckets = [0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 2.5];

export interface Metrics {
  registry: Registry;
  enabled: boolean;
  lookupDuration: LookupHistogram;
  connectionsOpen: Gauge<'listener'>;
  connectionsTotal: Counter<'listener'>;
  connectionsRefused: Counter<'listener'>;
  connectionsEvicted: Counter<'listener'>;
  authStale: Counter;
  badInput: Counter<'listener' | 'reason'>;
  directoryEntries: Gauge<'table'>;
  loadDuration: Gauge;
  changesApplied: Counter<'table'>;
  syncLag: Histogram;
  catchups: Counter;
  fullReloads: Counter<'reason'>;
  lastSync: Gauge;
  syncAge: Gauge;
  dbConnected: Gauge;
  directoryLoaded: Gauge;
  verifications: Counter<'scheme' | 'result'>;
  logins: Counter;
  cacheHits: Counter;
  cacheMisses: Counter;
  hashQueueDepth: Gauge;
  hashRejected: Counter;
  policyDecisions: Counter<'command' | 'decision' | 'reason'>;
  policyEntries: Gauge<'kind'>;
  /** The limiter's counts shared with other hosts (failures: buckets; sources: known sources). */
  policySharedEntries: Gauge<'kind'>;
  policySharedBytes: Gauge;
  /** Unix time the other hosts' counts were last read back and merged (0: never). */
  policySharedMerged: Gauge;
  policySharedMergeAge: Gauge;
  /** Increments not shared: a key past the bound. */
  policySharedDropped: Counter<'kind'>;
  snapshotWrites: Counter<'result'>;
  snapshotWriteSeconds: Gauge;
  snapshotBytes: Gauge;
  snapshotServing: Gauge;
}

// Long because it is the table of every metric the daemon exports, one definition each;
// there is no logic in it to split.
export function createMetrics(enabled = true): Metrics {
  const registry = new Registry();
  if (enabled) collectDefaultMetrics({ register: registry, prefix: 'mailmapd_' });
  const registers = [registry];
  const m: Metrics = {
    registry,
    enabled,
    lookupDuration: createLookupHistogram(
      'mailmapd_lookup_duration_seconds',
      'Time to answer one request, by protocol, map or mechanism, and result',
      latencyBuckets,
      registry,
    ),
    connectionsOpen: new Gauge({ name: 'mailmapd_connections_open', help: 'Open connections per listener', labelNames: ['listener'], registers }),
    connectionsTotal: new Counter({ name: 'mailmapd_connections_total', help: 'Accepted connections per listener', labelNames: ['listener'], registers }),
    connectionsEvicted: new Counter({
      name: 'mailmapd_connections_evicted_total',
      help: 'Idle connections closed to make room for a new one at max_connections',
      labelNames: ['listener'],
      registers,
    }),
    authStale: new Counter({
      name: 'mailmapd_auth_stale_total',
      help: 'Logins answered with a temporary failure because the directory was older than auth_max_staleness',
      registers,
    }),
    connectionsRefused: new Counter({
      name: 'mailmapd_connections_refused_total',
      help: 'Connections refused because the listener was at max_connections',
      labelNames: ['listener'],
      registers,
    }),
    badInput: new Counter({
      name: 'mailmapd_connections_bad_input_total',
      help: 'Connections closed for malformed or oversized input',
      labelNames: ['listener', 'reason'],
      registers,
    }),
    directoryEntries: new Gauge({ name: 'mailmapd_directory_entries', help: 'Entries in the in-memory directory', labelNames: ['table'], registers }),
    loadDuration: new Gauge({ name: 'mailmapd_directory_last_full_load_seconds', help: 'Duration of the last full load', registers }),
    changesApplied: new Counter({ name: 'mailmapd_sync_changes_applied_total', help: 'Change-log entries applied', labelNames: ['table'], registers }),
    syncLag: new Histogram({
      name: 'mailmapd_sync_lag_seconds',
      help: 'From the change being written in PostgreSQL to it being visible in the directory',
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10, 60],
      registers,
    }),
    catchups: new Counter({ name: 'mailmapd_sync_catchups_total', help: 'Catch-ups from the change log after (re)connecting', registers }),
    fullReloads: new Counter({ name: 'mailmapd_sync_full_reloads_total', help: 'Full reloads of the directory', labelNames: ['reason'], registers }),
    lastSync: new Gauge({
      name: 'mailmapd_sync_last_success_timestamp_seconds',
      help: 'Unix time of the last successful sync with PostgreSQL',
      registers,
      // Also exported as an age below: alerting on "no sync for 60 s" needs no time() arithmetic.
    }),
    syncAge: new Gauge({
      name: 'mailmapd_sync_seconds_since_last_success',
      help: 'Seconds since the last successful sync with PostgreSQL (+Inf before the first)',
      registers,
      async collect() {
        const last = (await m.lastSync.get()).values[0]?.value ?? 0;
        this.set(last > 0 ? Date.now() / 1000 - last : Number.POSITIVE_INFINITY);
      },
    }),
    dbConnected: new Gauge({ name: 'mailmapd_database_connected', help: '1 while the sync connection to PostgreSQL is up', registers }),
    directoryLoaded: new Gauge({ name: 'mailmapd_directory_loaded', help: '1 once the directory has been loaded', registers }),
    snapshotWrites: new Counter({
      name: 'mailmapd_snapshot_writes_total',
      help: 'Snapshot file writes by result (written, failed, cancelled)',
      labelNames: ['result'],
      registers,
    }),
    snapshotWriteSeconds: new Gauge({ name: 'mailmapd_snapshot_write_seconds', help: 'Duration of the last snapshot write', registers }),
    snapshotBytes: new Gauge({ name: 'mailmapd_snapshot_bytes', help: 'Size of the snapshot file last written or loaded', registers }),
    snapshotServing: new Gauge({
      name: 'mailmapd_snapshot_serving',
      help: '1 while answers come from a snapshot the database has not confirmed yet',
      registers,
    }),
    verifications: new Counter({
      name: 'mailmapd_password_verifications_total',
      help: 'Password verifications by scheme and result',
      labelNames: ['scheme', 'result'],
      registers,
    }),
    logins: new Counter({
      name: 'mailmapd_logins_total',
      help: 'Login decisions by service (imap, pop3, smtp, submission, sieve, lmtp, doveadm, other) and result',
      labelNames: ['service', 'result'],
      registers,
    }),
    cacheHits: new Counter({ name: 'mailmapd_auth_cache_hits_total', help: 'Logins answered from the verified-credential cache', registers }),
    cacheMisses: new Counter({ name: 'mailmapd_auth_cache_misses_total', help: 'Logins that needed a hash verification', registers }),
    hashQueueDepth: new Gauge({ name: 'mailmapd_hash_queue_depth', help: 'Hash jobs waiting for a worker', registers }),
    hashRejected: new Counter({ name: 'mailmapd_hash_rejected_total', help: 'Hash jobs refused because the queue was full', registers }),
    policyDecisions: new Counter({
      name: 'mailmapd_policy_decisions_total',
      help: 'Brute-force policy decisions',
      labelNames: ['command', 'decision', 'reason'],
      registers,
    }),
    policyEntries: new Gauge({ name: 'mailmapd_policy_tracked_entries', help: 'Entries held by the brute-force limiter', labelNames: ['kind'], registers }),
    policySharedEntries: new Gauge({
      name: 'mailmapd_policy_shared_entries',
      help: "The brute-force limiter's counts shared with every host: failure buckets (failures) and known sources (sources)",
      labelNames: ['kind'],
      registers,
    }),
    policySharedBytes: new Gauge({ name: 'mailmapd_policy_shared_bytes', help: "Bytes the brute-force limiter's shared counts hold", registers }),
    policySharedMerged: new Gauge({
      name: 'mailmapd_policy_shared_merge_timestamp_seconds',
      help: "Unix time other hosts' limiter counts were last read back and merged",
      registers,
    }),
    policySharedMergeAge: new Gauge({
      name: 'mailmapd_policy_shared_merge_age_seconds',
      help: "Seconds since other hosts' limiter counts were last read back and merged (+Inf before the first)",
      registers,
      async collect() {
        const last = (await m.policySharedMerged.get()).values[0]?.value ?? 0;
        this.set(last > 0 ? Date.now() / 1000 - last : Number.POSITIVE_INFINITY);
      },
    }),
    policySharedDropped: new Counter({
      name: 'mailmapd_policy_shared_dropped_total',
      help: 'Limiter increments kept local only because the shared table was at its bound (policy_max_entries)',
      labelNames: ['kind'],
      registers,
    }),
  };
  return m;
}

// The sync's own gauges: which server is read, how far behind it is, and how big the
// change log has grown. Made on the first call per Metrics (a test may start several syncs
// on one registry), so that a daemon without a sync exports none of them.
export interface SyncMetrics {
  server: Gauge<'host' | 'role'>;
  standby: Gauge;
  lagSeconds: Gauge;
  lagBytes: Gauge;
  changeLogRows: Gauge;
  changeLogOldest: Gauge;
  pruneErrors: Gauge;
}

const madeSync = new WeakMap<Metrics, SyncMetrics>();

export function syncMetrics(metrics: Metrics): SyncMetrics {
  const had = madeSync.get(metrics);
  if (had) return had;
  const registers = [metrics.registry];
  const m: SyncMetrics = {
    server: new Gauge({
      name: 'mailmapd_database_server',
      help: '1 for the server the directory is read from (host:port, primary or standby)',
      labelNames: ['host', 'role'],
      registers,
    }),
    standby: new Gauge({ name: 'mailmapd_database_standby', help: '1 while the directory is read from a hot standby', registers }),
    lagSeconds: new Gauge({
      name: 'mailmapd_replica_lag_seconds',
      help: 'How far the standby read is behind its primary in time (0 on a primary or when all received WAL is replayed)',
      registers,
    }),
    lagBytes: new Gauge({
      name: 'mailmapd_replica_lag_bytes',
      help: 'WAL bytes the standby read has not replayed yet (primary position when database_primary_url is set, else received)',
      registers,
    }),
    changeLogRows: new Gauge({ name: 'mailmapd_change_log_rows', help: 'Rows in mailmapd.changes', registers }),
    changeLogOldest: new Gauge({ name: 'mailmapd_change_log_oldest_seconds', help: 'Age of the oldest row in mailmapd.changes', registers }),
    pruneErrors: new Gauge({ name: 'mailmapd_change_log_prune_failing', help: '1 while pruning the change log fails', registers }),
  };
  madeSync.set(metrics, m);
  return m;
}

// The write-back's metrics. Labels are bounded sets: the kind of value and why it was
// dropped; never a mailbox.
export interface WritebackMetrics {
  pending: Gauge;
  written: Counter<'kind'>;
  dropped: Counter<'kind' | 'reason'>;
  connected: Gauge;
  batchSeconds: Histogram;
  dictCommits: Counter<'result'>;
}

export function createWritebackMetrics(registry: Registry): WritebackMetrics {
  const registers = [registry];
  return {
    pending: new Gauge({ name: 'mailmapd_writeback_pending', help: 'Last logins and quota usages waiting to be written to the primary', registers }),
    written: new Counter({ name: 'mailmapd_writeback_written_total', help: 'Rows written to the primary, by kind', labelNames: ['kind'], registers }),
    dropped: new Counter({
      name: 'mailmapd_writeback_dropped_total',
      help: 'Values not written: buffer_full (the primary was away too long), no_primary, write_error',
      labelNames: ['kind', 'reason'],
      registers,
    }),
    connected: new Gauge({ name: 'mailmapd_writeback_connected', help: '1 while the write-back connection to the primary is up', registers }),
    batchSeconds: new Histogram({
      name: 'mailmapd_writeback_batch_seconds',
      help: 'Time to write one batch',
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5],
      registers,
    }),
    dictCommits: new Counter({ name: 'mailmapd_dict_commits_total', help: 'Dict proxy transactions committed, by result', labelNames: ['result'], registers }),
  };
}

/** Seconds since `start` (from process.hrtime.bigint()). */
export function secondsSince(start: bigint): number {
  return Number(process.hrtime.bigint() - start) / 1e9;
}
