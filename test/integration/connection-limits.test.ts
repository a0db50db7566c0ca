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

/**
 * Writes all but the last byte of `request` to `s`, one every 100 ms, and says which came
 * first: the server closing the connection, or the drip running out. A deadline that each
 * byte put off would lose that race; no figure in milliseconds is asserted (the clocks
 * themselves are tested to the millisecond on a fake clock in connection.test.ts).
 */
function dripRace(s: Socket, request: Buffer): Promise<'closed' | 'dripped'> {
  let i = 0;
  let drip: NodeJS.Timeout | undefined;
  const dripped = new Promise<'dripped'>((resolve) => {
    drip = setInterval(() => {
      if (s.destroyed) return;
      if (i < request.length - 1) s.write(request.subarray(i, ++i));
      else resolve('dripped');
    }, 100);
  });
  const closed = new Promise<'closed'>((resolve) => s.once('close', () => resolve('closed')));
  return Promise.race([closed, dripped]).finally(() => clearInterval(drip));
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
    // request_timeout is 1 s; the drip would take 3 s.
    try {
      expect(await dripRace(s, Buffer.from('26:mailboxes user@example.org,'))).toBe('closed');
    } finally {
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
    const closed = idle.map((s) => new Promise<void>((r) => s.once('close', () => r())));
    try {
      // The cap (500) is full of connections that never sent a byte: health still answers.
      const r = await daemon.http('/healthz');
      expect(r.status).toBe(200);
      // Those the health check did not displace are closed by the idle timeout (5 s here),
      // not left to Node's own ~35 s sweep: all of them, eventually (a generous wait for a
      // loaded machine). The idle clock's exact moment is tested on a fake clock
      // (http-bounds.test.ts).
      const all = await Promise.race([Promise.all(closed).then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), 25_000))]);
      expect(all).toBe(true);
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
      if (door === 'auth') s.write('VERSION\t1\t0\nCPID\t1\n');
      // Never complete: an AUTH line without its LF (6 s of drip); a frame of 100 bytes (10 s).
      const partial =
        door === 'auth'
          ? Buffer.from('AUTH\t1\tPLAIN\tservice=smtp\tresp=AHVzZXJAZXhhbXBsZS5vcmcAc2VjcmV0')
          : Buffer.concat([Buffer.from([0, 0, 0, 100]), Buffer.from(`1\0auth\0${'u'.repeat(93)}`)]);
      try {
        expect(await dripRace(s, partial)).toBe('closed');
      } finally {
        s.destroy();
      }
    }, 20_000);
  }
});
