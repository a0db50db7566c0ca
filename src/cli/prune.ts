// `mailmapd prune [--older-than DURATION]`: prunes the change log by the daemon's own rule,
// for a host whose daemons read a standby or use a role that may not delete (run it from
// cron with a role that may). Only rows older than the retention whose transaction was
// below the oldest one running a few poll intervals earlier are deleted, so no daemon
// that keeps up is made to reload.

import { duration, type Config } from '../config.js';
import { changeLogStats, pruneChanges, pruneHorizon } from '../sync/changelog.js';
import { withDatabaseClient } from './database.js';
import { UsageError } from '../errors.js';

function parseDuration(text: string): number {
  try {
    return duration(text);
  } catch (err) {
    throw new UsageError(`--older-than: ${(err as Error).message}`);
  }
}

export async function pruneCommand(config: Config, args: string[], out: (line: string) => void): Promise<number> {
  let retentionMs = config.changes_retention;
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === '--older-than' && args[i + 1] !== undefined) retentionMs = parseDuration(args[++i]!);
    else if (a.startsWith('--older-than=')) retentionMs = parseDuration(a.slice('--older-than='.length));
    else throw new UsageError('usage: mailmapd prune [--older-than DURATION]');
  }
  return withDatabaseClient(config, 'mailmapd-prune', async (c) => {
    // Every running daemon catches up within a few poll intervals: once they have read
    // past the horizon taken now, what lies below it may go.
    const horizon = await pruneHorizon(c);
    await new Promise((r) => setTimeout(r, Math.max(2000, 3 * config.sync_poll_interval)));
    const n = await pruneChanges(c, retentionMs / 1000, horizon);
    const s = await changeLogStats(c);
    out(`pruned ${n} change-log rows; ${s.rows} left, the oldest ${Math.round(s.oldestSeconds)} s old`);
    return 0;
  });
}
