// Bounded under abuse, on the real daemon over loopback: one local process that holds
// thousands of idle connections (and opens a new one for each one closed) does not keep
// a real `postmap` from its answer, and a request that trickles in a byte at a time is
// closed at its deadline however often bytes arrive.

import { spawn } from 'node:child_process';
import { connect, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { startDaemon, type Daemon } from '../helpers/daemon.js';
import pg from 'pg';

function postmap(port: number, key: string): Promise<{ out: string; ms: number; code: number | null }> {
  const t0 = performance.now();
  return new Promise((resolve) => {
    const child = spawn('postmap', ['-q', key, `socketmap:inet:127.0.0.1:${port}:mailboxes`], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.resume();
    child.once('exit', (code) => resolve({ out: out.trim(), ms: performance.now() - t0, code }));
  });
}

/** Holds `count` idle connections to `port` (opening a new one whenever one is closed, with `reopen`) until stop(). */
function hog(port: number, count: number, reopen: boolean): { open(): number; opened(): number; stop(): void } {
  const sockets = new Set<Socket>();
  let stopped = false;
  let total = 0;
  const one = () => {
    if (stopped) return;
    total++;
    const s = connect(port, '127.0.0.1');
    sockets.add(s);
    s.on('error', () => {});
    s.once('close', () => {
      sockets.delete(s);
      // Back off a little so the test process stays responsive; a real attacker would not.
      if (!stopped && reopen) setTimeout(one, 5);
    });
  };
  for (let i = 0; i < count; i++) one();
  return {
    open: () => sockets.size,
    opened: () => total,
    stop() {
      stopped = true;
      for (const s of sockets) s.destroy();
    },
  };
}

describe('connection starvation and slow requests', () => {
  let db: TestDatabase;
  let daemon: Daemon;
  beforeAll(async () => {
    db = await createTestDatabase();
    const c = new pg.Client({ connectionString: db.url });
    await c.connect();
    await c.query(`INSERT INTO mailmapd.domains (name) VALUES ('example.org')`);
    await c.query(`INSERT INTO mailmapd.mailboxes (address) VALUES ('user@example.org')`);
    await c.end();
    daemon = await startDaemon({ databaseUrl: db.url, config: { max_connections: '500', request_timeout: '1s', log_level: 'info' } });
  }, 60_000);
  afterAll(async () => {
    await daemon?.stop();
    await db?.drop();
  });

  for (const reopen of [false, true]) {
    it(`a real postmap is answered while one process holds thousands of connections${reopen ? ', reopening each one closed' : ''}`, async () => {
      const h = hog(daemon.ports.socketmap, 3000, reopen);
      try {
        // Let it reach its steady state: every slot taken (and closed ones reopened).
        await new Promise((r) => setTimeout(r, 1500));
        const runs = [];
        for (let i = 0; i < 5; i++) runs.push(await postmap(daemon.ports.socketmap, 'user@example.org'));
        console.log(
          `postmap with a ${reopen ? 'reopening ' : ''}hog holding ${h.open()} connections (${h.opened()} opened): ` +
            `${runs.filter((r) => r.out === 'example.org/user/').length}/5 answered, ms ${runs.map((r) => r.ms.toFixed(0)).join(' ')}`,
        );
        for (const r of runs) expect(r.out).toBe('example.org/user/');
        // The daemon said what it did, without a line per connection.
        const evictions = daemon
          .logs()
          .split('\n')
          .filter((l) => l.includes('closed the longest-idle connection'));
        expect(evictions.length).toBeGreaterThan(0);
        expect(evictions.length).toBeLessThanOrEqual(30);
        const metrics = await (await daemon.http('/metrics')).text();
        expect(Number(/^mailmapd_connections_evicted_total\{listener="socketmap"\} (\d+)/m.exec(metrics)?.[1])).toBeGreaterThanOrEqual(5);
      } finally {
        h.stop();
      }
    }, 60_000);
  }

  it('a request trickling in one byte at a time is closed at its deadline, not kept alive by each byte', async () => {
    const s = connect(daemon.ports.socketmap, '127.0.0.1');
    s.on('error', () => {});
    await new Promise((r) => s.once('connect', r));
    const closed = new Promise<number>((resolve) => s.once('close', () => resolve(performance.now())));
    const request = Buffer.from('26:mailboxes user@example.org,');
    const t0 = performance.now();
    let i = 0;
    const drip = setInterval(() => {
      if (i < request.length - 1 && !s.destroyed) s.write(request.subarray(i, ++i));
    }, 100);
    try {
      const at = await Promise.race([closed, new Promise<number>((r) => setTimeout(() => r(-1), 5000))]);
      expect(at).toBeGreaterThan(0);
      // request_timeout is 1 s; the sweep runs every 250 ms.
      expect(at - t0).toBeLessThan(2500);
      expect(at - t0).toBeGreaterThan(900);
    } finally {
      clearInterval(drip);
      s.destroy();
    }
    const metrics = await (await daemon.http('/metrics')).text();
    expect(metrics).toMatch(/^mailmapd_connections_bad_input_total\{listener="socketmap",reason="request_timeout"\} [1-9]/m);
  }, 20_000);

  it('idle HTTP connections neither hold the cap shut nor stay open for half a minute', async () => {
    const idle: Socket[] = [];
    for (let i = 0; i < 500; i++) {
      const s = connect(daemon.ports.http, '127.0.0.1');
      s.on('error', () => {});
      idle.push(s);
    }
    await Promise.all(idle.map((s) => new Promise((r) => (s.readyState === 'open' ? r(null) : s.once('connect', r)))));
    const t0 = performance.now();
    const closedAt = idle.map((s) => new Promise<number>((r) => s.once('close', () => r(performance.now() - t0))));
    try {
      // The cap (500) is full of connections that never sent a byte: health still answers.
      const r = await daemon.http('/healthz');
      expect(r.status).toBe(200);
      // Those the health check did not displace are closed at the idle timeout (5 s), not
      // ~35 s later as before; the margin is for a loaded machine.
      const times = await Promise.race([Promise.all(closedAt), new Promise<number[]>((r) => setTimeout(() => r([]), 25_000))]);
      expect(times.length).toBe(500);
      expect(Math.max(...times)).toBeLessThan(20_000);
    } finally {
      for (const s of idle) s.destroy();
    }
  }, 45_000);

  for (const door of ['auth', 'checkpassword'] as const) {
    it(`the request deadline holds on the ${door} socket too`, async () => {
      const s = connect(daemon.ports[door], '127.0.0.1');
      s.on('error', () => {});
      s.resume();
      await new Promise((r) => s.once('connect', r));
      const closed = new Promise<number>((resolve) => s.once('close', () => resolve(performance.now())));
      const t0 = performance.now();
      if (door === 'auth') s.write('VERSION\t1\t0\nCPID\t1\n');
      const partial =
        door === 'auth' ? Buffer.from('AUTH\t1\tPLAIN\tservice=smtp\tresp=AHVzZXJAZXhhbXBsZS5vcmcAc2VjcmV0') : Buffer.from([0, 0, 0, 100, 0x31, 0]);
      let i = 0;
      const drip = setInterval(() => {
        if (i < partial.length && !s.destroyed) s.write(partial.subarray(i, ++i));
      }, 100);
      try {
        const at = await Promise.race([closed, new Promise<number>((r) => setTimeout(() => r(-1), 5000))]);
        expect(at).toBeGreaterThan(0);
        expect(at - t0).toBeLessThan(2500);
      } finally {
        clearInterval(drip);
        s.destroy();
      }
    }, 20_000);
  }
});
