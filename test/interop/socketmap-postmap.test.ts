// The socketmap server as Postfix itself sees it: the real `postmap -q KEY
// socketmap:inet:127.0.0.1:PORT:NAME` and `postmap -q - … < keys` against a listener started
// here, for every map and every rule of the contract (test/helpers/socketmap-fixture.ts),
// plus TEMP before the first load, the 100000-byte reply limit as Postfix enforces it, and
// the main.cf lines `mailmapd postfix-config` prints. Fails, never skips, without postmap.

import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfigText } from '../../src/config.js';
import { parseListenAddress } from '../../src/net/listen-address.js';
import { postfixConfig } from '../../src/cli/postfix-config.js';
import { POSTMAP, postmap, type PostmapRun as Run } from '../helpers/postfix.js';
import { atLimit, cases, keyBytes, startSocketmap, type Case, type Server } from '../helpers/socketmap-fixture.js';

const table = (s: Server, map: string) => `socketmap:inet:127.0.0.1:${s.port}:${map}`;

/** What `postmap -q KEY` must do for a reply: print the value (0), nothing (1), or fail loudly (1). */
function expectSingle(r: Run, c: Case) {
  const label = `${c.map} ${JSON.stringify(c.key.toString())} (${c.rule})`;
  if (c.reply.startsWith('OK ')) {
    expect({ label, code: r.code, out: r.stdout.toString('utf8') }).toEqual({ label, code: 0, out: `${c.reply.slice(3)}\n` });
  } else if (c.reply === 'TEMP') {
    expect({ label, code: r.code }).toEqual({ label, code: 1 });
    expect(r.stderr, label).toMatch(/socketmap server temporary error/);
    expect(r.stderr, label).toMatch(/fatal: table .*: query error/);
  } else {
    expect({ label, code: r.code, out: r.stdout.toString(), err: r.stderr }).toEqual({ label, code: 1, out: '', err: '' });
  }
}

it('postmap is installed (these interop tests must run, not skip)', () => {
  expect(existsSync(POSTMAP), `${POSTMAP} is missing: install Debian's postfix package`).toBe(true);
});

describe('postmap -q against a loaded directory', () => {
  let server: Server;
  beforeAll(async () => {
    server = await startSocketmap();
  });
  afterAll(() => server?.close());

  // Keys that are not valid UTF-8 cannot travel in argv from here; they go through stdin below.
  for (const c of cases.filter((c) => typeof c.key === 'string')) {
    it(`${c.map} ${JSON.stringify(c.key.toString().slice(0, 40))}: ${c.rule} → ${c.reply.slice(0, 40)}`, async () => {
      expectSingle(await postmap(['-q', c.key as string, table(server, c.map)]), c);
    });
  }

  for (const map of ['domains', 'mailboxes', 'aliases', 'senders']) {
    it(`postmap -q - ${map} < keys answers every key of the batch over one connection`, async () => {
      // TEMP aborts a postmap batch (tested separately); empty lines are skipped by postmap;
      // non-UTF-8 keys are refused by postmap itself while smtputf8_enable = yes (below).
      const batch = cases.filter((c) => c.map === map && c.reply !== 'TEMP' && keyBytes(c.key).length > 0 && typeof c.key === 'string');
      expect(batch.length).toBeGreaterThan(4);
      const input = Buffer.concat(batch.flatMap((c) => [keyBytes(c.key), Buffer.from('\n')]));
      const r = await postmap(['-q', '-', table(server, map)], input);
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      const expected = Buffer.concat(batch.filter((c) => c.reply.startsWith('OK ')).flatMap((c) => [keyBytes(c.key), Buffer.from(`\t${c.reply.slice(3)}\n`)]));
      expect(r.stdout.toString('latin1')).toBe(expected.toString('latin1'));
    });
  }

  it('with smtputf8_enable = no Postfix passes non-UTF-8 bytes on, and they get normal answers', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mailmapd-postfix-'));
    try {
      writeFileSync(join(dir, 'main.cf'), 'compatibility_level = 3.6\nsmtputf8_enable = no\n');
      const odd = cases.filter((c) => typeof c.key !== 'string');
      expect(odd.length).toBeGreaterThan(1);
      for (const c of odd) {
        const r = await postmap(['-c', dir, '-q', '-', table(server, c.map)], Buffer.concat([keyBytes(c.key), Buffer.from('\n')]));
        const expected = c.reply.startsWith('OK ') ? Buffer.concat([keyBytes(c.key), Buffer.from(`\t${c.reply.slice(3)}\n`)]) : Buffer.alloc(0);
        expect({ rule: c.rule, code: r.code, err: r.stderr, out: r.stdout.toString('latin1') }).toEqual({
          rule: c.rule,
          code: c.reply.startsWith('OK ') ? 0 : 1, // postmap -q - exits 1 when no key was found
          err: '',
          out: expected.toString('latin1'),
        });
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a reply of exactly 100000 bytes reaches postmap whole; one byte more is a TEMP, never a truncated list', async () => {
    const edge = await postmap(['-q', 'edge@example.org', table(server, 'aliases')]);
    expect(edge.code).toBe(0);
    expect(edge.stdout.toString()).toBe(`${atLimit}\n`);
    const huge = await postmap(['-q', 'huge@example.org', table(server, 'aliases')]);
    expect(huge.code).toBe(1);
    expect(huge.stdout.length).toBe(0);
    expect(huge.stderr).toMatch(/temporary error: reply too long/);
  });

  it('a TEMP in the middle of a postmap -q - batch stops it with an error, not a silent "not found"', async () => {
    const r = await postmap(['-q', '-', table(server, 'aliases')], Buffer.from('info@example.org\nhuge@example.org\nalice@example.org\n'));
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/temporary error: reply too long/);
    expect(r.stderr).toMatch(/query error/);
    // postmap dies at the TEMP: the key after it is never answered.
    expect(r.stdout.toString()).not.toContain('alice@example.org\talice@example.org');
  });

  it('an unknown map name is a temporary error in Postfix', async () => {
    const r = await postmap(['-q', 'alice@example.org', table(server, 'mailbox')]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/temporary error: unknown map mailbox/);
  });
});

describe('postmap -q before the directory has loaded', () => {
  let server: Server;
  beforeAll(async () => {
    server = await startSocketmap({ loaded: false });
  });
  afterAll(() => server?.close());

  it('every map is a temporary failure, never "not found"', async () => {
    for (const map of ['domains', 'mailboxes', 'aliases', 'senders']) {
      const r = await postmap(['-q', 'alice@example.org', table(server, map)]);
      expect({ map, code: r.code, out: r.stdout.toString() }).toEqual({ map, code: 1, out: '' });
      expect(r.stderr).toMatch(/temporary error: directory not loaded/);
    }
  });

  it('answers as soon as the directory loads, on the same listener', async () => {
    const { fixtureData } = await import('../helpers/socketmap-fixture.js');
    server.directory.replaceAll(fixtureData());
    const r = await postmap(['-q', 'alice@example.org', table(server, 'mailboxes')]);
    expect(r).toMatchObject({ code: 0 });
    expect(r.stdout.toString()).toBe('example.org/alice/\n');
  });
});

describe('the main.cf lines of `mailmapd postfix-config` work in postmap', () => {
  const maps: Record<string, [string, string]> = {
    virtual_mailbox_domains: ['example.org', 'example.org'],
    virtual_mailbox_maps: ['alice+x@example.org', 'example.org/alice/'],
    virtual_alias_maps: ['anyone@example.net', 'alice@example.org'],
    smtpd_sender_login_maps: ['info@example.org', 'alice@example.org,dave@example.net'],
    transport_maps: ['x+y@relay.example', 'smtp:[mx.relay.example]'],
    relay_domains: ['relay.example', 'relay.example'],
    relay_recipient_maps: ['x@relay.example', 'x@relay.example'],
    sender_dependent_relayhost_maps: ['alice+list@example.org', '[smtp.example.net]:587'],
  };
  // Printed for a UNIX listener only: credentials are not answered on a loopback port.
  const unixOnly: Record<string, [string, string]> = { smtp_sasl_password_maps: ['alice@example.org', 'alice:relay-pw'] };
  const parse = (text: string) => new Map([...text.matchAll(/^(\w+) = (\S+)$/gm)].map((m) => [m[1]!, m[2]!]));

  it('inet listener: the printed tables answer', async () => {
    const server = await startSocketmap();
    try {
      const text = postfixConfig(parseConfigText(`socketmap_listen = inet:127.0.0.1:${server.port}\nrecipient_delimiter = +\n`, 'test.conf'));
      const lines = parse(text);
      // The tables, and delivery through Dovecot's LMTP (Postfix's virtual(8) refuses socketmap
      // tables; postfix-delivery.test.ts delivers with these lines through a real Postfix).
      expect(lines.get('virtual_transport')).toBe('lmtp:unix:private/dovecot-lmtp');
      lines.delete('virtual_transport');
      expect([...lines.keys()].sort()).toEqual(Object.keys(maps).sort());
      expect(text).toMatch(/^# .*recipient_delimiter = \+/m);
      for (const [param, [key, value]] of Object.entries(maps)) {
        expect(lines.get(param)).toMatch(/^socketmap:inet:127\.0\.0\.1:\d+:\w+$/);
        const r = await postmap(['-q', key, lines.get(param)!]);
        expect({ param, code: r.code, out: r.stdout.toString() }).toEqual({ param, code: 0, out: `${value}\n` });
      }
    } finally {
      await server.close();
    }
  });

  it('unix listener: proxy: tables (for the chroot) whose socketmap part answers', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mailmapd-sm-'));
    const path = join(dir, 'socketmap');
    const server = await startSocketmap({ address: parseListenAddress(`unix:${path}`) });
    try {
      const text = postfixConfig(parseConfigText(`socketmap_listen = unix:${path}\n`, 'test.conf'));
      expect(text).toMatch(/proxy_read_maps/);
      const lines = parse(text);
      for (const [param, [key, value]] of Object.entries({ ...maps, ...unixOnly })) {
        const t = lines.get(param)!;
        expect(t.startsWith(`proxy:socketmap:unix:${path}:`)).toBe(true);
        // Here without a running Postfix, the table proxymap would open is the part after
        // proxy:; postfix-delivery.test.ts goes through a real proxymap.
        const r = await postmap(['-q', key, t.slice('proxy:'.length)]);
        expect({ param, code: r.code, out: r.stdout.toString() }).toEqual({ param, code: 0, out: `${value}\n` });
      }
    } finally {
      await server.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
