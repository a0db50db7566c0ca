// GET /readyz: whether this daemon answers from a loaded, current directory. The answer is
// public on the HTTP listener, so it carries fixed reasons only; a database error can name
// hosts, roles and schemas, and goes to the log instead.

import type { Directory } from '../directory/directory.js';
import { json, type Route } from '../http/server.js';
import type { Logger } from '../log.js';
import type { Sync } from '../sync/sync.js';

export function createReadinessRoute(deps: { sync: () => Sync | undefined; directory: Directory; logger: Logger }): Route {
  let lastLogged: string | undefined;
  // A load balancer polls this every few seconds: log each distinct error once, not per poll.
  const logDetail = (reason: string, error: string | undefined) => {
    if (error === undefined || error === lastLogged) return;
    lastLogged = error;
    deps.logger.warn('not ready', { reason, error });
  };
  const notReady = (reason: string, error?: string) => {
    logDetail(reason, error);
    return json(503, { ready: false, reason });
  };
  return () => {
    const sync = deps.sync();
    if (!sync) return notReady('opening the database');
    const s = sync.status();
    if (!s.loaded) return notReady('directory not loaded yet', s.lastError);
    if (!s.connected) return notReady('database unreachable; serving the last good copy', s.lastError);
    if (!sync.inSync()) return notReady('sync is lagging');
    lastLogged = undefined;
    return json(200, { ready: true, entries: deps.directory.counts() });
  };
}
