// The policy service's decisions from memory, with an injected clock: sliding hour and day
// windows, the limits' precedence (mailbox, domain default, config), the domain total,
// recipients per message, logins resolved like logins, the alarm raised once; quota at
// RCPT through extensions, alias domains, the catch-all, aliases of aliases and many
// destinations; DUNNO for whatever cannot be decided.

import { describe, expect, it } from 'vitest';
import { Registry } from 'prom-client';
import { createDirectory, emptyData, type DirectoryData } from '../../src/directory/directory.js';
import { createLogger } from '../../src/log.js';
import { createPolicyMetrics } from '../../src/smtpd-policy/metrics.js';
import { createSendCounts, minuteOf } from '../../src/smtpd-policy/send-counts.js';
import { createPolicyService, DUNNO } from '../../src/smtpd-policy/service.js';
import { quotaBound, reach } from '../../src/smtpd-policy/quota.js';

const MIN = 60_000;

function data(): DirectoryData {
  const d = emptyData();
  d.domains.set('example.org', true);
  d.domains.set('limited.test', true);
  d.aliasDomains.set('alias.test', { target: 'example.org', active: true });
  const mb = (quotaBytes = 0, sendLimits?: { hour: number | null; day: number | null }) => ({
    password: '{PLAIN}x',
    quotaBytes,
    active: true,
    ...(sendLimits ? { sendLimits } : {}),
  });
  d.mailboxes.set('alice@example.org', mb(1000));
  d.mailboxes.set('bob@example.org', mb(1000));
  d.mailboxes.set('carol@example.org', mb(0));
  d.mailboxes.set('own@limited.test', mb(0, { hour: 3, day: null }));
  d.mailboxes.set('dflt@limited.test', mb(0));
  d.mailboxes.set('other@limited.test', mb(0));
  d.aliases.set('info@example.org', 'alice@example.org');
  d.aliases.set('team@example.org', 'alice@example.org,bob@example.org');
  d.aliases.set('mixed@example.org', 'alice@example.org,carol@example.org');
  d.aliases.set('away@example.org', 'alice@example.org,someone@remote.test');
  d.aliases.set('chain@example.org', 'info@example.org');
  d.aliases.set('@limited.test', 'bob@example.org');
  d.routes.set('send_limits:limited.test', '5,,8');
  return d;
}

function setup(opts: { usage?: Record<string, number>; hour?: number; day?: number; maxRecipients?: number } = {}) {
  let clock = Date.UTC(2026, 0, 1, 12, 0, 0);
  const directory = createDirectory({ recipientDelimiter: '+' });
  directory.replaceAll(data());
  const counts = createSendCounts();
  const lines: string[] = [];
  const registry = new Registry();
  const metrics = createPolicyMetrics(registry);
  const usage = new Map(Object.entries(opts.usage ?? {}));
  const service = createPolicyService({
    directory,
    counts,
    usage: (m) => usage.get(m),
    limits: () => ({ hour: opts.hour ?? 0, day: opts.day ?? 0, maxRecipients: opts.maxRecipients ?? 0 }),
    quotaGrace: () => ({ percent: 10, bytes: 0 }),
    logger: createLogger('debug', (l) => lines.push(l)),
    metrics,
    now: () => clock,
  });
  let instance = 0;
  const ask = (attrs: Record<string, string>) => service.answer(new Map(Object.entries({ request: 'smtpd_access_policy', ...attrs })));
  /** One message: RCPT per recipient, END-OF-MESSAGE counting those let through. */
  const send = (login: string, recipients: string[]) => {
    const id = `i${++instance}`;
    const answers = recipients.map((r) => ask({ protocol_state: 'RCPT', sasl_username: login, recipient: r, instance: id }));
    const accepted = answers.filter((a) => a === DUNNO).length;
    if (accepted > 0) ask({ protocol_state: 'END-OF-MESSAGE', sasl_username: login, recipient_count: String(accepted), instance: id });
    return answers;
  };
  const rcpts = (n: number) => Array.from({ length: n }, (_, i) => `r${i}@remote.test`);
  return { ask, send, rcpts, counts, service, lines, registry, usage, tick: (ms: number) => (clock += ms), now: () => clock };
}

describe('sending limits', () => {
  it('defers the recipient that would pass the hour limit, names it, and slides', () => {
    const t = setup({ hour: 10 });
    expect(t.send('alice@example.org', t.rcpts(4)).every((a) => a === DUNNO)).toBe(true);
    t.tick(20 * MIN);
    expect(t.send('alice@example.org', t.rcpts(4)).every((a) => a === DUNNO)).toBe(true);
    t.tick(20 * MIN);
    const answers = t.send('alice@example.org', t.rcpts(4));
    expect(answers.slice(0, 2)).toEqual([DUNNO, DUNNO]);
    expect(answers[2]).toMatch(/^450 4\.7\.1 .*10 recipients per hour for alice@example\.org/);
    expect(answers[3]).toBe(answers[2]);
    // 61 minutes after the first 4, those have left the window: 4 free.
    t.tick(21 * MIN);
    expect(t.send('alice@example.org', t.rcpts(5))).toEqual([DUNNO, DUNNO, DUNNO, DUNNO, expect.stringMatching(/^450 4\.7\.1/)]);
  });

  it('counts only what END-OF-MESSAGE reports: a message abandoned before DATA counts nothing', () => {
    const t = setup({ hour: 3 });
    for (let i = 0; i < 5; i++)
      expect(t.ask({ protocol_state: 'RCPT', sasl_username: 'alice@example.org', recipient: 'x@remote.test', instance: `gone${i}` })).toBe(DUNNO);
    expect(t.counts.sum('alice@example.org', minuteOf(t.now()), 60)).toBe(0);
    t.ask({ protocol_state: 'END-OF-MESSAGE', sasl_username: 'alice@example.org', recipient_count: '30', instance: 'x' });
    expect(t.counts.sum('alice@example.org', minuteOf(t.now()), 60)).toBe(30);
    expect(t.counts.sum('@example.org', minuteOf(t.now()), 1440)).toBe(30);
  });

  it('the day window holds after the hour has passed', () => {
    const t = setup({ hour: 100, day: 6 });
    expect(t.send('alice@example.org', t.rcpts(5)).filter((a) => a === DUNNO)).toHaveLength(5);
    t.tick(5 * 60 * MIN);
    expect(t.send('alice@example.org', t.rcpts(2))[1]).toMatch(/6 recipients per day for alice@example\.org/);
    t.tick(19 * 60 * MIN);
    expect(t.send('alice@example.org', t.rcpts(2))).toEqual([DUNNO, DUNNO]);
  });

  it('mailbox limit before the domain default before the config', () => {
    const t = setup({ hour: 100 });
    expect(t.send('own@limited.test', t.rcpts(4))[3]).toMatch(/3 recipients per hour for own@limited\.test/);
    expect(t.send('dflt@limited.test', t.rcpts(6))[5]).toMatch(/5 recipients per hour for dflt@limited\.test/);
    expect(t.send('carol@example.org', t.rcpts(50)).every((a) => a === DUNNO)).toBe(true);
  });

  it('the domain total holds across two mailboxes', () => {
    const t = setup();
    // limited.test: 8 a day in all; each mailbox 5 an hour by the domain default.
    expect(t.send('dflt@limited.test', t.rcpts(5)).every((a) => a === DUNNO)).toBe(true);
    const answers = t.send('other@limited.test', t.rcpts(5));
    expect(answers.slice(0, 3)).toEqual([DUNNO, DUNNO, DUNNO]);
    expect(answers[3]).toMatch(/8 recipients per day for the domain limited\.test/);
  });

  it('cuts a message at send_max_recipients', () => {
    const t = setup({ maxRecipients: 3 });
    const answers = t.send('alice@example.org', t.rcpts(5));
    expect(answers.slice(0, 3)).toEqual([DUNNO, DUNNO, DUNNO]);
    expect(answers[3]).toMatch(/^450 4\.7\.1 .*at most 3 recipients per message/);
    // the next message starts afresh
    expect(t.send('alice@example.org', t.rcpts(3))).toEqual([DUNNO, DUNNO, DUNNO]);
  });

  it('a login in an alias domain, in any case, counts for its mailbox', () => {
    const t = setup({ hour: 4 });
    t.send('Alice@Alias.TEST', t.rcpts(3));
    expect(t.counts.sum('alice@example.org', minuteOf(t.now()), 60)).toBe(3);
    expect(t.send('ALICE@example.org', t.rcpts(2))[1]).toMatch(/4 recipients per hour for alice@example\.org/);
  });

  it('limits neither inbound mail nor unknown logins', () => {
    const t = setup({ hour: 1 });
    for (let i = 0; i < 5; i++) t.ask({ protocol_state: 'END-OF-MESSAGE', recipient_count: '5', instance: `in${i}` });
    expect(t.send('', t.rcpts(3))).toEqual([DUNNO, DUNNO, DUNNO]);
    expect(t.send('nobody@example.org', t.rcpts(3))).toEqual([DUNNO, DUNNO, DUNNO]);
  });

  it('raises the alarm once per window: one log line and one metric', async () => {
    const t = setup({ hour: 2 });
    t.send('alice@example.org', t.rcpts(5));
    t.send('alice@example.org', t.rcpts(5));
    const alarms = t.lines.filter((l) => l.includes('sending limit reached'));
    expect(alarms).toHaveLength(1);
    expect(alarms[0]).toMatch(/mailbox=alice@example\.org limit=hour value=2/);
    expect(await t.registry.getSingleMetricAsString('mailmapd_send_limit_reached_total')).toMatch(/scope="mailbox",limit="hour"} 1/);
    t.tick(61 * MIN);
    t.send('alice@example.org', t.rcpts(5));
    expect(t.lines.filter((l) => l.includes('sending limit reached'))).toHaveLength(2);
  });
});

describe('quota at RCPT', () => {
  // alice and bob: 1000 bytes of quota, 10% grace: full above 1100.
  const full = { 'alice@example.org': 1200, 'bob@example.org': 500 };
  const rcpt = (t: ReturnType<typeof setup>, recipient: string, size?: number) =>
    t.ask({ protocol_state: 'RCPT', recipient, ...(size !== undefined ? { size: String(size) } : {}) });

  it('refuses a full mailbox, by address, extension, alias, alias domain, chain and catch-all', () => {
    const t = setup({ usage: full });
    for (const r of ['alice@example.org', 'Alice+tag@Example.org', 'info@example.org', 'alice@alias.test', 'chain@example.org', 'info+x@alias.test']) {
      expect(rcpt(t, r), r).toBe(`552 5.2.2 <${r}>: mailbox is full`);
    }
    const t2 = setup({ usage: { 'bob@example.org': 5000 } });
    expect(rcpt(t2, 'anyone@limited.test')).toBe('552 5.2.2 <anyone@limited.test>: mailbox is full');
  });

  it('counts the grace and the message size', () => {
    const t = setup({ usage: { 'bob@example.org': 1050 } });
    expect(quotaBound(1000, { percent: 10, bytes: 0 })).toBe(1100);
    expect(rcpt(t, 'bob@example.org')).toBe(DUNNO);
    expect(rcpt(t, 'bob@example.org', 50)).toBe(DUNNO);
    expect(rcpt(t, 'bob@example.org', 51)).toMatch(/^552 5\.2\.2/);
  });

  it('lets through what reaches any mailbox with room, a remote address, no quota, or nothing known', () => {
    const t = setup({ usage: { ...full, 'carol@example.org': 10 ** 12 } });
    expect(rcpt(t, 'team@example.org')).toBe(DUNNO); // bob has room
    expect(rcpt(t, 'mixed@example.org')).toBe(DUNNO); // carol has no quota
    expect(rcpt(t, 'away@example.org')).toBe(DUNNO); // forwarded off-site too
    expect(rcpt(t, 'someone@remote.test')).toBe(DUNNO);
    expect(rcpt(t, 'nobody@example.org')).toBe(DUNNO);
    const unreported = setup();
    expect(rcpt(unreported, 'alice@example.org')).toBe(DUNNO);
  });

  it('refuses an alias when every one of its mailboxes is full', () => {
    const t = setup({ usage: { 'alice@example.org': 2000, 'bob@example.org': 2000 } });
    expect(rcpt(t, 'team@example.org')).toMatch(/^552 5\.2\.2 <team@example\.org>/);
    expect([...reach(createDirectoryFrom(), 'team@example.org').local].sort()).toEqual(['alice@example.org', 'bob@example.org']);
  });

  it('checks the one recipient at END-OF-MESSAGE with the real size, and counts nothing refused', () => {
    const t = setup({ usage: { 'bob@example.org': 1000 } });
    expect(t.ask({ protocol_state: 'END-OF-MESSAGE', recipient_count: '1', recipient: 'bob@example.org', size: '200' })).toMatch(/^552 5\.2\.2/);
    expect(t.ask({ protocol_state: 'END-OF-MESSAGE', recipient_count: '1', recipient: 'bob@example.org', size: '20' })).toBe(DUNNO);
  });

  it('answers DUNNO before the directory is loaded and for requests it does not know', () => {
    const directory = createDirectory({ recipientDelimiter: '+' });
    const service = createPolicyService({
      directory,
      counts: createSendCounts(),
      usage: () => 10 ** 12,
      limits: () => ({ hour: 1, day: 1, maxRecipients: 1 }),
      quotaGrace: () => ({ percent: 0, bytes: 0 }),
      logger: createLogger('error', () => {}),
      metrics: createPolicyMetrics(new Registry()),
    });
    expect(
      service.answer(
        new Map([
          ['request', 'smtpd_access_policy'],
          ['protocol_state', 'RCPT'],
          ['recipient', 'alice@example.org'],
        ]),
      ),
    ).toBe(DUNNO);
    const t = setup({ usage: full });
    expect(t.ask({ protocol_state: 'MAIL', recipient: 'alice@example.org' })).toBe(DUNNO);
    expect(
      t.service.answer(
        new Map([
          ['protocol_state', 'RCPT'],
          ['recipient', 'alice@example.org'],
        ]),
      ),
    ).toBe(DUNNO);
  });
});

function createDirectoryFrom() {
  const d = createDirectory({ recipientDelimiter: '+' });
  d.replaceAll(data());
  return d;
}

describe('send counts', () => {
  it('keeps local counts until written, takes the database total after, and gives failed writes back', () => {
    const c = createSendCounts();
    c.add('a@x', 100, 3);
    c.stored('a@x', 100, 10); // other hosts' counts
    expect(c.sum('a@x', 100, 60)).toBe(13);
    const rows = c.take();
    expect(rows).toEqual([{ key: 'a@x', bucket: 100, count: 3 }]);
    expect(c.sum('a@x', 100, 60)).toBe(13);
    c.failed(rows, true);
    expect(c.pending()).toBe(1);
    expect(c.sum('a@x', 100, 60)).toBe(13);
    const again = c.take();
    c.written(again, [{ key: 'a@x', bucket: 100, count: 13 }]);
    expect(c.sum('a@x', 100, 60)).toBe(13);
    expect(c.pending()).toBe(0);
    expect(c.sum('a@x', 160, 60)).toBe(0);
    c.prune(101);
    expect([...c.keys()]).toEqual([]);
  });
});
