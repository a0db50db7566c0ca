// The two login doors (auth-client socket, checkpassword socket) served in-process over the
// real authenticator, a real hash pool and a real in-memory directory, on UNIX sockets in a
// temporary directory that Dovecot's unprivileged auth process can reach. Plus a small
// line client that speaks the auth-client protocol byte for byte.

import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createAuthenticator, type AuthenticatorHandle } from '../../src/auth/authenticator.js';
import { createAuthClientHandler } from '../../src/authclient/server.js';
import { createCheckpasswordHandler } from '../../src/checkpassword/server.js';
import { createDirectory, emptyData, type Directory, type DirectoryData } from '../../src/directory/directory.js';
import { parseListenAddress } from '../../src/net/listen-address.js';
import { createLogger } from '../../src/log.js';
import { createMetrics, type Metrics } from '../../src/metrics.js';
import type { Clock } from '../../src/net/clock.js';
import { listen, type Listener } from '../../src/net/listener.js';
import { createHashPool, type HashPool } from '../../src/password/pool.js';
import { onLines } from './lines.js';

export const checkpasswordBinary = fileURLToPath(new URL('../../bin/mailmapd-checkpassword', import.meta.url));
export const userdb = { mailHome: '/var/vmail/%d/%n', mailUid: 5000, mailGid: 5001 };

/** The fixture every login test uses: good, inactive mailbox, mailbox in an inactive domain, alias domain. */
export function standardData(): DirectoryData {
  const data = emptyData();
  data.domains.set('example.org', true).set('off.org', false);
  data.aliasDomains.set('alias.org', { target: 'example.org', active: true });
  data.mailboxes
    .set('user@example.org', { password: '{PLAIN}secret', quotaBytes: 1048576, active: true })
    .set('crypt@example.org', {
      password: '{SHA512-CRYPT}$6$lXRp1ig.4KPF2O5i$8hULb3sBLbI1Eo5rjuOrw262V.pizuOv3igQTRCz/cfOctXAnCnIVo7857/Esw/QbDljhogP5FOeQDddoyfos0',
      quotaBytes: 0,
      active: true,
    })
    .set('inactive@example.org', { password: '{PLAIN}secret', quotaBytes: 0, active: false })
    .set('x@off.org', { password: '{PLAIN}secret', quotaBytes: 0, active: true });
  return data;
}

export interface Doors {
  dir: string;
  authSocket: string;
  checkpasswordSocket: string;
  directory: Directory;
  authenticator: AuthenticatorHandle;
  metrics: Metrics;
  logs: string[];
  close(): Promise<void>;
}

let sharedPool: HashPool | undefined;
function pool(): HashPool {
  sharedPool ??= createHashPool({
    workers: 2,
    queueLimit: 1000,
    defaultScheme: 'CRYPT',
    metrics: createMetrics(false),
    logger: createLogger('error', () => {}),
  });
  return sharedPool;
}
export async function closePool(): Promise<void> {
  await sharedPool?.close();
  sharedPool = undefined;
}

export async function startDoors(
  opts: {
    failureDelayMs?: number;
    data?: DirectoryData;
    loaded?: boolean;
    maxRequestBytes?: number;
    maxConnections?: number;
    /** The auth-client door's timers (the failure delay): a fake one moves only when told. */
    clock?: Clock;
  } = {},
): Promise<Doors> {
  const dir = mkdtempSync(join(tmpdir(), 'mailmapd-doors-'));
  chmodSync(dir, 0o755); // Dovecot's auth process runs as user dovecot
  const logs: string[] = [];
  const logger = createLogger('debug', (l) => logs.push(l));
  const metrics = createMetrics(false);
  const directory = createDirectory({ recipientDelimiter: '+' });
  if (opts.loaded !== false) directory.replaceAll(opts.data ?? standardData());
  const authenticator = createAuthenticator({ directory, pool: pool(), logger, metrics, userdb, cacheSize: 1000 });
  const limits = { maxConnections: opts.maxConnections ?? 5000, idleTimeoutMs: 60_000 };
  const unix = { mode: 0o666, group: '' };
  const maxRequestBytes = opts.maxRequestBytes ?? 4096;
  const authSocket = join(dir, 'auth');
  const checkpasswordSocket = join(dir, 'checkpassword');
  const listeners: Listener[] = [
    await listen(
      parseListenAddress(`unix:${authSocket}`),
      'auth',
      createAuthClientHandler({ authenticator, logger, metrics, failureDelayMs: opts.failureDelayMs ?? 0, maxRequestBytes, clock: opts.clock }),
      limits,
      unix,
      logger,
    ),
    await listen(
      parseListenAddress(`unix:${checkpasswordSocket}`),
      'checkpassword',
      createCheckpasswordHandler({ authenticator, logger, metrics, maxRequestBytes }),
      limits,
      unix,
      logger,
    ),
  ];
  return {
    dir,
    authSocket,
    checkpasswordSocket,
    directory,
    authenticator,
    metrics,
    logs,
    async close() {
      if (listeners.length === 0) return; // already closed
      for (const l of listeners.splice(0)) await l.close(100);
      authenticator.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A raw auth-client connection: send lines, wait for lines. */
export interface LineClient {
  socket: Socket;
  /** Every line received so far (without LF). */
  lines: string[];
  send(text: string): void;
  /** Resolves with the first received line (from `from` on) matching `pred`. */
  waitFor(pred: (line: string) => boolean, ms?: number): Promise<string>;
  /** Resolves when the server has closed the connection. */
  closed: Promise<void>;
  close(): void;
}

export async function lineClient(path: string): Promise<LineClient> {
  const socket = connect(path);
  const lines: string[] = [];
  const waiters: { pred: (l: string) => boolean; resolve: (l: string) => void }[] = [];
  socket.setEncoding('utf8');
  onLines(socket, (line) => {
    lines.push(line);
    for (const w of [...waiters]) {
      if (w.pred(line)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(line);
      }
    }
  });
  socket.on('error', () => {});
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  return {
    socket,
    lines,
    closed,
    send: (text) => void socket.write(text),
    waitFor(pred, ms = 5000) {
      const seen = lines.find(pred);
      if (seen !== undefined) return Promise.resolve(seen);
      return new Promise((resolve, reject) => {
        const t = setTimeout(() => reject(new Error(`no matching line within ${ms} ms; got ${JSON.stringify(lines)}`)), ms);
        waiters.push({
          pred,
          resolve: (l) => {
            clearTimeout(t);
            resolve(l);
          },
        });
      });
    },
    close: () => socket.destroy(),
  };
}

/** base64 of SASL PLAIN's authzid NUL authcid NUL password. */
export function plain(authcid: string, password: string, authzid = ''): string {
  return Buffer.from(`${authzid}\0${authcid}\0${password}`).toString('base64');
}

/** Logins standardData() refuses, one per reason: wrong password, unknown, inactive mailbox, inactive domain. */
export const failingLogins: readonly (readonly [user: string, password: string])[] = [
  ['user@example.org', 'wrong'],
  ['nobody@example.org', 'secret'],
  ['inactive@example.org', 'secret'],
  ['x@off.org', 'secret'],
];

/**
 * One SASL PLAIN login over TCP on the auth-client protocol, as Postfix sends it, with
 * extra AUTH parameters (`rip=…`, `no-penalty`). Resolves with the OK or FAIL line.
 */
export function authPlainOverTcp(port: number, user: string, pass: string, params: string[] = []): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = connect(port, '127.0.0.1');
    let data = '';
    s.on('data', (d) => {
      data += d;
      const m = /^(OK|FAIL)\t1.*$/m.exec(data);
      if (m) {
        s.end();
        resolve(m[0]);
      }
    });
    s.on('error', reject);
    const extra = params.map((p) => `\t${p}`).join('');
    s.write(`VERSION\t1\t2\nCPID\t77\nAUTH\t1\tPLAIN\tservice=smtp\tnologin${extra}\tresp=${plain(user, pass)}\n`);
  });
}

/**
 * One SMTP AUTH PLAIN login on the daemon's auth socket as Postfix sends it (no-penalty, and
 * the client's address when given): the reply line, e.g. `OK\t1\tuser=…` or `FAIL\t1\ttemp`.
 */
export function smtpAuthLine(port: number, user: string, pass: string, rip?: string): Promise<string> {
  return authPlainOverTcp(port, user, pass, ['no-penalty', ...(rip ? [`rip=${rip}`] : [])]);
}

/** OK or FAIL for one SMTP AUTH PLAIN login (smtpAuthLine's first field). */
export async function smtpAuth(port: number, user: string, pass: string, rip?: string): Promise<string> {
  return (await smtpAuthLine(port, user, pass, rip)).split('\t')[0]!;
}

/** One login for authPlainBatch. */
export interface Login {
  user: string;
  password: string;
  service: string;
}

/**
 * Many SASL PLAIN logins pipelined on one auth-client connection (a UNIX socket path or a
 * TCP port on 127.0.0.1), as a login process sends them, at most `window` open at once (the
 * daemon closes a connection with more than 128): the OK or FAIL line of each, in the order
 * of `logins`. Works against Dovecot's own auth-client socket and the daemon's.
 */
export function authPlainBatch(target: string | number, logins: readonly Login[], ms = 60_000, window = 32): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const s = typeof target === 'number' ? connect(target, '127.0.0.1') : connect(target);
    const replies: string[] = new Array(logins.length);
    let left = logins.length;
    let sent = 0;
    const timer = setTimeout(() => {
      s.destroy();
      reject(new Error(`${left} of ${logins.length} logins unanswered after ${ms} ms`));
    }, ms);
    const sendNext = () => {
      if (sent >= logins.length) return;
      const l = logins[sent++]!;
      s.write(`AUTH\t${sent}\tPLAIN\tservice=${l.service}\tsecured\tno-penalty\tnologin\tresp=${plain(l.user, l.password)}\n`);
    };
    s.setEncoding('utf8');
    onLines(s, (line) => {
      const m = /^(OK|FAIL)\t(\d+)/.exec(line);
      if (!m) return;
      replies[Number(m[2]) - 1] = line;
      if (--left === 0) {
        clearTimeout(timer);
        s.end();
        resolve(replies);
      } else sendNext();
    });
    s.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    s.on('close', () => {
      clearTimeout(timer);
      if (left > 0) reject(new Error(`the server closed the connection with ${left} of ${logins.length} logins unanswered`));
    });
    s.write(`VERSION\t1\t2\nCPID\t${process.pid}\n`);
    for (let i = 0; i < window; i++) sendNext();
  });
}
