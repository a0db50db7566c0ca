// On a standby with database_primary_url: the daemon's connection to the primary, for its
// NOTIFY (the doorbell), the WAL position a rung standby must replay up to, and pruning.
// Made in the background, dropped at its first error and tried again after a pause; the
// standby is read by polling meanwhile, so nothing waits for this connection.

import type pg from 'pg';
import { destroyClient } from '../db/client.js';
import { connectTarget } from '../db/target.js';
import { errorMessage, type Logger } from '../log.js';
import { COUNTS_CHANNEL } from '../shared-counts/doorbell.js';

export interface PrimaryLink {
  /** The connection while it is up. */
  client(): pg.Client | undefined;
  /** Starts connecting unless connected, connecting, pausing after a failure, or not wanted. */
  connect(): void;
  /** Drops the connection after an error on it, logged; nothing when `on` is given and is not it. */
  drop(err: unknown, on?: pg.Client): void;
  /** Ends the connection at once, without a log line (the read's session ended, or stop). */
  close(): void;
}

export interface PrimaryLinkOptions {
  url: string | undefined;
  queryTimeoutMs: number;
  /** Pause after a failed attempt. */
  retryMs: number;
  logger: Logger;
  /** A NOTIFY arrived, or the connection came up (anything committed while it was down). */
  ring(): void;
  /** The shared counts' doorbell rang, with its payload. */
  counts?(payload: string): void;
  /** Up or down, for /readyz and the metrics. */
  onState(up: boolean): void;
  /** Whether a connection is wanted now: reading a standby, not stopped. */
  wanted(): boolean;
}

export function createPrimaryLink(o: PrimaryLinkOptions): PrimaryLink {
  let client: pg.Client | undefined;
  let connecting = false;
  let nextTry = 0;

  const drop = (err: unknown, on?: pg.Client) => {
    if (!client || (on !== undefined && on !== client)) return;
    o.logger.warn('lost the connection to the primary; polling the standby', { error: errorMessage(err) });
    const c = client;
    client = undefined;
    o.onState(false);
    nextTry = Date.now() + 1000;
    destroyClient(c);
  };

  const connect = () => {
    const url = o.url;
    if (!url || client || connecting || Date.now() < nextTry || !o.wanted()) return;
    connecting = true;
    connectTarget(url, { applicationName: 'mailmapd', targetSessionAttrs: 'read-write', queryTimeoutMs: o.queryTimeoutMs })
      .then(async (t) => {
        try {
          t.client.on('notification', (msg) => (msg.channel === COUNTS_CHANNEL ? o.counts?.(msg.payload ?? '') : o.ring()));
          t.client.on('error', (err) => drop(err, t.client));
          t.client.on('end', () => drop(new Error('connection ended'), t.client));
          await t.client.query('LISTEN mailmapd');
          if (o.counts) await t.client.query(`LISTEN ${COUNTS_CHANNEL}`);
        } catch (err) {
          destroyClient(t.client);
          throw err;
        }
        if (!o.wanted()) {
          destroyClient(t.client);
          return;
        }
        client = t.client;
        o.onState(true);
        o.logger.info('listening on the primary', { host: `${t.host}:${t.port}` });
        o.ring();
      })
      .catch((err) => {
        nextTry = Date.now() + o.retryMs;
        o.logger.warn('cannot reach the primary; polling the standby', { error: errorMessage(err) });
      })
      .finally(() => {
        connecting = false;
      });
  };

  return {
    client: () => client,
    connect,
    drop,
    close() {
      if (!client) return;
      const c = client;
      client = undefined;
      o.onState(false);
      destroyClient(c);
    },
  };
}
