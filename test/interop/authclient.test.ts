// The auth-client socket against its two real clients' bytes: the handshake Postfix and
// doveadm expect, the exact AUTH lines Postfix 3.7 sends (PLAIN with resp=, LOGIN with
// CONT), PLAIN's authzid rules, the failure delay (which must not hold up anyone else),
// temporary failures, and the real `doveadm auth test -a SOCKET` for good, bad, unknown
// and inactive users and every password vector in test/vectors.

import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { emptyData } from '../../src/directory/directory.js';
import { fakeClock, settle } from '../helpers/clock.js';
import { waitFor } from '../helpers/db.js';
import { closePool, failingLogins, lineClient, plain, standardData, startDoors, type Doors } from '../helpers/logins.js';

afterAll(closePool);

const postfixHello = 'VERSION\t1\t0\nCPID\t4242\n';

function doveadm(args: string[]): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    execFile('doveadm', args, { timeout: 20_000 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : -1) : 0;
      resolve({ code, out: stdout + stderr });
    });
  });
}

describe('handshake and Postfix 3.7 bytes', () => {
  let doors: Doors;
  beforeAll(async () => {
    doors = await startDoors({ failureDelayMs: 300 });
  });
  afterAll(() => doors.close());

  it('greets with VERSION, MECH lines before SPID, CUID, a random COOKIE and DONE', async () => {
    const c = await lineClient(doors.authSocket);
    await c.waitFor((l) => l === 'DONE');
    const [version, mech1, mech2, spid, cuid, cookie, done] = c.lines;
    expect(version).toBe('VERSION\t1\t2');
    expect([mech1, mech2].sort()).toEqual(['MECH\tLOGIN\tplaintext', 'MECH\tPLAIN\tplaintext']);
    expect(spid).toMatch(/^SPID\t\d+$/);
    expect(cuid).toMatch(/^CUID\t\d+$/);
    expect(cookie).toMatch(/^COOKIE\t[0-9a-f]{32}$/);
    expect(done).toBe('DONE');
    const c2 = await lineClient(doors.authSocket);
    await c2.waitFor((l) => l === 'DONE');
    expect(c2.lines[5]).not.toBe(cookie);
    c.close();
    c2.close();
  });

  it('PLAIN with resp= as Postfix sends it: OK with user= (canonical, case folded)', async () => {
    const c = await lineClient(doors.authSocket);
    c.send(postfixHello + `AUTH\t1\tPLAIN\tservice=smtp\tnologin\tlip=127.0.0.1\trip=127.0.0.1\tresp=${plain('User@Example.ORG', 'secret')}\n`);
    expect(await c.waitFor((l) => l.startsWith('OK\t1') || l.startsWith('FAIL\t1'))).toBe('OK\t1\tuser=user@example.org');
    c.close();
  });

  it('PLAIN without an initial response: empty CONT, then the credentials', async () => {
    const c = await lineClient(doors.authSocket);
    c.send(postfixHello + 'AUTH\t4\tPLAIN\tservice=smtp\tnologin\tlip=127.0.0.1\trip=127.0.0.1\tresp=\n');
    expect(await c.waitFor((l) => /^(CONT|OK|FAIL)\t4\t/.test(l))).toBe('CONT\t4\t');
    c.send(`CONT\t4\t${plain('user@example.org', 'secret')}\n`);
    expect(await c.waitFor((l) => l.startsWith('OK\t4'))).toBe('OK\t4\tuser=user@example.org');
    c.close();
  });

  it('LOGIN: Username: and Password: prompts, then OK; an initial response is the username', async () => {
    const c = await lineClient(doors.authSocket);
    c.send(postfixHello + 'AUTH\t3\tLOGIN\tservice=smtp\tnologin\tlip=127.0.0.1\trip=127.0.0.1\n');
    expect(await c.waitFor((l) => l.startsWith('CONT\t3'))).toBe('CONT\t3\tVXNlcm5hbWU6');
    c.send(`CONT\t3\t${Buffer.from('user@example.org').toString('base64')}\n`);
    expect(await c.waitFor((l) => l === 'CONT\t3\tUGFzc3dvcmQ6')).toBeTruthy();
    c.send(`CONT\t3\t${Buffer.from('secret').toString('base64')}\n`);
    expect(await c.waitFor((l) => l.startsWith('OK\t3'))).toBe('OK\t3\tuser=user@example.org');

    c.send(`AUTH\t5\tLOGIN\tservice=smtp\tresp=${Buffer.from('user@example.org').toString('base64')}\n`);
    expect(await c.waitFor((l) => l.startsWith('CONT\t5'))).toBe('CONT\t5\tUGFzc3dvcmQ6');
    c.send(`CONT\t5\t${Buffer.from('wrong').toString('base64')}\n`);
    expect(await c.waitFor((l) => l.startsWith('FAIL\t5'))).toBe('FAIL\t5\tuser=user@example.org');
    c.close();
  });

  it('wrong password, unknown user, inactive mailbox and inactive domain all get the same FAIL', async () => {
    const c = await lineClient(doors.authSocket);
    const cases = failingLogins;
    c.send(postfixHello);
    for (const [i, [u, p]] of cases.entries()) c.send(`AUTH\t${i + 1}\tPLAIN\tservice=smtp\tnologin\tlip=127.0.0.1\trip=127.0.0.1\tresp=${plain(u, p)}\n`);
    for (const [i, [u]] of cases.entries()) {
      expect(await c.waitFor((l) => l.startsWith(`FAIL\t${i + 1}\t`) || l.startsWith(`OK\t${i + 1}\t`))).toBe(`FAIL\t${i + 1}\tuser=${u}`);
    }
    c.close();
  });

  it('PLAIN authzid: empty or equal to authcid is fine, anything else fails', async () => {
    const c = await lineClient(doors.authSocket);
    c.send(postfixHello);
    c.send(`AUTH\t1\tPLAIN\tservice=smtp\tresp=${plain('user@example.org', 'secret', 'user@example.org')}\n`);
    c.send(`AUTH\t2\tPLAIN\tservice=smtp\tresp=${plain('user@example.org', 'secret', 'crypt@example.org')}\n`);
    expect(await c.waitFor((l) => /^(OK|FAIL)\t1\t/.test(l))).toBe('OK\t1\tuser=user@example.org');
    expect(await c.waitFor((l) => /^(OK|FAIL)\t2\t/.test(l))).toMatch(/^FAIL\t2\tuser=user@example.org\treason=/);
    c.close();
  });

  it('bad base64 gets FAIL code=invalid_base64; CONT for a forgotten id gets FAIL', async () => {
    const c = await lineClient(doors.authSocket);
    c.send(postfixHello + 'AUTH\t7\tPLAIN\tservice=smtp\tno-penalty\tresp=!!!notbase64\n');
    expect(await c.waitFor((l) => l.startsWith('FAIL\t7'))).toBe('FAIL\t7\tcode=invalid_base64\treason=Invalid base64 data in initial response');
    c.send('CONT\t99\tAAAA\n');
    expect(await c.waitFor((l) => l.startsWith('FAIL\t99'))).toMatch(/^FAIL\t99\treason=/);
    c.close();
  });

  it('delays a FAIL without holding up other requests on the same or other connections', async () => {
    // Its own doors on a fake clock: the delay is advanced through, never waited for.
    const { clock, advance } = fakeClock();
    const own = await startDoors({ failureDelayMs: 300, clock });
    try {
      const a = await lineClient(own.authSocket);
      const b = await lineClient(own.authSocket);
      a.send(postfixHello);
      b.send(postfixHello);
      a.send(`AUTH\t1\tPLAIN\tservice=smtp\tresp=${plain('user@example.org', 'wrong')}\n`);
      a.send(`AUTH\t2\tPLAIN\tservice=smtp\tresp=${plain('user@example.org', 'secret')}\n`);
      b.send(`AUTH\t1\tPLAIN\tservice=smtp\tresp=${plain('user@example.org', 'secret')}\n`);
      // Both OKs come while the clock stands still: the held FAIL holds up nobody.
      await a.waitFor((l) => l.startsWith('OK\t2'));
      await b.waitFor((l) => l.startsWith('OK\t1'));
      // The wrong password is decided (logged) and its FAIL held: 299 ms on, still held; at 300 it goes.
      await waitFor(() => own.logs.some((l) => l.includes('login failed')), 10_000, 'the failed login');
      const failed = () => a.lines.some((l) => l.startsWith('FAIL\t1'));
      await settle();
      expect(failed()).toBe(false);
      advance(299);
      await settle();
      expect(failed()).toBe(false);
      advance(1);
      await a.waitFor((l) => l.startsWith('FAIL\t1'));
      // The OK on the same connection went out before the delayed FAIL.
      expect(a.lines.findIndex((l) => l.startsWith('OK\t2'))).toBeLessThan(a.lines.findIndex((l) => l.startsWith('FAIL\t1')));

      // no-penalty: answered without the clock moving.
      a.send(`AUTH\t3\tPLAIN\tservice=smtp\tno-penalty\tresp=${plain('user@example.org', 'wrong')}\n`);
      await a.waitFor((l) => l.startsWith('FAIL\t3'));
      a.close();
      b.close();
    } finally {
      await own.close();
    }
  });

  it('records lookup_duration by mechanism and result', async () => {
    const text = await doors.metrics.registry.metrics();
    expect(text).toMatch(/mailmapd_lookup_duration_seconds_count\{protocol="auth",map="plain",result="ok"\} [1-9]/);
    expect(text).toMatch(/mailmapd_lookup_duration_seconds_count\{protocol="auth",map="plain",result="fail"\} [1-9]/);
    expect(text).toMatch(/mailmapd_lookup_duration_seconds_count\{protocol="auth",map="login",result="ok"\} [1-9]/);
  });

  it('never logs a password', () => {
    const all = doors.logs.join('');
    expect(all).toContain('login failed');
    expect(all).not.toMatch(/secret|wrong/);
  });
});

describe('temporary failures', () => {
  let doors: Doors | undefined;
  afterEach(async () => doors?.close());

  it('answers FAIL code=temp_fail, at once, while the directory has never loaded', async () => {
    // "At once": without the failure delay, which runs on a clock that never moves here.
    doors = await startDoors({ loaded: false, failureDelayMs: 2000, clock: fakeClock().clock });
    const c = await lineClient(doors.authSocket);
    c.send(postfixHello + `AUTH\t1\tPLAIN\tservice=smtp\tresp=${plain('user@example.org', 'secret')}\n`);
    expect(await c.waitFor((l) => l.startsWith('FAIL\t1') || l.startsWith('OK\t1'))).toBe(
      'FAIL\t1\tuser=user@example.org\tcode=temp_fail\ttemp\treason=Temporary authentication failure',
    );
    c.close();
  });
});

describe('doveadm auth test -a SOCKET (real Dovecot client)', () => {
  let doors: Doors;
  beforeAll(async () => {
    doors = await startDoors({ failureDelayMs: 0 });
  });
  afterAll(() => doors.close());

  it('good, bad, unknown and inactive users', async () => {
    const good = await doveadm(['auth', 'test', '-a', doors.authSocket, 'User@Example.org', 'secret']);
    expect(good.code).toBe(0);
    expect(good.out).toContain('auth succeeded');
    expect(good.out).toContain('user=user@example.org');
    for (const [u, p] of failingLogins) {
      const r = await doveadm(['auth', 'test', '-a', doors.authSocket, u, p]);
      expect(r.code, `${u}: ${r.out}`).toBe(77);
      expect(r.out).toContain('auth failed');
    }
  });

  it('an alias-domain login resolves to the target mailbox', async () => {
    const r = await doveadm(['auth', 'test', '-a', doors.authSocket, 'user@alias.org', 'secret']);
    expect(r.code).toBe(0);
    expect(r.out).toContain('user=user@example.org');
  });

  it('a password change or deactivation takes effect on the very next login', async () => {
    const before = await doveadm(['auth', 'test', '-a', doors.authSocket, 'crypt@example.org', 'secret']);
    expect(before.code).toBe(0);
    const data = standardData();
    data.mailboxes.set('crypt@example.org', { password: '{PLAIN}changed', quotaBytes: 0, active: true });
    doors.directory.replaceAll(data);
    expect((await doveadm(['auth', 'test', '-a', doors.authSocket, 'crypt@example.org', 'secret'])).code).toBe(77);
    expect((await doveadm(['auth', 'test', '-a', doors.authSocket, 'crypt@example.org', 'changed'])).code).toBe(0);
    data.mailboxes.set('crypt@example.org', { password: '{PLAIN}changed', quotaBytes: 0, active: false });
    doors.directory.replaceAll(data);
    expect((await doveadm(['auth', 'test', '-a', doors.authSocket, 'crypt@example.org', 'changed'])).code).toBe(77);
  });
});

describe('doveadm auth test: every vector in test/vectors', () => {
  let doors: Doors;
  const vectors: { user: string; password: string; scheme: string }[] = [];
  beforeAll(async () => {
    const data = emptyData();
    data.domains.set('vectors.test', true);
    for (const f of ['dovecot-pw.tsv', 'seed-style-pw.tsv']) {
      const rows = readFileSync(new URL(`../vectors/${f}`, import.meta.url), 'utf8')
        .trim()
        .split('\n')
        .slice(1);
      for (const row of rows) {
        const [scheme, password, hash] = row.split('\t') as [string, string, string];
        const user = `v${vectors.length}@vectors.test`;
        data.mailboxes.set(user, { password: hash, quotaBytes: 0, active: true });
        vectors.push({ user, password, scheme });
      }
    }
    doors = await startDoors({ data, failureDelayMs: 0 });
  });
  afterAll(() => doors.close());

  it('logs in with the right password and fails with a wrong one', { timeout: 180_000 }, async () => {
    expect(vectors.length).toBeGreaterThan(100);
    const failures: string[] = [];
    // Four at a time: doveadm forks, the hash pool has two workers.
    for (let i = 0; i < vectors.length; i += 4) {
      await Promise.all(
        vectors.slice(i, i + 4).map(async (v) => {
          const good = await doveadm(['auth', 'test', '-a', doors.authSocket, v.user, v.password]);
          if (good.code !== 0) failures.push(`${v.scheme} ${v.user}: right password gave ${good.code}`);
          // Changed at the front: bcrypt ignores everything after 72 bytes.
          const wrong = `${v.password.startsWith('Z') ? 'Y' : 'Z'}${v.password.slice(1)}`;
          const bad = await doveadm(['auth', 'test', '-a', doors.authSocket, v.user, wrong]);
          if (bad.code !== 77) failures.push(`${v.scheme} ${v.user}: wrong password gave ${bad.code}`);
        }),
      );
    }
    expect(failures).toEqual([]);
  });
});
