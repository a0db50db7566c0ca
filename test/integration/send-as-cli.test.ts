// `mailmapd send-as` and `mailmapd bcc` as a person types them: what they write, what they
// print, and that bad input is one line on stderr, exit 2, with nothing written.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cli.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';

const cli = (url: string, args: string[]) => runCli(url, args, { trim: true });

describe('send-as and bcc commands', { timeout: 180_000 }, () => {
  let db: TestDatabase;
  const run = (...args: string[]) => cli(db.url, args);
  const rows = async (table: string) =>
    (await db.sql.query(`SELECT * FROM mailmapd.${table} ORDER BY 1, 2`)).rows.map((r) => Object.values(r).slice(0, 3).join(' '));

  beforeAll(async () => {
    db = await createTestDatabase();
    await db.sql.query(`INSERT INTO mailmapd.domains (name) VALUES ('example.org');
      INSERT INTO mailmapd.mailboxes (address, password) VALUES ('alice@example.org', '{PLAIN}x'), ('bob@example.org', '{PLAIN}x')`);
  });
  afterAll(async () => db?.drop());

  it('send-as add, list, rm', async () => {
    expect(await run('send-as', 'add', 'Alice@Example.org', 'CEO@example.org')).toMatchObject({
      code: 0,
      out: 'alice@example.org may send as ceo@example.org',
    });
    expect((await run('send-as', 'add', 'bob@example.org', '@partner.test', '--inactive')).code).toBe(0);
    expect(await rows('send_as')).toEqual(['alice@example.org ceo@example.org true', 'bob@example.org @partner.test false']);
    expect((await run('send-as', 'list')).out).toBe('alice@example.org -> ceo@example.org\nbob@example.org -> @partner.test (inactive)');
    expect((await run('send-as', 'list', 'partner.test')).out).toBe('bob@example.org -> @partner.test (inactive)');
    expect((await run('send-as', 'list', 'ceo@example.org')).out).toBe('alice@example.org -> ceo@example.org');
    expect(await run('send-as', 'rm', 'bob@example.org', '@partner.test')).toMatchObject({
      code: 0,
      out: 'bob@example.org may no longer send as @partner.test',
    });
    const again = await run('send-as', 'rm', 'bob@example.org', '@partner.test');
    expect(again.code).toBe(1);
    expect(again.err).toBe('mailmapd: no such grant: bob@example.org may not send as @partner.test');
  });

  it('bcc add, list, rm', async () => {
    expect(await run('bcc', 'add', 'recipient', '@example.org', 'Archive@example.net')).toMatchObject({
      code: 0,
      out: 'mail to @example.org is copied to archive@example.net',
    });
    expect((await run('bcc', 'add', 'sender', 'alice@example.org', 'alice-sent@example.org')).code).toBe(0);
    expect((await run('bcc', 'list')).out).toBe('recipient @example.org -> archive@example.net\nsender alice@example.org -> alice-sent@example.org');
    expect((await run('bcc', 'rm', 'sender', 'alice@example.org')).code).toBe(0);
    expect((await run('bcc', 'rm', 'sender', 'alice@example.org')).code).toBe(1);
    expect(await rows('bcc')).toEqual(['@example.org recipient archive@example.net']);
  });

  it('bad input: one line on stderr, exit 2, nothing written', async () => {
    const before = [await rows('send_as'), await rows('bcc')];
    const bad: [string[], RegExp][] = [
      [['send-as', 'add', 'nobody@example.org', 'x@example.org'], /no such mailbox: nobody@example\.org/],
      [['send-as', 'add', 'alice@example.org', 'no-at-sign'], /not an address/],
      [['send-as', 'add', 'alice@example.org'], /usage: mailmapd send-as add/],
      [['send-as', 'add', 'alice@example.org', 'x@example.org', 'y@example.org'], /usage/],
      [['send-as', 'add', 'alice@example.org', 'x@example.org', '--bogus'], /unknown option --bogus/],
      [['send-as', 'add', 'alice@example.org', 'ceo@example.org'], /already exists/],
      [['send-as', 'frob'], /usage: mailmapd send-as/],
      [['bcc', 'add', 'both', 'alice@example.org', 'x@example.org'], /no direction/],
      [['bcc', 'add', 'sender', 'alice@example.org', '@example.org'], /empty local part/],
      [['bcc', 'add', 'recipient', '@example.org', 'again@example.org'], /already exists/],
      [['bcc', 'rm', 'sender'], /usage/],
    ];
    // None of them writes, so they may run side by side.
    const results = await Promise.all(bad.map(([args]) => run(...args)));
    bad.forEach(([args, message], i) => {
      const r = results[i]!;
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.err.split('\n'), args.join(' ')).toHaveLength(1);
      expect(r.err, args.join(' ')).toMatch(message);
    });
    expect([await rows('send_as'), await rows('bcc')]).toEqual(before);
  });
});
