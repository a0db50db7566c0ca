// Sending limits set from the command line (`mailbox set --send-limit-hour`, `domain set`):
// what they write and print, bad input refused with nothing written, and a running daemon's
// policy door deferring at the limit the command set — as an administrator would check it.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, startDaemon, type Daemon } from '../helpers/daemon.js';
import { runCli } from '../helpers/cli.js';
import { createTestDatabase, waitFor, type TestDatabase } from '../helpers/db.js';
import { askPolicy } from '../helpers/policy-door.js';

const cli = (url: string, args: string[]) => runCli(url, args, { trim: true });

const ask = askPolicy;

describe('sending limits from the command line', { timeout: 180_000 }, () => {
  let db: TestDatabase;
  let daemon: Daemon;
  let policyPort: number;
  const run = (...args: string[]) => cli(db.url, args);
  const columns = async (sql: string) => (await db.sql.query(sql)).rows[0];

  beforeAll(async () => {
    db = await createTestDatabase();
    await db.sql.query(`INSERT INTO mailmapd.domains (name) VALUES ('example.org');
      INSERT INTO mailmapd.mailboxes (address, password) VALUES ('alice@example.org', '{PLAIN}x')`);
    policyPort = await freePort();
    daemon = await startDaemon({ databaseUrl: db.url, config: { policy_listen: `inet:127.0.0.1:${policyPort}` } });
  });
  afterAll(async () => {
    await daemon?.stop();
    await db?.drop();
  });

  it('mailbox set writes the mailbox own limits and prints them; default gives the choice back', async () => {
    expect(await run('mailbox', 'set', 'Alice@example.org', '--send-limit-hour', '2', '--send-limit-day=0')).toMatchObject({
      code: 0,
      out: 'alice@example.org: disabled services none; maintenance off; sending limits per hour 2, per day none',
    });
    expect(await columns(`SELECT send_limit_hour, send_limit_day FROM mailmapd.mailboxes`)).toEqual({ send_limit_hour: 2, send_limit_day: 0 });
    expect((await run('mailbox', 'set', 'alice@example.org', '--send-limit-day', 'default')).out).toMatch(/per hour 2, per day default$/);
    expect(await columns(`SELECT send_limit_day FROM mailmapd.mailboxes`)).toEqual({ send_limit_day: null });
  });

  it('domain set writes the total and the mailbox defaults; none and default clear them', async () => {
    expect(await run('domain', 'set', 'example.org', '--send-limit-day', '500', '--mailbox-send-limit-hour', '50')).toMatchObject({
      code: 0,
      out: 'example.org: total per day 500; each mailbox per hour 50, per day default',
    });
    expect(await columns(`SELECT send_limit_day, mailbox_send_limit_hour, mailbox_send_limit_day FROM mailmapd.domains`)).toEqual({
      send_limit_day: 500,
      mailbox_send_limit_hour: 50,
      mailbox_send_limit_day: null,
    });
    expect((await run('domain', 'set', 'example.org', '--send-limit-day', 'none')).out).toMatch(/total per day none;/);
  });

  it('bad values and unknown names are refused, with nothing written', async () => {
    for (const args of [
      ['mailbox', 'set', 'alice@example.org', '--send-limit-hour', '-1'],
      ['mailbox', 'set', 'alice@example.org', '--send-limit-hour', 'none'],
      ['domain', 'set', 'example.org', '--send-limit-day', 'default'],
      ['domain', 'set', 'example.org'],
    ]) {
      const r = await run(...args);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.err).toMatch(/^mailmapd: /);
    }
    expect((await run('domain', 'set', 'nosuch.example', '--send-limit-day', '5')).code).toBe(2);
    expect(await columns(`SELECT send_limit_hour FROM mailmapd.mailboxes`)).toEqual({ send_limit_hour: 2 });
  });

  it('the running daemon defers the sender at the limit the command set', async () => {
    const sender = { protocol_name: 'ESMTP', sasl_username: 'alice@example.org', sender: 'alice@example.org' };
    // Two messages of one recipient each: the limit of 2 per hour is then reached.
    for (let i = 0; i < 2; i++) {
      await waitFor(
        async () => (await ask(policyPort, { ...sender, protocol_state: 'RCPT', recipient: `r${i}@remote.test`, recipient_count: '0' })) === 'DUNNO',
        10_000,
        'RCPT accepted',
      );
      expect(await ask(policyPort, { ...sender, protocol_state: 'END-OF-MESSAGE', recipient: '', recipient_count: '1' })).toBe('DUNNO');
    }
    const third = await ask(policyPort, { ...sender, protocol_state: 'RCPT', recipient: 'r3@remote.test', recipient_count: '0' });
    expect(third).toMatch(/^4\d\d 4\.7\.\d .*2 recipients per hour/);
  });
});
