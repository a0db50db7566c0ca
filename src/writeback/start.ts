// Which server the write-back writes to, decided once at start and said in the log:
// database_primary_url when set; else the directory's own database, checked on connect
// not to be a standby (the embedded default always is a primary).

import type { Config } from '../config.js';
import { primaryUrl, writeUrl, type DatabaseHandle } from '../db/connect.js';
import { redactUrl } from '../db/conninfo.js';
import type { Logger } from '../log.js';
import type { Profile } from '../sync/profile.js';
import type { WritebackMetrics } from '../metrics.js';
import { statementsFor } from './statements.js';
import { createWriter, type History, type Writer } from './writer.js';

/** `history`: the cluster and timeline the sync last read on, so that only the current primary is written to. */
export function startWriteback(
  config: Config,
  db: DatabaseHandle,
  profile: Profile,
  logger: Logger,
  metrics: WritebackMetrics,
  history?: () => History | undefined,
): Writer {
  const explicit = primaryUrl(config) !== undefined;
  const url = writeUrl(config, db.url);
  logger.info('writing last logins and quota usage', {
    to: redactUrl(url),
    checked_not_standby: !explicit && !db.embedded,
    last_logins: config.last_logins,
    dict: config.dict_listen.map((a) => a.text).join(',') || undefined,
  });
  return createWriter({
    url,
    checkRecovery: !explicit && !db.embedded,
    statements: statementsFor(profile),
    logger,
    metrics,
    lastLoginIntervalMs: config.last_login_interval,
    maxPending: config.writeback_max_pending,
    // Shared counts reach the other hosts about this much later (plus replica lag): a
    // quarter second keeps that well under a second; a flush with nothing to write is a
    // few map sizes, no round trip.
    flushIntervalMs: 250,
    reconnectMaxDelayMs: config.reconnect_max_delay,
    ...(history ? { history } : {}),
  });
}
