// GET /readyz: whether this daemon answers from a loaded, current directory. The answer is
// public on the HTTP listener, so it carries fixed reasons only; a database error can name
// hosts, roles and schemas, and goes to the log instead.

import type { Directory } from '../directory/directory.js';
import { json, type Route } from '../http/server.js';
import type { Logger } from '../log.js';
import type { Sync } from '../sync/sync.js';

export function createReadinessRoute(deps: {
  sync: () => Sync | undefined;
  directory: Directory;
  logger: Logger;
  /** Age in seconds of a snapshot served while the database has not confirmed it. */
  snapshotAge?: () => number | undefined;
}): Route {
  let lastLogged: string | undefined;
  // A load balancer polls this every few seconds: log each distinct error once, not per poll.
  const logDetail = (reason: string, error: string | undefined) => {
    if (error === undefined || error === lastLogged) return;
    lastLogged = error;
    deps.logger.warn('not ready', { reason, error });
  };
  const notReady = (reason: string, error?: string, extra: Record<string, unknown> = {}) => {
    logDetail(reason, error);
    return json(503, { ready: false, reason, ...extra });
  };
  return () => {
    const sync = deps.sync();
    const snapshotAge = deps.snapshotAge?.();
    if (snapshotAge !== undefined) return notReady('serving a snapshot', sync?.status().lastError, { snapshot_age_seconds: snapshotAge });
    if (!sync) return notReady('opening the database');
    const s = sync.status();
    if (!s.loaded) return notReady('directory not loaded yet', s.lastError);
    if (!s.connected) return notReady('database unreachable; serving the last good copy', s.lastError);
    // Which server is read, and how far behind: no error text, nothing secret.
    const server = { host: s.host, standby: s.standby, lag_seconds: s.lagSeconds, lag_bytes: s.lagBytes, last_success: new Date(s.lastSuccess).toISOString() };
    if (!sync.inSync()) return notReady('sync is lagging', undefined, server);
    lastLogged = undefined;
    return json(200, { ready: true, entries: deps.directory.counts(), ...server });
  };
}
