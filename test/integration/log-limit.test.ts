// Repeated warnings are rate-limited with a count: a flood of the same message writes a
// few lines, then one line saying how many were left out — on the unit, and on a real
// socketmap listener fed hundreds of malformed requests.

import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDirectory } from '../../src/directory/directory.js';
import { parseListenAddress } from '../../src/net/listen-address.js';
import { createLogger } from '../../src/log.js';
import { limitRepeats } from '../../src/log-limit.js';
import { createMetrics } from '../../src/metrics.js';
import { listen, type Listener } from '../../src/net/listener.js';
import { createSocketmapHandler } from '../../src/socketmap/server.js';

describe('limitRepeats', () => {
  it('writes the first lines of a window, then one line with the count', async () => {
    const lines: string[] = [];
    const log = limitRepeats(
      createLogger('debug', (l) => lines.push(l)),
      200,
      3,
    );
    for (let i = 0; i < 1000; i++) log.warn('bad input', { i });
    log.error('another message');
    expect(lines).toHaveLength(4);
    await new Promise((r) => setTimeout(r, 300));
    expect(lines).toHaveLength(5);
    expect(lines[4]).toMatch(/level=warn msg="bad input … and 997 more in the last 0 s" repeated=997/);
    // A new window starts afresh.
    log.warn('bad input');
    expect(lines).toHaveLength(6);
  });
});

describe('a flood of malformed socketmap requests', () => {
  let listener: Listener;
  const lines: string[] = [];
  beforeAll(async () => {
    const logger = createLogger('info', (l) => lines.push(l));
    const directory = createDirectory({ recipientDelimiter: '+' });
    const handler = createSocketmapHandler({ directory, logger, metrics: createMetrics(false), maxRequestBytes: 4096 });
    listener = await listen(
      parseListenAddress('inet:127.0.0.1:0'),
      'socketmap',
      handler,
      { maxConnections: 1000, idleTimeoutMs: 10_000 },
      { mode: 0o666, group: '' },
      logger,
    );
  });
  afterAll(() => listener.close(100));

  it('logs a handful of lines, not one per connection', async () => {
    await Promise.all(
      Array.from({ length: 300 }, () => {
        const s = connect(listener.port!, '127.0.0.1');
        s.on('error', () => {});
        s.write('not a netstring');
        return new Promise((r) => s.once('close', r));
      }),
    );
    const bad = lines.filter((l) => l.includes('closing connection on bad input'));
    expect(bad.length).toBeGreaterThan(0);
    expect(bad.length).toBeLessThanOrEqual(5);
  });
});
