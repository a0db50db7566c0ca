// The Postfix policy door over real UNIX sockets as SMTPD_POLICY_README describes the
// protocol (its codec alone: test/unit/smtpd-policy-codec.test.ts) — many requests per connection, requests split
// anywhere across reads, one `action=` reply each, bounded requests, a deadline per request
// (on a fake clock), DUNNO whenever the door cannot decide, and garbage closing only the
// connection that sent it. Then a raw-protocol fuzz.

import { mkdtempSync, rmSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/log.js';
import { createMetrics, type Metrics } from '../../src/metrics.js';
import type { Clock } from '../../src/net/clock.js';
import { parseListenAddress } from '../../src/net/listen-address.js';
import { listen, type Listener } from '../../src/net/listener.js';
import { createPolicyHandler, dunnoService } from '../../src/smtpd-policy/protocol.js';
import type { PolicyService } from '../../src/smtpd-policy/types.js';
import { fakeClock, settle } from '../helpers/clock.js';

const dir = mkdtempSync(join(tmpdir(), 'mailmapd-policy-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A request as Postfix writes it. */
const request = (attrs: Record<string, string>) =>
  Object.entries(attrs)
    .map(([k, v]) => `${k}=${v}\n`)
    .join('') + '\n';

const rcpt = (recipient: string) =>
  request({
    request: 'smtpd_access_policy',
    protocol_state: 'RCPT',
    protocol_name: 'ESMTP',
    sender: 'a@remote.test',
    recipient,
    recipient_count: '0',
    size: '0',
  });

let listener: Listener | undefined;
afterEach(async () => {
  await listener?.close(100);
  listener = undefined;
});

async function door(opts: { service?: PolicyService; loaded?: boolean; clock?: Clock; requestTimeoutMs?: number } = {}) {
  const metrics: Metrics = createMetrics(false);
  const logs: string[] = [];
  const path = join(dir, `${Math.random().toString(36).slice(2)}.sock`);
  listener = await listen(
    parseListenAddress(`unix:${path}`),
    'policy',
    createPolicyHandler({
      service: opts.service ?? dunnoService,
      loaded: () => opts.loaded ?? true,
      logger: createLogger('debug', (l) => logs.push(l)),
      metrics,
    }),
    { maxConnections: 50, idleTimeoutMs: 60_000, requestTimeoutMs: opts.requestTimeoutMs ?? 10_000 },
    { mode: 0o600, group: '' },
    createLogger('error'),
    {},
    opts.clock,
  );
  const client = async () => {
    const s: Socket = connect(path);
    s.on('error', () => {});
    let text = '';
    s.on('data', (d: Buffer) => (text += d.toString('utf8')));
    let closed = false;
    const whenClosed = new Promise<void>((r) => s.once('close', () => r()));
    s.once('close', () => (closed = true));
    await new Promise<void>((r, j) => {
      s.once('connect', () => r());
      s.once('error', j);
    });
    /** Waits for `n` replies (bounded), returns the actions. */
    const replies = async (n: number) => {
      for (let i = 0; i < 400 && text.split('\n\n').length - 1 < n && !closed; i++) await new Promise((r) => setTimeout(r, 5));
      return text
        .split('\n\n')
        .slice(0, -1)
        .map((r) => r.replace(/^action=/, ''));
    };
    return { s, replies, whenClosed, closed: () => closed, text: () => text };
  };
  return { client, metrics, logs };
}

describe('the door', () => {
  it('answers many requests on one connection, in order, whether pipelined or split anywhere', async () => {
    const seen: string[] = [];
    const { client } = await door({
      service: {
        answer: (r) => {
          seen.push(r.get('recipient') ?? '');
          return r.get('recipient') === 'full@example.org' ? '552 5.2.2 Mailbox full' : 'DUNNO';
        },
      },
    });
    const c = await client();
    c.s.write(rcpt('a@example.org') + rcpt('full@example.org'));
    expect(await c.replies(2)).toEqual(['DUNNO', '552 5.2.2 Mailbox full']);
    const third = rcpt('b@example.org');
    for (const piece of [third.slice(0, 7), third.slice(7, 40), third.slice(40)]) {
      c.s.write(piece);
      await settle();
    }
    expect(await c.replies(3)).toEqual(['DUNNO', '552 5.2.2 Mailbox full', 'DUNNO']);
    expect(seen).toEqual(['a@example.org', 'full@example.org', 'b@example.org']);
    expect(c.closed()).toBe(false); // the connection stays for the next request
    c.s.destroy();
  });

  it('answers DUNNO while the directory is not loaded, without asking the service', async () => {
    let asked = 0;
    const { client } = await door({
      loaded: false,
      service: {
        answer: () => {
          asked++;
          return 'REJECT';
        },
      },
    });
    const c = await client();
    c.s.write(rcpt('a@example.org'));
    expect(await c.replies(1)).toEqual(['DUNNO']);
    expect(asked).toBe(0);
    c.s.destroy();
  });

  it('answers DUNNO when the service throws or answers something Postfix could not read, and logs it', async () => {
    const answers = [
      () => {
        throw new Error('boom');
      },
      () => 'REJECT\naction=OK',
      () => '',
    ];
    let i = 0;
    const { client, logs } = await door({ service: { answer: () => answers[i++]!() } });
    const c = await client();
    c.s.write(rcpt('a@example.org') + rcpt('b@example.org') + rcpt('c@example.org'));
    expect(await c.replies(3)).toEqual(['DUNNO', 'DUNNO', 'DUNNO']);
    expect(logs.filter((l) => l.includes('answering DUNNO'))).toHaveLength(3);
    c.s.destroy();
  });

  it('closes only the connection that sends garbage, after answering its good requests, and counts it', async () => {
    const { client, metrics } = await door();
    const good = await client();
    const bad = await client();
    bad.s.write(rcpt('a@example.org') + 'GET / HTTP/1.0\r\n\r\n');
    await bad.whenClosed;
    expect(bad.text()).toBe('action=DUNNO\n\n');
    expect(await metrics.registry.metrics()).toMatch(/mailmapd_connections_bad_input_total\{listener="policy",reason="malformed"\} 1/);
    good.s.write(rcpt('b@example.org'));
    expect(await good.replies(1)).toEqual(['DUNNO']);
    good.s.destroy();
  });

  it('closes a request that is not complete within the request deadline, and only that connection', async () => {
    const { clock, advance } = fakeClock();
    const { client, metrics } = await door({ clock, requestTimeoutMs: 2000 });
    const slow = await client();
    const quick = await client();
    slow.s.write('request=smtpd_access_policy\nprotocol_state=RCPT\n');
    await settle();
    advance(1999);
    await settle();
    expect(slow.closed()).toBe(false);
    advance(1);
    await slow.whenClosed;
    expect(await metrics.registry.metrics()).toMatch(/reason="request_timeout"\} 1/);
    quick.s.write(rcpt('a@example.org'));
    expect(await quick.replies(1)).toEqual(['DUNNO']);
    quick.s.destroy();
  });

  it('a raw-protocol fuzz: requests split anywhere and garbage never crash it, every valid request gets its reply', async () => {
    const onError = (err: unknown) => {
      throw err;
    };
    process.on('uncaughtException', onError);
    const { client } = await door({ service: { answer: (r) => `DUNNO ${r.get('n') ?? ''}`.trim() } });
    try {
      const attr = fc.tuple(
        fc.stringMatching(/^[a-z_]{1,12}$/),
        fc.string({ maxLength: 40 }).map((v) => v.replace(/[\n\0]/g, ' ')),
      );
      const req = fc.array(attr, { maxLength: 8 });
      await fc.assert(
        fc.asyncProperty(
          fc.array(req, { minLength: 1, maxLength: 5 }),
          fc.array(fc.nat(400), { maxLength: 6 }),
          fc.option(fc.uint8Array({ minLength: 1, maxLength: 300 }), { nil: undefined }),
          async (reqs, cuts, garbage) => {
            // Valid requests, each tagged with its index, cut at random places.
            const text = Buffer.from(
              reqs
                .map((attrs, n) =>
                  request({
                    ...Object.fromEntries(attrs.filter(([k]) => k !== 'n')),
                    n: String(n),
                  }),
                )
                .join(''),
            );
            const c = await client();
            let at = 0;
            for (const cut of [...cuts].sort((a, b) => a - b)) {
              const to = Math.min(cut, text.length);
              if (to > at) c.s.write(text.subarray(at, to));
              at = Math.max(at, to);
              await new Promise((r) => setImmediate(r));
            }
            if (at < text.length) c.s.write(text.subarray(at));
            const want = reqs.map((_, n) => `DUNNO ${n}`);
            expect(await c.replies(reqs.length)).toEqual(want);
            if (garbage !== undefined) {
              c.s.write(Buffer.from(garbage));
              await Promise.race([c.whenClosed, new Promise((r) => setTimeout(r, 20))]);
            }
            c.s.destroy();
            const probe = await client();
            probe.s.write(request({ n: '7' }));
            expect(await probe.replies(1)).toEqual(['DUNNO 7']);
            probe.s.destroy();
          },
        ),
        { numRuns: 60 },
      );
    } finally {
      process.off('uncaughtException', onError);
    }
  });
});
