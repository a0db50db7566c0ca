// The write-back's metrics, registered on the daemon's registry. Labels are bounded sets:
// the kind of value and why it was dropped; never a mailbox.

import { Counter, Gauge, Histogram, type Registry } from 'prom-client';

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
