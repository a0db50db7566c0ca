// The policy service's parts put together for the daemon: the service answers from memory
// at once (DUNNO until the directory is loaded); once the database is open the follower
// keeps quota usage and send counts fresh from it and the write-back carries this host's
// counts to the primary. serve.ts calls this and hands `service` to the policy door.

import type { Config } from '../config.js';
import type { Directory } from '../directory/directory.js';
import type { Logger } from '../log.js';
import type { Profile } from '../sync/profile.js';
import type { WriteSource, Writer } from '../writeback/writer.js';
import type { Registry } from 'prom-client';
import { rungFor } from '../shared-counts/doorbell.js';
import { createCountWriter } from './count-writer.js';
import { createFollower, type FollowedRead, type Follower, type QuotaUsageRead } from './follower.js';
import { createPolicyMetrics } from './metrics.js';
import { createSendCounts } from './send-counts.js';
import { createPolicyService, type PolicyServiceHandle } from './service.js';
import { nativeQuotaUsageRead } from './statements.js';

/** Counts shared by every host: read back on the follower's connection, written by the write-back. */
export interface Share {
  read: FollowedRead;
  source: WriteSource;
}

export interface Policy {
  service: PolicyServiceHandle;
  /** Usage Dovecot reported on this host's dict socket: answered at once, before the database has it. */
  reported(address: string, bytes: number | undefined): void;
  /**
   * Starts following the database and writing counts through `writer`; `shares`: other
   * counts shared the same way (the limiter's), read and written along with these.
   */
  start(databaseUrl: string, writer: Writer | undefined, shares?: Share[]): void;
  /** The counts' doorbell rang (its payload): read them back now, unless it was our own ring. */
  kick(payload: string): void;
  stop(): Promise<void>;
}

/** Where a profile's quota usage is read from: its own query, else the native table. */
export function quotaUsageReadFor(profile: Profile, pollIntervalMs: number): QuotaUsageRead {
  const sql = profile.reads?.quotaUsage ?? nativeQuotaUsageRead;
  // A panel's table without a change time is read whole, about every 10 seconds.
  return { sql, fullEvery: Math.max(1, Math.round(10_000 / Math.max(1, pollIntervalMs))) };
}

export function createPolicy(
  config: () => Config,
  directory: Directory,
  profile: Profile,
  logger: Logger,
  registry: Registry,
  now: () => number = Date.now,
): Policy {
  const counts = createSendCounts();
  const usage = new Map<string, number>();
  const metrics = createPolicyMetrics(registry);
  const service = createPolicyService({
    directory,
    counts,
    usage: (m) => usage.get(m),
    limits: () => ({ hour: config().send_limit_hour, day: config().send_limit_day, maxRecipients: config().send_max_recipients }),
    quotaGrace: () => config().quota_grace,
    logger,
    metrics,
    now,
  });
  let follower: Follower | undefined;
  const pruner = setInterval(() => service.prune(), 60_000);
  pruner.unref();
  return {
    service,
    reported(address, bytes) {
      if (bytes !== undefined) usage.set(address, bytes);
    },
    start(databaseUrl, writer, shares = []) {
      const c = config();
      const shared = c.shared_counts;
      follower = createFollower({
        url: databaseUrl,
        intervalMs: c.sync_poll_interval,
        reconnectMaxDelayMs: c.reconnect_max_delay,
        usage,
        counts: shared ? counts : undefined,
        quotaUsage: quotaUsageReadFor(profile, c.sync_poll_interval),
        logger,
        onRead: () => metrics.usageFollowed.set(usage.size),
        now,
        reads: shares.map((s) => s.read),
      });
      if (shared) writer?.addSource(createCountWriter(counts, now));
      for (const s of shares) writer?.addSource(s.source);
    },
    kick(payload) {
      const lsn = rungFor(payload);
      if (lsn !== undefined) follower?.kick(lsn);
    },
    async stop() {
      clearInterval(pruner);
      await follower?.stop();
    },
  };
}
