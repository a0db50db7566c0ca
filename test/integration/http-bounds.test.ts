// The HTTP listener is bounded like the other doors (issue 29, item 2): a local client that
// pipelines `GET /metrics` on many connections and never reads used to make the daemon
// render and keep thousands of replies per connection (2 GB, every listener frozen). Now a
// connection is answered one request at a time, one sent too far ahead closes it, a reply
// left unread past the request deadline closes it, and /metrics is rendered at most once
// per interval. Asserted by counts: renders, closed connections, the bad-input counter,
// and answers from the other doors during the flood.

import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { connect } from 'node:net';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createMetricsRoute } from '../../src/http/metrics-route.js';
import { serveHttp, type HttpServer, type Route } from '../../src/http/server.js';
import { createLogger } from '../../src/log.js';
import { createMetrics, type Metrics } from '../../src/metrics.js';
import { parseListenAddress } from '../../src/net/listen-address.js';
import { fakeClock, settle } from '../helpers/clock.js';
import { startDaemon, type Daemon } from '../helpers/daemon.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';

const PIPELINED = Buffer.from('GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n');

/**
 * A child process that opens `connections` connections to `port`, writes pipelined
 * `GET /metrics` on each (up to `bytesEach`, as fast as the kernel takes them) and never
 * reads; it reports how many of its connections the server closed.
 */
function flood(port: number, connections: number, bytesEach: number): Promise<{ closed: number; written: number }> {
  const script = `
    const net = require('node:net');
    const [port, count, bytesEach] = process.argv.slice(1).map(Number);
    const unit = Buffer.from(${JSON.stringify(PIPELINED.toString())});
    const chunk = Buffer.concat(Array(Math.ceil(16384 / unit.length)).fill(unit));
    let closed = 0, written = 0;
    const report = () => { console.log(JSON.stringify({ closed, written })); process.exit(0); };
    // Bounded in time: a server that neither reads nor closes leaves the writes pending.
    setTimeout(report, 60000);
    for (let i = 0; i < count; i++) {
      const s = net.connect(port, '127.0.0.1');
      s.pause(); // never read a reply
      let mine = 0;
      s.on('error', () => {});
      s.once('close', () => { if (++closed === count) report(); });
      // A socket that does not read learns that the server closed it from its next write.
      const probe = () => { if (!s.destroyed) { s.write(unit); setTimeout(probe, 100); } };
      const pump = () => {
        while (mine < bytesEach && !s.destroyed) {
          mine += chunk.length; written += chunk.length;
          if (!s.write(chunk)) return void s.once('drain', pump);
        }
        probe();
      };
      s.once('connect', pump);
    }
  `;
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['-e', script, String(port), String(connections), String(bytesEach)], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.once('exit', () => {
      try {
        resolve(JSON.parse(out));
      } catch {
        reject(new Error(`flood child said ${JSON.stringify(out)}`));
      }
    });
  });
}

async function counter(m: Metrics, name: string, labels: Record<string, string>): Promise<number> {
  const json = await m.registry.getMetricsAsJSON();
  return (json.find((x) => x.name === name)?.values ?? [])
    .filter((v) => Object.entries(labels).every(([k, x]) => v.labels[k] === x))
    .reduce((a, v) => a + v.value, 0);
}

describe('the HTTP listener in process', () => {
  let http: HttpServer;
  let metrics: Metrics;
  let renders = 0;
  const big = 'x'.repeat(1024 * 1024); // a large /metrics page
  beforeAll(async () => {
    metrics = createMetrics(false);
    const routes = new Map<string, Route>();
    routes.set('GET /healthz', () => ({ status: 200, body: 'ok\n' }));
    // A frozen clock: every scrape falls within one interval.
    routes.set(
      'GET /metrics',
      createMetricsRoute({
        render: async () => {
          renders++;
          return big;
        },
        contentType: 'text/plain',
        now: () => 0,
      }),
    );
    routes.set('GET /huge', () => ({ status: 200, body: Buffer.alloc(64 * 1024 * 1024) }));
    http = await serveHttp(
      parseListenAddress('127.0.0.1:0'),
      routes,
      { maxConnections: 1000, maxBodyBytes: 65536, idleTimeoutMs: 30_000, requestTimeoutMs: 500 },
      { mode: 0o660, group: '' },
      createLogger('error', () => {}),
      metrics,
    );
  });
  afterAll(async () => {
    await http?.close(100);
  });

  it('closes every connection that pipelines without reading, and renders /metrics once', async () => {
    const r = await flood(http.port!, 200, 256 * 1024);
    expect(r.closed).toBe(200);
    // One rendering served to every scrape within the interval (the clock is frozen).
    expect(renders).toBe(1);
    // Each was closed by a bound (mostly a reply left unread past the deadline), each
    // counted once: never left to pile up replies.
    expect(await counter(metrics, 'mailmapd_connections_bad_input_total', { listener: 'http' })).toBe(200);
    const health = await fetch(`http://127.0.0.1:${http.port}/healthz`);
    expect(await health.text()).toBe('ok\n');
  }, 60_000);

  it('still answers a few pipelined requests, in order, one at a time', async () => {
    const s = connect(http.port!, '127.0.0.1');
    let got = '';
    s.setEncoding('latin1');
    s.on('data', (d) => (got += d));
    s.write('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n'.repeat(5) + 'GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    await new Promise((r) => s.once('close', r));
    expect(got.match(/HTTP\/1\.1 200 OK/g)?.length).toBe(6);
  });

  it('closes a connection whose reply stays unread past the request deadline', async () => {
    const before = await counter(metrics, 'mailmapd_connections_bad_input_total', { listener: 'http', reason: 'unread_reply' });
    const s = connect(http.port!, '127.0.0.1');
    s.pause();
    s.on('error', () => {});
    s.write('GET /huge HTTP/1.1\r\nHost: x\r\n\r\nGET /huge HTTP/1.1\r\nHost: x\r\n\r\n');
    // Not reading, the client learns of the close from a later write.
    const probe = setInterval(() => s.write('x'), 100);
    await new Promise((r) => s.once('close', r));
    clearInterval(probe);
    expect(await counter(metrics, 'mailmapd_connections_bad_input_total', { listener: 'http', reason: 'unread_reply' })).toBe(before + 1);
  }, 30_000);
});

describe('the real daemon under a pipelining flood', () => {
  let db: TestDatabase;
  let daemon: Daemon;
  beforeAll(async () => {
    db = await createTestDatabase();
    const c = new pg.Client({ connectionString: db.url });
    await c.connect();
    await c.query(`INSERT INTO mailmapd.domains (name) VALUES ('example.org')`);
    await c.query(`INSERT INTO mailmapd.mailboxes (address) VALUES ('user@example.org')`);
    await c.end();
    daemon = await startDaemon({ databaseUrl: db.url, config: { log_level: 'info', request_timeout: '1s' } });
  }, 60_000);
  afterAll(async () => {
    await daemon?.stop();
    await db?.drop();
  });

  /** The daemon's peak resident set (VmHWM), in bytes. */
  const peakRss = () => Number(/VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${daemon.process.pid}/status`, 'utf8'))![1]) * 1024;

  it('keeps answering postmap and /healthz, closes the flooders, and stays small', async () => {
    const before = peakRss();
    const flooding = flood(daemon.ports.http, 200, 1024 * 1024);
    const answers: string[] = [];
    for (let i = 0; i < 3; i++) {
      answers.push((await (await daemon.http('/healthz')).text()).trim());
      const { spawnSync } = await import('node:child_process');
      const q = spawnSync('postmap', ['-q', 'user@example.org', `socketmap:inet:127.0.0.1:${daemon.ports.socketmap}:mailboxes`], { encoding: 'utf8' });
      answers.push(q.stdout.trim());
    }
    const r = await flooding;
    expect(answers).toEqual(['ok', 'example.org/user/', 'ok', 'example.org/user/', 'ok', 'example.org/user/']);
    expect(r.closed).toBe(200);
    // The flooders never close on their own: each close above was the daemon's, mostly for
    // a reply left unread past the deadline (on a loaded machine the idle timeout may get
    // there first). /metrics is rendered at most once a second: read it after the flood.
    await new Promise((r) => setTimeout(r, 1100));
    const text = await (await daemon.http('/metrics')).text();
    expect(Number(/^mailmapd_connections_open\{listener="http"\} (\d+)/m.exec(text)?.[1])).toBeLessThanOrEqual(1); // this request's
    expect(Number(/^mailmapd_connections_bad_input_total\{listener="http",reason="unread_reply"\} (\d+)/m.exec(text)?.[1])).toBeGreaterThan(0);
    const grown = peakRss() - before;
    console.log(`pipelining flood: ${(r.written / 1048576).toFixed(0)} MiB sent, daemon peak RSS +${(grown / 1048576).toFixed(1)} MiB`);
    // Unbounded, the daemon grew by gigabytes; bounded, by what 200 parsed 16 KiB reads cost.
    expect(grown).toBeLessThan(256 * 1024 * 1024);
  }, 90_000);
});

describe('the HTTP idle clock', () => {
  it('closes a connection that sent nothing exactly at idle_timeout, on the fake clock', async () => {
    const { clock, advance } = fakeClock();
    const routes = new Map<string, Route>([['GET /healthz', () => ({ status: 200, body: 'ok\n' })]]);
    const limits = { maxConnections: 10, maxBodyBytes: 65536, idleTimeoutMs: 5000, requestTimeoutMs: 1000 };
    const server = await serveHttp(
      parseListenAddress('127.0.0.1:0'),
      routes,
      limits,
      { mode: 0o660, group: '' },
      createLogger('error', () => {}),
      createMetrics(false),
      clock,
    );
    try {
      const s = connect(server.port!, '127.0.0.1');
      s.on('error', () => {});
      let closed = false;
      s.once('close', () => (closed = true));
      await new Promise((r) => s.once('connect', r));
      await settle(); // the server has the connection, its clock armed
      advance(4999);
      await settle();
      expect(closed).toBe(false);
      advance(1);
      await settle();
      expect(closed).toBe(true);
    } finally {
      await server.close(100);
    }
  });
});
