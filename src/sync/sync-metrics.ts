// The sync's own gauges: which server is read, how far behind it is, and how big the
// change log has grown. Registered beside the daemon's other metrics, once per registry.

import { Gauge } from 'prom-client';
import type { Metrics } from '../metrics.js';

export interface SyncMetrics {
  server: Gauge<'host' | 'role'>;
  standby: Gauge;
  lagSeconds: Gauge;
  lagBytes: Gauge;
  changeLogRows: Gauge;
  changeLogOldest: Gauge;
  pruneErrors: Gauge;
}

const made = new WeakMap<Metrics, SyncMetrics>();

export function syncMetrics(metrics: Metrics): SyncMetrics {
  const had = made.get(metrics);
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
  made.set(metrics, m);
  return m;
}
