// The connection layer's clocks on a fake clock: time is advanced, never waited for, so
// the idle timeout and the request deadline are asserted to the millisecond on a busy
// machine. Real sockets (UNIX) through the daemon's listener; a door of "N\n" lines.

import { mkdtempSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { doorHandler, type Decoder } from '../../src/net/connection.js';
import { parseListenAddress } from '../../src/net/listen-address.js';
import { listen, type Listener } from '../../src/net/listener.js';
import { createLogger } from '../../src/log.js';
import { createMetrics, type Metrics } from '../../src/metrics.js';
import { fakeClock, settle } from '../helpers/clock.js';

const dir = mkdtempSync(join(tmpdir(), 'mailmapd-conn-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const lines = (): Decoder<string> => {
  let rest = '';
  return {
    push(buf, end, take) {
      const all = (rest + buf.toString('latin1', 0, end)).split('\n');
      rest = all.pop()!;
      for (const line of all) take(line);
      return rest.length > 100 ? { fault: 'line_too_long', detail: 'line too long' } : undefined;
    },
    get idle() {
      return rest === '';
    },
  };
};

let listener: Listener | undefined;
afterEach(async () => listener?.close(100));

async function serve(limits: { idleTimeoutMs: number; requestTimeoutMs?: number }) {
  const { clock, advance } = fakeClock();
  const metrics: Metrics = createMetrics(false);
  const path = join(dir, `${Math.random().toString(36).slice(2)}.sock`);
  listener = await listen(
    parseListenAddress(`unix:${path}`),
    'test',
    doorHandler<string>({ name: 'test', logger: createLogger('error'), metrics, open: (conn) => ({ decoder: lines(), handle: (l) => conn.send(`${l}!\n`) }) }),
    { maxConnections: 10, ...limits },
    { mode: 0o600, group: '' },
    createLogger('error'),
    {},
    clock,
  );
  const open = async () => {
    const s = connect(path);
    const got: string[] = [];
    s.setEncoding('latin1');
    s.on('data', (d: string) => got.push(d));
    let closed = false;
    s.once('close', () => (closed = true));
    await new Promise<void>((r) => s.once('connect', () => r()));
    return { s, got: () => got.join(''), closed: () => closed, whenClosed: new Promise<void>((r) => s.once('close', () => r())) };
  };
  return { open, advance, metrics, listener };
}

async function untilReply(c: { got: () => string }, text: string) {
  for (let i = 0; i < 200 && !c.got().includes(text); i++) await new Promise((r) => setTimeout(r, 5));
  expect(c.got()).toContain(text);
}

describe('the idle clock', () => {
  it('closes a connection exactly when it has been quiet for idle_timeout, counted from its last bytes', async () => {
    const { open, advance } = await serve({ idleTimeoutMs: 1000 });
    const c = await open();
    advance(600);
    c.s.write('a\n');
    await untilReply(c, 'a!');
    advance(999); // 999 ms after the last bytes: still open
    await settle();
    expect(c.closed()).toBe(false);
    advance(1);
    await c.whenClosed;
  });
});

describe('the request deadline', () => {
  it('closes a request that trickles in for request_timeout, however often bytes arrive, and counts it', async () => {
    const { open, advance, metrics } = await serve({ idleTimeoutMs: 60_000, requestTimeoutMs: 1000 });
    const c = await open();
    for (let i = 0; i < 9; i++) {
      c.s.write('x');
      await settle();
      advance(100);
    }
    await settle();
    expect(c.closed()).toBe(false); // 900 ms into the request
    advance(100);
    await c.whenClosed;
    const text = await metrics.registry.metrics();
    expect(text).toMatch(/mailmapd_connections_bad_input_total\{listener="test",reason="request_timeout"\} 1/);
  });

  it('runs from the first byte of each request, not of the connection', async () => {
    const { open, advance } = await serve({ idleTimeoutMs: 60_000, requestTimeoutMs: 1000 });
    const c = await open();
    c.s.write('first');
    await settle();
    advance(900);
    c.s.write('\nsec'); // the first request completes; the second begins now
    await untilReply(c, 'first!');
    advance(900);
    await settle();
    expect(c.closed()).toBe(false);
    c.s.write('ond\n');
    await untilReply(c, 'second!');
    advance(5000); // nothing half-received: no deadline runs
    await settle();
    expect(c.closed()).toBe(false);
    c.s.destroy();
  });
});

describe('graceful close', () => {
  it('ends an idle connection at once and waits for a half-received request, which is answered', async () => {
    const { open, listener: l } = await serve({ idleTimeoutMs: 60_000 });
    const idle = await open();
    const busy = await open();
    busy.s.write('hal');
    await settle();
    const closing = l.close(5000);
    await idle.whenClosed;
    await settle();
    expect(busy.closed()).toBe(false);
    busy.s.write('f\nnot answered\n');
    await busy.whenClosed;
    await closing;
    expect(busy.got()).toBe('half!\n');
    listener = undefined;
  });
});

describe('bad input', () => {
  it('answers the good requests before it, counts the fault, and ends the connection', async () => {
    const { open, metrics } = await serve({ idleTimeoutMs: 60_000 });
    const c = await open();
    c.s.write(`ok\n${'y'.repeat(200)}`);
    await c.whenClosed;
    expect(c.got()).toBe('ok!\n');
    expect(await metrics.registry.metrics()).toMatch(/mailmapd_connections_bad_input_total\{listener="test",reason="line_too_long"\} 1/);
  });
});
