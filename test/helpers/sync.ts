// A sync as the tests run it: the native profile, a fresh directory, no log, no metrics,
// a 100 ms poll, a day's change-log retention and quick reconnects, unless a test says
// otherwise. Started; the caller stops it.

import { createDirectory, type Directory } from '../../src/directory/directory.js';
import { silentLogger } from '../../src/log.js';
import { createMetrics } from '../../src/metrics.js';
import { nativeProfile } from '../../src/sync/profile.js';
import { createSync, type Sync, type SyncOptions } from '../../src/sync/sync.js';

export function startTestSync(options: Partial<SyncOptions> & { databaseUrl: string }): { sync: Sync; directory: Directory } {
  const directory = options.directory ?? createDirectory({ recipientDelimiter: '+' });
  const sync = createSync({
    profile: nativeProfile,
    logger: silentLogger,
    metrics: createMetrics(false),
    pollIntervalMs: 100,
    retentionMs: 86_400_000,
    reconnectMaxDelayMs: 200,
    ...options,
    directory,
  });
  sync.start();
  return { sync, directory };
}
