// What the sync tells the rest of the daemon about itself (/readyz, the auth staleness
// bound, the snapshot's gate before a sync exists), and the rule for "in sync".

export interface SyncStatus {
  connected: boolean;
  loaded: boolean;
  /** Date.now() of the last successful catch-up, load or probe, 0 if never. */
  lastSuccess: number;
  lastError: string | undefined;
  fullLoads: number;
  catchups: number;
  /** `host:port` the directory is read from, '' before the first connection. */
  host: string;
  standby: boolean;
  /** Replica lag of the server read (0 on a primary). */
  lagSeconds: number;
  lagBytes: number;
  /** Whether a connection to the primary (LISTEN, pruning) is up. */
  primaryConnected: boolean;
  /** The cluster and timeline the directory was last read on: a primary of the same
   *  cluster on an older timeline is one a failover left behind (the write-back's test). */
  history?: { system: string; timeline: number };
}

/** Before the first connection: not connected, nothing loaded. */
export function initialStatus(): SyncStatus {
  return {
    connected: false,
    loaded: false,
    lastSuccess: 0,
    lastError: undefined,
    fullLoads: 0,
    catchups: 0,
    host: '',
    standby: false,
    lagSeconds: 0,
    lagBytes: 0,
    primaryConnected: false,
  };
}

/**
 * Loaded, connected, a success within a few poll intervals (at least 5 s: a poll tick is
 * one), and not lagging behind the primary past the bound.
 */
export function isInSync(s: SyncStatus, now: number, pollIntervalMs: number, maxLagMs: number): boolean {
  return s.loaded && s.connected && now - s.lastSuccess < Math.max(3 * pollIntervalMs, 5000) && s.lagSeconds * 1000 <= maxLagMs;
}
