// The socketmap server over real sockets (the listener the daemon uses, on 127.0.0.1:0 and a
// UNIX socket) and an in-memory directory: every rule of the contract table, replies in
// order whatever the framing, TEMP before the first load, the reply-size limit, bad clients
// closed and counted while the others go on, the request-size limit, shutdown after the
// request in flight, the metrics, and `mailmapd lookup`.

import { mkdtempSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { parseConfigText } from '../../src/config.js';
import { parseListenAddress } from '../../src/net/listen-address.js';
import { createLogger } from '../../src/log.js';
import { lookupCommand } from '../../src/cli/lookup.js';
import { freePort } from '../helpers/daemon.js';
import { waitFor } from '../helpers/db.js';
import { cases, fixtureData, rawClient, replyMatches, request, startSocketmap, type Server } from '../helpers/socketmap-fixture.js';

async function counterValue(c: { get(): Promise<{ values: Array<{ value: number; labels: Record<string, unknown> }> }> }, labels: Record<string, string>) {
  const v = (await c.get()).values.find((x) => Object.entries(labels).every(([k, val]) => x.labels[k] === val));
  return v?.value ?? 0;
}

function describeCase(i: number) {
  const c = cases[i]!;
  return `${c.map} ${JSON.stringify(c.key.toString())} (${c.rule})`;
}

describe('answers of the contract', () => {
  let server: Server;
  const logs: string[] = [];
  beforeAll(async () => {
    server = await startSocketmap({ logger: createLogger('debug', (l) => logs.push(l)) });
  });
  afterAll(() => server?.close());

  it('answers every rule of the contract table, one request at a time on one connection', async () => {
    const c = await rawClient(server);
    for (let i = 0; i < cases.length; i++) {
      c.send(request(cases[i]!.map, cases[i]!.key));
      const got = (await c.waitReplies(i + 1))[i]!;
      expect(replyMatches(got, cases[i]!.reply), `${describeCase(i)}: got ${JSON.stringify(got.slice(0, 80))}`).toBe(true);
    }
    expect(c.replies.some((r) => r === 'OK ' || r === 'OK')).toBe(false);
    c.socket.destroy();
  });

  it('answers pipelined requests in one write in order, and the same when they arrive a byte at a time', async () => {
    const all = Buffer.concat(cases.map((c) => request(c.map, c.key)));
    const c1 = await rawClient(server);
    c1.send(all);
    const pipelined = await c1.waitReplies(cases.length);
    for (const [i, c] of cases.entries()) expect(replyMatches(pipelined[i]!, c.reply), describeCase(i)).toBe(true);
    c1.socket.destroy();

    // A byte at a time (small requests only: 100000-byte replies would make this slow).
    const small = cases.filter((c) => !c.rule.includes('100000'));
    const bytes = Buffer.concat(small.map((c) => request(c.map, c.key)));
    const c2 = await rawClient(server);
    c2.socket.setNoDelay(true);
    for (let i = 0; i < bytes.length; i += 1 + (i % 7)) {
      c2.send(bytes.subarray(i, i + 1 + (i % 7)));
      if (i % 50 === 0) await new Promise((r) => setImmediate(r));
    }
    const trickled = await c2.waitReplies(small.length);
    for (const [i, c] of small.entries()) expect(replyMatches(trickled[i]!, c.reply), `${c.map} ${c.rule}`).toBe(true);
    c2.socket.destroy();
  });

  it('says why in a TEMP, logs an unknown map name once, and logs an oversized reply', async () => {
    const c = await rawClient(server);
    c.send(Buffer.concat([request('nosuchmap', 'a@b'), request('nosuchmap', 'c@d'), request('aliases', 'huge@example.org'), request('domains', '')]));
    const [unknown, , tooLong, empty] = await c.waitReplies(4);
    expect(unknown).toBe('TEMP unknown map nosuchmap');
    expect(tooLong).toMatch(/^TEMP reply too long/);
    expect(empty).toBe('NOTFOUND ');
    c.socket.destroy();
    expect(logs.filter((l) => l.includes('unknown map name') && l.includes('map=nosuchmap'))).toHaveLength(1);
    expect(logs.some((l) => /reply longer than Postfix accepts.*map=aliases key=huge@example.org bytes=100001/.test(l))).toBe(true);
  });

  it('a request with no space between map and key is a TEMP, not a crash', async () => {
    const c = await rawClient(server);
    c.send('7:domains,');
    expect((await c.waitReplies(1))[0]).toMatch(/^TEMP malformed request/);
    c.send(request('domains', 'example.org'));
    expect((await c.waitReplies(2))[1]).toBe('OK example.org');
    c.socket.destroy();
  });

  it('records every lookup in mailmapd_lookup_duration_seconds by map and result', async () => {
    const h = server.metrics.lookupDuration;
    const count = async (map: string, result: string) => {
      const v = (await h.get()).values.find(
        (x) =>
          x.metricName === 'mailmapd_lookup_duration_seconds_count' && x.labels.map === map && x.labels.result === result && x.labels.protocol === 'socketmap',
      );
      return v?.value ?? 0;
    };
    const before = [await count('domains', 'ok'), await count('aliases', 'notfound'), await count('unknown', 'temp')];
    const c = await rawClient(server);
    c.send(Buffer.concat([request('domains', 'example.org'), request('domains', 'example.org'), request('aliases', 'x@nowhere.test'), request('bogus', 'x')]));
    await c.waitReplies(4);
    c.socket.destroy();
    expect([await count('domains', 'ok'), await count('aliases', 'notfound'), await count('unknown', 'temp')]).toEqual([
      before[0]! + 2,
      before[1]! + 1,
      before[2]! + 1,
    ]);
  });
});

describe('before the directory has loaded', () => {
  let server: Server;
  beforeAll(async () => {
    server = await startSocketmap({ loaded: false });
  });
  afterAll(() => server?.close());

  it('answers TEMP for every map, then real answers on the same connection once loaded', async () => {
    const c = await rawClient(server);
    const maps = ['domains', 'mailboxes', 'aliases', 'senders'];
    c.send(Buffer.concat(maps.map((m) => request(m, 'alice@example.org'))));
    const early = await c.waitReplies(4);
    expect(early).toEqual(maps.map(() => 'TEMP directory not loaded yet'));
    server.directory.replaceAll(fixtureData());
    c.send(request('mailboxes', 'alice@example.org'));
    expect((await c.waitReplies(5))[4]).toBe('OK example.org/alice/');
    c.socket.destroy();
  });
});

describe('bad clients', () => {
  let server: Server;
  const logs: string[] = [];
  beforeAll(async () => {
    server = await startSocketmap({ maxRequestBytes: 64, logger: createLogger('debug', (l) => logs.push(l)) });
  });
  afterAll(() => server?.close());

  const bad = (reason: string) => counterValue(server.metrics.badInput, { listener: 'socketmap', reason });

  it('garbage closes that connection (after answering the good requests before it), logged and counted; others go on', async () => {
    const good = await rawClient(server);
    good.send(request('domains', 'example.org'));
    await good.waitReplies(1);

    const before = await bad('bad_length');
    const b = await rawClient(server);
    b.send(Buffer.concat([request('domains', 'example.org'), Buffer.from('GET / HTTP/1.0\r\n\r\n')]));
    await b.closed;
    expect(b.replies).toEqual(['OK example.org']);
    expect(await bad('bad_length')).toBe(before + 1);
    expect(logs.some((l) => l.includes('closing connection on bad input') && l.includes('reason=bad_length'))).toBe(true);

    const t = await rawClient(server);
    t.send('3:abc;');
    await t.closed;
    expect(await bad('bad_terminator')).toBeGreaterThanOrEqual(1);

    good.send(request('mailboxes', 'alice@example.org'));
    expect((await good.waitReplies(2))[1]).toBe('OK example.org/alice/');
    good.socket.destroy();
  });

  it('a request of exactly max_request_bytes is answered; a longer length prefix closes the connection before its payload is sent', async () => {
    const c = await rawClient(server);
    const key = 'x'.repeat(64 - 'domains '.length);
    c.send(request('domains', key));
    expect(await c.waitReplies(1)).toEqual(['NOTFOUND ']);

    const before = await bad('too_long');
    const big = await rawClient(server);
    big.send('65:'); // the payload never follows: the prefix alone must end the connection
    await big.closed;
    expect(big.replies).toEqual([]);
    expect(await bad('too_long')).toBe(before + 1);

    const huge = await rawClient(server);
    huge.send('99999999999999999999');
    await huge.closed;
    expect(await bad('too_long')).toBe(before + 2);

    c.send(request('domains', 'example.org'));
    expect((await c.waitReplies(2))[1]).toBe('OK example.org');
    c.socket.destroy();
  });

  it('a client that pipelines requests for 100000-byte replies and never reads is cut off, not buffered without bound', async () => {
    const before = await bad('reply_backlog');
    const hog = connect({ host: '127.0.0.1', port: server.port });
    hog.on('error', () => {});
    hog.pause(); // never reads a reply
    const closed = new Promise<void>((r) => hog.once('close', () => r()));
    await new Promise<void>((r) => hog.once('connect', () => r()));
    hog.write(Buffer.concat(Array.from({ length: 3000 }, () => request('aliases', 'edge@example.org'))));
    await waitFor(async () => (await bad('reply_backlog')) === before + 1, 5000, 'the backlog to be noticed');
    hog.resume(); // a paused socket never sees the close
    await closed;
    const probe = await rawClient(server);
    probe.send(request('aliases', 'edge@example.org'));
    expect((await probe.waitReplies(1))[0]!.length).toBe(100_000);
    probe.socket.destroy();
  });

  it('random garbage never crashes the server; a fresh connection still gets the right answer', async () => {
    const onError = vi.fn();
    process.on('uncaughtException', onError);
    try {
      await fc.assert(
        fc.asyncProperty(
          fc.oneof(
            fc.uint8Array({ minLength: 1, maxLength: 200 }).map((a) => Buffer.from(a)),
            fc.tuple(fc.nat(80), fc.uint8Array({ maxLength: 90 })).map(([n, a]) => Buffer.concat([Buffer.from(`${n}:`), Buffer.from(a)])),
          ),
          async (garbage) => {
            const g = await rawClient(server);
            g.send(garbage);
            await Promise.race([g.closed, new Promise((r) => setTimeout(r, 20))]);
            g.socket.destroy();
            const probe = await rawClient(server);
            probe.send(request('aliases', 'info@example.org'));
            expect((await probe.waitReplies(1))[0]).toBe('OK alice@example.org,dave@example.net');
            probe.socket.destroy();
          },
        ),
        { numRuns: 60 },
      );
    } finally {
      process.off('uncaughtException', onError);
    }
    expect(onError).not.toHaveBeenCalled();
  });
});

describe('shutdown', () => {
  it('close() answers the request in flight, then ends the connection; idle ones end at once', async () => {
    const logs: string[] = [];
    const server = await startSocketmap({ logger: createLogger('debug', (l) => logs.push(l)) });
    const idle = await rawClient(server);
    idle.send(request('domains', 'example.org'));
    await idle.waitReplies(1);
    const busy = await rawClient(server);
    const req = request('mailboxes', 'alice@example.org');
    busy.send(req.subarray(0, 10));
    await new Promise((r) => setTimeout(r, 20));

    const closing = server.listener.close(5000);
    await idle.closed;
    expect(busy.isClosed()).toBe(false);
    busy.send(req.subarray(10));
    await busy.closed;
    await closing;
    expect(busy.replies).toEqual(['OK example.org/alice/']);
    // Each ended by the protocol, none cut by the grace period (which logs when it cuts).
    expect(logs.join('')).not.toMatch(/grace period over/);
  });
});

describe('mailmapd lookup', () => {
  let server: Server;
  let unixServer: Server;
  let dir: string;
  const run = async (listen: string, args: string[]) => {
    const lines: string[] = [];
    const stderr = vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
    try {
      const code = await lookupCommand(parseConfigText(`socketmap_listen = ${listen}\n`, 'test.conf'), args, (s) => lines.push(s));
      return { code, out: lines.join('\n'), err: stderr.mock.calls.map((c) => String(c[0])).join('') };
    } finally {
      stderr.mockRestore();
    }
  };
  beforeAll(async () => {
    server = await startSocketmap();
    dir = mkdtempSync(join(tmpdir(), 'mailmapd-sm-'));
    unixServer = await startSocketmap({ address: parseListenAddress(`unix:${join(dir, 'socketmap')}`) });
  });
  afterAll(async () => {
    await server?.close();
    await unixServer?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('prints the value and exits 0 when found, exits 1 when not found (inet and unix listeners)', async () => {
    const inet = `inet:127.0.0.1:${server.port}`;
    expect(await run(inet, ['aliases', 'Info+x@Example.ORG'])).toMatchObject({ code: 0, out: 'alice+x@example.org,dave+x@example.net' });
    expect(await run(inet, ['domains', 'nowhere.test'])).toMatchObject({ code: 1, out: '' });
    expect(await run(inet, ['domains', '"odd key with spaces"'])).toMatchObject({ code: 1, out: '' });
    const unix = `unix:${join(dir, 'socketmap')}, inet:127.0.0.1:1`;
    expect(await run(unix, ['mailboxes', 'alice@example.org'])).toMatchObject({ code: 0, out: 'example.org/alice/' });
  });

  it('exits 75 for a TEMP answer and when the daemon is unreachable; 2 for bad usage', async () => {
    const inet = `inet:127.0.0.1:${server.port}`;
    const temp = await run(inet, ['nosuchmap', 'x']);
    expect(temp).toMatchObject({ code: 75, out: '' });
    expect(temp.err).toMatch(/TEMP unknown map nosuchmap/);
    const down = await run(`inet:127.0.0.1:${await freePort()}`, ['domains', 'example.org']);
    expect(down.code).toBe(75);
    expect(down.err).toMatch(/cannot reach the daemon .*ECONNREFUSED/);
    expect((await run(inet, ['domains'])).code).toBe(2);
    expect((await run(inet, ['domains', 'a', 'b'])).code).toBe(2);
  });
});
