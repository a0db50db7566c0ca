// The socket path under every door (the connection layer on the byte transport), in both
// of its forms: straight on Node's stream handle (the fast path this Node must take) and
// through the public stream API (what a Node without those internals gets). Real sockets,
// TCP and UNIX, through the daemon's listener: pieces and pipelining, replies that do not fit the kernel buffer
// while the client is not reading (reading pauses, nothing is lost or reordered), a
// half-closed client still gets its replies, and the idle timeout closes quiet
// connections but not busy ones.

import { mkdtempSync, rmSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parseListenAddress } from '../../src/net/listen-address.js';
import { createLogger } from '../../src/log.js';
import { byteConnectionMode } from '../../src/net/byte-connection.js';
import { doorHandler, type Decoder } from '../../src/net/connection.js';
import { listen, type Listener } from '../../src/net/listener.js';
import { createMetrics } from '../../src/metrics.js';
import type { Clock } from '../../src/net/clock.js';
import { fakeClock, settle } from '../helpers/clock.js';

const dir = mkdtempSync(join(tmpdir(), 'mailmapd-bytes-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/**
 * A line protocol: the request "N\n" is answered with N times "x" and "\n". Counts the
 * reads it was handed, to see when reading pauses.
 */
async function lineServer(mode: 'handle' | 'stream', where: 'inet' | 'unix', idleTimeoutMs = 60_000, clock?: Clock) {
  const stats = { reads: 0, requests: 0 };
  const text = where === 'inet' ? 'inet:127.0.0.1:0' : `unix:${join(dir, `${mode}-${Math.random().toString(36).slice(2)}.sock`)}`;
  /** "N\n" lines; counts the reads it is handed. */
  const numbers = (): Decoder<number> => {
    let line = '';
    return {
      push(buf, end, take) {
        stats.reads++;
        line += buf.toString('latin1', 0, end);
        for (let nl = line.indexOf('\n'); nl >= 0; nl = line.indexOf('\n')) {
          take(Number(line.slice(0, nl)));
          line = line.slice(nl + 1);
        }
        return undefined;
      },
      get idle() {
        return line === '';
      },
    };
  };
  const listener: Listener = await listen(
    parseListenAddress(text),
    'test',
    doorHandler<number>({
      name: 'test',
      logger: createLogger('error'),
      metrics: createMetrics(false),
      mode,
      open: (conn) => ({
        decoder: numbers(),
        handle(n) {
          stats.requests++;
          conn.send('x'.repeat(n) + '\n');
        },
      }),
    }),
    { maxConnections: 10, idleTimeoutMs },
    { mode: 0o600, group: '' },
    createLogger('error'),
    {},
    clock,
  );
  const open = (): Promise<Socket> =>
    new Promise((resolve, reject) => {
      const s = where === 'inet' ? connect(listener.port!, '127.0.0.1') : connect(listener.address.kind === 'unix' ? listener.address.path : '');
      s.once('connect', () => resolve(s));
      s.once('error', reject);
    });
  return { listener, stats, open };
}

/** Collects what a socket receives until `bytes` have arrived. */
function received(s: Socket, bytes: number): Promise<string> {
  return new Promise((resolve, reject) => {
    let got = '';
    const onData = (d: Buffer) => {
      got += d.toString('latin1');
      if (got.length >= bytes) {
        s.off('data', onData);
        resolve(got);
      }
    };
    s.on('data', onData);
    s.once('close', () => reject(new Error(`closed after ${got.length} of ${bytes} bytes`)));
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

it('this Node takes the fast path (a Node upgrade that loses it must show up here, not as a slow daemon)', () => {
  expect(byteConnectionMode()).toBe('handle');
});

describe.each([
  ['handle', 'inet'],
  ['handle', 'unix'],
  ['stream', 'inet'],
  ['stream', 'unix'],
] as const)('%s path over %s', (mode, where) => {
  it('answers requests split anywhere and pipelined, in order', async () => {
    const { listener, open } = await lineServer(mode, where);
    const s = await open();
    const want = [3, 1, 7, 0, 12].map((n) => 'x'.repeat(n) + '\n').join('');
    const got = received(s, want.length);
    for (const piece of ['3', '\n1\n', '7\n0', '\n', '1', '2\n']) {
      s.write(piece);
      await sleep(5);
    }
    expect(await got).toBe(want);
    s.destroy();
    await listener.close(100);
  });

  it('stops reading while replies wait for a client that does not read, and loses nothing', async () => {
    const { listener, stats, open } = await lineServer(mode, where);
    const s = await open();
    s.pause();
    // 40 replies of 1 MB: far more than the kernel buffers hold while nobody reads.
    const requests = 40;
    for (let i = 0; i < requests; i++) {
      s.write('1000000\n');
      await sleep(2);
    }
    await sleep(200);
    expect(stats.requests).toBeLessThan(requests); // the server stopped taking requests
    const got = received(s, requests * 1_000_001);
    s.resume();
    const all = await got;
    expect(stats.requests).toBe(requests);
    expect(all).toBe(('x'.repeat(1_000_000) + '\n').repeat(requests));
    s.destroy();
    await listener.close(100);
  });

  it('a client that half-closes after its requests still gets every reply, then the connection closes', async () => {
    const { listener, open } = await lineServer(mode, where);
    const s = await open();
    const closed = new Promise<void>((r) => s.once('close', () => r()));
    const got = received(s, 5 + 6 + 2);
    s.end('4\n5\n1\n');
    expect(await got).toBe('xxxx\nxxxxx\nx\n');
    await closed;
    await listener.close(100);
  });

  it('closes a quiet connection after the idle timeout, but not a busy one older than it', async () => {
    // On a fake clock: time moves 100 ms per step, after the busy one's request is answered.
    const { clock, advance } = fakeClock();
    const { listener, open } = await lineServer(mode, where, 300, clock);
    const busy = await open();
    const quiet = await open();
    const quietGone = new Promise<void>((r) => quiet.once('close', () => r()));
    let quietClosed = false;
    quiet.once('close', () => (quietClosed = true));
    let busyClosed = false;
    busy.once('close', () => (busyClosed = true));
    busy.on('data', () => {});
    await settle(); // both accepted, their clocks armed at the same time
    for (let i = 1; i <= 12; i++) {
      const answered = received(busy, 2);
      busy.write('1\n');
      await answered;
      advance(100);
      if (i === 2) {
        await settle();
        expect(quietClosed).toBe(false); // quiet for 200 ms
      }
      if (i === 3) await quietGone; // quiet for 300 ms
    }
    await settle();
    expect(busyClosed).toBe(false); // 1.2 s of traffic, 4 times the idle timeout
    const busyGone = new Promise<void>((r) => busy.once('close', () => r()));
    advance(300);
    await busyGone; // and once it goes quiet, it is closed too
    await listener.close(100);
  });
});
