// The Postfix socketmap server on `socketmap_listen`: one netstring request `<map> <key>`,
// one netstring reply (OK, NOTFOUND, TEMP, PERM, as Postfix's socketmap_table(5) reads
// them), answered from the in-memory directory. Every lookup is synchronous, so replies leave in
// request order and a read holding several pipelined requests is answered with one write.
//
// Answers: `OK <value>`, `NOTFOUND `, or `TEMP <reason>` whenever the answer is unknown —
// directory not loaded yet, unknown map name, a reply Postfix would refuse as too long,
// an internal error. Never NOTFOUND for those: a false NOTFOUND bounces real mail. Never
// `OK ` with empty data: Postfix counts it as a match in domain lists.
//
// This is the daemon's hottest path (several lookups per incoming message), so the
// per-request work avoids what does not need doing: the map name is matched on the raw
// bytes, the key is the only string decoded, constant replies are built once.

// perf_hooks' object, not the global: globalThis.performance is a getter run on every access.
import { performance } from 'node:perf_hooks';
import { MAINTENANCE_ANSWER, mapNames, type Directory, type MapName } from '../directory/directory.js';
import { errorMessage, type Logger } from '../log.js';
import type { Metrics, Result } from '../metrics.js';
import type { ConnectionHandler } from '../net/listener.js';
import { doorHandler } from '../net/connection.js';
import { createPayloadDecoder, encodeNetstring, type Payload } from './netstring.js';

export interface SocketmapDeps {
  directory: Directory;
  logger: Logger;
  metrics: Metrics;
  /** Longest request payload accepted; a longer length prefix closes the connection. */
  maxRequestBytes: number;
}

/** Postfix's DICT_SOCKMAP_DEF_MAX_REPLY: a longer reply is a lookup error on its side. */
export const MAX_REPLY_BYTES = 100_000;

const LISTENER = 'socketmap';

/** Known map names as bytes, for matching without decoding a string per request. */
const maps: ReadonlyArray<{ name: MapName; bytes: Buffer }> = mapNames.map((name) => ({
  name,
  bytes: Buffer.from(name, 'latin1'),
}));

/** Index of "not one of the maps" (malformed requests and unknown names), as in `maps`. */
const UNKNOWN = maps.length;

/**
 * Relay credentials are answered on UNIX sockets only: a loopback TCP port is open to every
 * local user, a socket file only to those its mode and group let in (the postfix user).
 */
const CREDENTIALS = maps.findIndex((m) => m.name === 'sender_relay_credentials');
const TEMP_CREDENTIALS_UNIX_ONLY = encodeNetstring('TEMP sender_relay_credentials is answered on a UNIX socket listener only');

/** Index into `maps` of the name in `buf[start, end)`, or UNKNOWN. */
function matchMap(buf: Buffer, start: number, end: number): number {
  const len = end - start;
  outer: for (let m = 0; m < maps.length; m++) {
    const bytes = maps[m]!.bytes;
    if (bytes.length !== len) continue;
    for (let i = 0; i < len; i++) if (buf[start + i] !== bytes[i]) continue outer;
    return m;
  }
  return UNKNOWN;
}

const NOTFOUND = encodeNetstring('NOTFOUND ');
const TEMP_NOT_LOADED = encodeNetstring('TEMP directory not loaded yet');
const TEMP_MAINTENANCE = encodeNetstring('TEMP mailbox in maintenance');
const TEMP_MALFORMED = encodeNetstring('TEMP malformed request: expected "<map> <key>"');
const TEMP_TOO_LONG = encodeNetstring('TEMP reply too long for Postfix');
const TEMP_INTERNAL = encodeNetstring('TEMP internal error');

/** A printable rendering of a client-chosen map name for a reply or a log line. */
function showName(buf: Buffer, start: number, end: number): string {
  return buf.toString('latin1', start, Math.min(end, start + 64)).replace(/[^\x21-\x7e]/g, '?');
}

type Labels = { protocol: 'socketmap'; map: string; result: Result };
const results: readonly Result[] = ['ok', 'notfound', 'temp'];
const OK = 0;
const NOT_FOUND = 1;
const TEMP = 2;

/** Label sets indexed [map][result], resolved once: the hot path builds no label object or key string. */
function labelTable(): Labels[][] {
  return [...maps.map((m) => m.name as string), 'unknown'].map((map) => results.map((result) => ({ protocol: 'socketmap', map, result })));
}

// Long because `answer` walks every case of the contract in one place (each a short block).
export function createSocketmapHandler(deps: SocketmapDeps): ConnectionHandler {
  const { directory, logger, metrics } = deps;
  const observers = labelTable().map((row) => row.map((l) => metrics.lookupDuration.observer(l)));
  // Unknown map names are a Postfix misconfiguration repeated on every lookup: log each once.
  const reportedNames = new Set<string>();

  // `metrics = no` saves the per-request histogram update too, not only the endpoint.
  const observe = (m: number, result: number, started: number) => {
    if (!metrics.enabled) return;
    observers[m]![result]!((performance.now() - started) / 1000);
  };

  /** The reply netstring for one request payload `buf[start, end)`. Never throws. */
  const answer = (buf: Buffer, start: number, end: number, unix: boolean): string => {
    const started = performance.now();
    let sp = start;
    while (sp < end && buf[sp] !== 0x20) sp++;
    if (sp >= end) {
      observe(UNKNOWN, TEMP, started);
      return TEMP_MALFORMED;
    }
    const m = matchMap(buf, start, sp);
    if (m === UNKNOWN) {
      observe(UNKNOWN, TEMP, started);
      const shown = showName(buf, start, sp);
      if (!reportedNames.has(shown) && reportedNames.size < 100) {
        reportedNames.add(shown);
        logger.warn('socketmap: unknown map name; answering TEMP (check the table names in main.cf)', { map: shown });
      }
      return encodeNetstring(`TEMP unknown map ${shown}`);
    }
    if (!directory.loaded) {
      observe(m, TEMP, started);
      return TEMP_NOT_LOADED;
    }
    if (m === CREDENTIALS && !unix) {
      observe(m, TEMP, started);
      return TEMP_CREDENTIALS_UNIX_ONLY;
    }
    const map = maps[m]!.name;
    // Keys are UTF-8 (SMTPUTF8) or ASCII; undecodable bytes become U+FFFD and simply match nothing.
    const key = buf.toString('utf8', sp + 1, end);
    let value: string | undefined;
    try {
      value = directory.lookup(map, key);
    } catch (err) {
      observe(m, TEMP, started);
      logger.error('socketmap: lookup failed; answering TEMP', { map, key: key.slice(0, 256), error: errorMessage(err) });
      return TEMP_INTERNAL;
    }
    if (value === undefined) {
      observe(m, NOT_FOUND, started);
      return NOTFOUND;
    }
    if (value === '') {
      // `OK ` would be a match for a domain list and a config error for a map: neither is right.
      observe(m, TEMP, started);
      logger.error('socketmap: empty value in the directory; answering TEMP', { map, key: key.slice(0, 256) });
      return TEMP_INTERNAL;
    }
    if (value === MAINTENANCE_ANSWER) {
      observe(m, TEMP, started);
      return TEMP_MAINTENANCE;
    }
    const bytes = Buffer.byteLength(value) + 3;
    if (bytes > MAX_REPLY_BYTES) {
      // Truncating would silently drop destinations; TEMP defers the mail and says why.
      observe(m, TEMP, started);
      logger.error('socketmap: reply longer than Postfix accepts; answering TEMP', { map, key: key.slice(0, 256), bytes, limit: MAX_REPLY_BYTES });
      return TEMP_TOO_LONG;
    }
    observe(m, OK, started);
    return `${bytes}:OK ${value},`;
  };

  return doorHandler<Payload>({
    name: LISTENER,
    logger,
    metrics,
    // Stateless between requests: every request is answered as it is read.
    open: (conn) => ({
      decoder: createPayloadDecoder(deps.maxRequestBytes),
      handle: (p) => conn.send(answer(p.buf, p.start, p.end, conn.unix)),
    }),
  });
}
