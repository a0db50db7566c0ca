// Connects to the right server of a libpq-style URL: its hosts tried in order, each kept
// only if it matches target_session_attrs, as libpq does. node-postgres connects to one
// host and knows nothing of standbys, so the walk is done here.

import pg from 'pg';
import { errorMessage } from '../log.js';
import { parseConnInfo, type TargetSessionAttrs } from './conninfo.js';

export interface TargetOptions {
  applicationName?: string;
  /** Overrides the URL's target_session_attrs (a writer passes 'read-write'). */
  targetSessionAttrs?: TargetSessionAttrs;
  /** Per host, when the URL sets no connect_timeout. */
  connectTimeoutMs?: number;
  /** Client-side bound on every query: a hung server or path is noticed, not waited on. */
  queryTimeoutMs?: number;
  /** Server-side statement_timeout for the session, 0 = none. */
  statementTimeoutMs?: number;
}

export interface Target {
  client: pg.Client;
  host: string;
  port: number;
  inRecovery: boolean;
}

interface Probe {
  inRecovery: boolean;
  readOnly: boolean;
}

function fits(attrs: TargetSessionAttrs, p: Probe, pass: 1 | 2): boolean {
  switch (attrs) {
    case 'any':
      return true;
    case 'read-write':
      return !p.readOnly;
    case 'read-only':
      return p.readOnly;
    case 'primary':
      return !p.inRecovery;
    case 'standby':
      return p.inRecovery;
    case 'prefer-standby':
      return pass === 2 || p.inRecovery;
  }
}

/**
 * Connects to the first host of `url` that fits its target_session_attrs (or
 * opts.targetSessionAttrs). Throws one error naming every host's failure when none fits.
 * The returned client has an 'error' handler; the caller still owns end().
 */
export async function connectTarget(url: string, opts: TargetOptions = {}): Promise<Target> {
  const info = parseConnInfo(url);
  const attrs = opts.targetSessionAttrs ?? info.targetSessionAttrs;
  const failures: string[] = [];
  const passes: Array<1 | 2> = attrs === 'prefer-standby' ? [1, 2] : [1];
  for (const pass of passes) {
    for (const h of info.hosts) {
      const client = new pg.Client({
        connectionString: h.url,
        application_name: opts.applicationName ?? 'mailmapd',
        keepAlive: true,
        keepAliveInitialDelayMillis: 5000,
        connectionTimeoutMillis: info.connectTimeoutMs ?? opts.connectTimeoutMs ?? 10_000,
        ...(opts.queryTimeoutMs ? { query_timeout: opts.queryTimeoutMs } : {}),
        ...(opts.statementTimeoutMs ? { statement_timeout: opts.statementTimeoutMs } : {}),
      });
      client.on('error', () => {}); // surfaced through the pending query
      const where = h.host === '' ? 'default host' : `${h.host}:${h.port}`;
      try {
        await client.connect();
        const r = await client.query<{ rec: boolean; ro: string }>(`SELECT pg_is_in_recovery() AS rec, current_setting('transaction_read_only') AS ro`);
        const probe = { inRecovery: r.rows[0]!.rec, readOnly: r.rows[0]!.ro === 'on' };
        if (fits(attrs, probe, pass)) return { client, host: h.host, port: h.port, inRecovery: probe.inRecovery };
        if (pass === 1) failures.push(`${where}: ${probe.inRecovery ? 'a standby' : 'a primary'}${probe.readOnly ? ', read-only' : ''}, not ${attrs}`);
      } catch (err) {
        if (pass === 1) failures.push(`${where}: ${errorMessage(err)}`);
      }
      await client.end().catch(() => {});
    }
  }
  throw new Error(`no server fits target_session_attrs=${attrs} (${failures.join('; ')})`);
}

/**
 * The single-host URL of the server connectTarget picks, for code that hands a URL to
 * node-postgres itself. A URL with one host and no target_session_attrs is returned as is.
 */
export async function resolveUrl(url: string, opts: TargetOptions = {}): Promise<string> {
  const info = parseConnInfo(url);
  if (info.hosts.length === 1 && info.targetSessionAttrs === 'any' && opts.targetSessionAttrs === undefined) return url;
  const t = await connectTarget(url, opts);
  await t.client.end().catch(() => {});
  return info.hosts.find((h) => h.host === t.host && h.port === t.port)!.url;
}
