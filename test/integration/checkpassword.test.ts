// bin/mailmapd-checkpassword run the way Dovecot 2.3 runs it (fd 3 in, fd 4 out, the reply
// program appended to argv, AUTHORIZED=1 for lookups) against the daemon's checkpassword
// socket: every exit code Dovecot reads (auth 0/1/111, lookup 2/3/111, daemon down 111),
// the fields it writes or hands to Dovecot's own checkpassword-reply, the socket from -s or
// the environment (unix: and inet:), its wall time per login, and that it runs under
// Dovecot's default 256 MB vsz_limit. Also the socket protocol's own bad-input handling.

import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeReply, encodeReply, encodeRequest } from '../../src/checkpassword/wire.js';
import { createCheckpasswordHandler } from '../../src/checkpassword/server.js';
import { parseListenAddress } from '../../src/net/listen-address.js';
import { createLogger } from '../../src/log.js';
import { listen } from '../../src/net/listener.js';
import { checkpasswordBinary, closePool, failingLogins, startDoors, type Doors } from '../helpers/logins.js';

const replyProgram = '/usr/lib/dovecot/checkpassword-reply';

interface Run {
  code: number | null;
  fd4: string;
  stderr: string;
  ms: number;
}

/** Runs the program like Dovecot's db-checkpassword.c: input on fd 3, the answer read from fd 4. */
function runCheckpassword(args: string[], input: string, env: Record<string, string> = {}, opts: { vsz?: number } = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const [cmd, argv] =
      opts.vsz !== undefined ? ['/bin/sh', ['-c', `ulimit -v ${opts.vsz}; exec "$0" "$@"`, checkpasswordBinary, ...args]] : [checkpasswordBinary, args];
    const child = spawn(cmd as string, argv as string[], {
      stdio: ['ignore', 'ignore', 'pipe', 'pipe', 'pipe'],
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', SERVICE: 'imap', ORIG_UID: String(process.getuid?.() ?? 0), ...env },
    });
    let fd4 = '';
    let stderr = '';
    child.stderr!.on('data', (d) => (stderr += d));
    (child.stdio[4] as NodeJS.ReadableStream).on('data', (d) => (fd4 += d));
    // The program may exit without reading all of fd 3 (oversized input): that is no test error.
    (child.stdio[3] as NodeJS.WritableStream).on('error', () => {});
    (child.stdio[4] as NodeJS.ReadableStream).on('error', () => {});
    (child.stdio[3] as NodeJS.WritableStream).end(Buffer.from(input, 'utf8'));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, fd4, stderr, ms: performance.now() - t0 }));
  });
}

const auth = (user: string, password: string) => `${user}\0${password}\0\0`;
const lookup = (user: string) => `${user}\0\0\0`;

afterAll(closePool);

describe('mailmapd-checkpassword', () => {
  let doors: Doors;
  let s: string[];
  beforeAll(async () => {
    expect(existsSync(checkpasswordBinary), 'bin/mailmapd-checkpassword is built by scripts/build-checkpassword.mjs').toBe(true);
    doors = await startDoors();
    s = ['-s', `unix:${doors.checkpasswordSocket}`];
  });
  afterAll(() => doors.close());

  it('password check: 0 with the userdb fields on fd 4 (tab-separated, as Dovecot reads them)', async () => {
    const r = await runCheckpassword(s, auth('User@Example.org', 'secret'));
    expect(r.code).toBe(0);
    expect(r.fd4).toBe('user=user@example.org\tuserdb_home=/var/vmail/example.org/user\tuserdb_uid=5000\tuserdb_gid=5001\tuserdb_quota_rule=*:bytes=1048576\t');
    const noQuota = await runCheckpassword(s, auth('crypt@example.org', 'secret'));
    expect(noQuota.code).toBe(0);
    expect(noQuota.fd4).not.toContain('quota_rule');
  });

  it('password check: 1 for a wrong password, an unknown user, an inactive mailbox or domain', async () => {
    for (const [u, p] of failingLogins) {
      const r = await runCheckpassword(s, auth(u, p));
      expect(r.code, u).toBe(1);
      expect(r.fd4).toBe('');
    }
  });

  it('lookup (AUTHORIZED=1): 2 with the fields, 3 for unknown or inactive users', async () => {
    const found = await runCheckpassword(s, lookup('user@example.org'), { AUTHORIZED: '1' });
    expect(found.code).toBe(2);
    expect(found.fd4).toContain('userdb_home=/var/vmail/example.org/user\t');
    for (const u of ['nobody@example.org', 'inactive@example.org', 'x@off.org']) {
      expect((await runCheckpassword(s, lookup(u), { AUTHORIZED: '1' })).code, u).toBe(3);
    }
  });

  it("execs Dovecot's checkpassword-reply with USER, HOME and EXTRA set (0 / 2)", async () => {
    expect(existsSync(replyProgram), `${replyProgram} (dovecot-core)`).toBe(true);
    const ok = await runCheckpassword([...s, replyProgram], auth('user@example.org', 'secret'));
    expect(ok.code).toBe(0);
    expect(ok.fd4).toContain('user=user@example.org\t');
    expect(ok.fd4).toContain('userdb_home=/var/vmail/example.org/user\t');
    expect(ok.fd4).toContain('userdb_uid=5000\t');
    expect(ok.fd4).toContain('userdb_gid=5001\t');
    expect(ok.fd4).toContain('userdb_quota_rule=*:bytes=1048576\t');
    const found = await runCheckpassword([...s, replyProgram], lookup('user@example.org'), { AUTHORIZED: '1' });
    expect(found.code).toBe(2);
    expect(found.fd4).toContain('userdb_home=/var/vmail/example.org/user\t');
    expect((await runCheckpassword([...s, replyProgram], auth('user@example.org', 'wrong'))).code).toBe(1);
  });

  it('finds the socket in MAILMAPD_CHECKPASSWORD_SOCKET when there is no -s', async () => {
    const r = await runCheckpassword([], auth('user@example.org', 'secret'), { MAILMAPD_CHECKPASSWORD_SOCKET: `unix:${doors.checkpasswordSocket}` });
    expect(r.code).toBe(0);
  });

  it('speaks inet:127.0.0.1:PORT too', async () => {
    const logger = createLogger('error', () => {});
    const l = await listen(
      parseListenAddress('inet:127.0.0.1:0'),
      'checkpassword',
      createCheckpasswordHandler({ authenticator: doors.authenticator, logger, metrics: doors.metrics, maxRequestBytes: 4096 }),
      { maxConnections: 10, idleTimeoutMs: 5000 },
      { mode: 0o660, group: '' },
      logger,
    );
    try {
      expect((await runCheckpassword(['-s', `inet:127.0.0.1:${l.port}`], auth('user@example.org', 'secret'))).code).toBe(0);
      expect((await runCheckpassword(['-s', `inet:127.0.0.1:${l.port}`], lookup('nobody@example.org'), { AUTHORIZED: '1' })).code).toBe(3);
    } finally {
      await l.close(0);
    }
  });

  it('111 when the daemon is down, in both modes, and says why on stderr', async () => {
    const down = ['-s', `unix:${doors.dir}/no-such-socket`];
    const a = await runCheckpassword(down, auth('user@example.org', 'secret'));
    expect(a.code).toBe(111);
    expect(a.stderr).toContain('cannot connect to mailmapd');
    expect(a.stderr).not.toContain('secret');
    expect((await runCheckpassword(down, lookup('user@example.org'), { AUTHORIZED: '1' })).code).toBe(111);
    expect((await runCheckpassword(['-s', 'inet:127.0.0.1:1'], auth('user@example.org', 'secret'))).code).toBe(111);
  });

  it('111 for malformed input on fd 3', async () => {
    expect((await runCheckpassword(s, 'user@example.org')).code).toBe(111);
    expect((await runCheckpassword(s, 'x'.repeat(5000))).code).toBe(111);
  });

  it('runs under ulimit -v 262144 (Dovecot auth default_vsz_limit = 256M)', async () => {
    const r = await runCheckpassword(s, auth('user@example.org', 'secret'), {}, { vsz: 262144 });
    expect(r.code).toBe(0);
    expect(r.fd4).toContain('user=user@example.org');
  });
  // Its wall time per login is measured by bench/logins.mjs, not asserted here.
});

describe('checkpassword replies', () => {
  it('a reply larger than the program accepts becomes a temporary failure with a reason', () => {
    const big = encodeReply({ code: 'ok', fields: [['home', 'x'.repeat(70_000)]] });
    expect(decodeReply(big.subarray(4))).toEqual({ code: 'temp', reason: 'reply too large' });
    const small = encodeReply({ code: 'ok', fields: [['home', '/var/mail/a']] });
    expect(decodeReply(small.subarray(4))).toEqual({ code: 'ok', fields: [['home', '/var/mail/a']] });
  });
});

describe('checkpassword: 111 while the directory has never loaded', () => {
  let doors: Doors;
  beforeAll(async () => {
    doors = await startDoors({ loaded: false });
  });
  afterAll(() => doors.close());

  it('answers temp for both modes', async () => {
    const s = ['-s', `unix:${doors.checkpasswordSocket}`];
    const a = await runCheckpassword(s, auth('user@example.org', 'secret'));
    expect(a.code).toBe(111);
    expect(a.stderr).toContain('temporary failure');
    expect((await runCheckpassword(s, lookup('user@example.org'), { AUTHORIZED: '1' })).code).toBe(111);
  });
});

describe('checkpassword socket: bad input', () => {
  let doors: Doors;
  beforeAll(async () => {
    doors = await startDoors({ maxRequestBytes: 1024 });
  });
  afterAll(() => doors.close());

  function exchange(bytes: Buffer): Promise<{ reply: Buffer; closed: boolean }> {
    return new Promise((resolve) => {
      const sock = connect(doors.checkpasswordSocket);
      let reply = Buffer.alloc(0);
      sock.on('data', (d) => (reply = Buffer.concat([reply, d])));
      sock.on('error', () => {});
      sock.on('close', () => resolve({ reply, closed: true }));
      sock.write(bytes);
      setTimeout(() => {
        sock.destroy();
        resolve({ reply, closed: false });
      }, 500);
    });
  }

  it('answers several framed requests on one connection, in order', async () => {
    const req = (user: string, password: string) => encodeRequest({ mode: 'auth', user, password, service: 'imap', remoteIp: '', localIp: '', secured: false });
    const { reply } = await exchange(Buffer.concat([req('user@example.org', 'secret'), req('user@example.org', 'bad')]));
    const first = reply.readUInt32BE(0);
    expect(decodeReply(reply.subarray(4, 4 + first))).toMatchObject({ code: 'ok' });
    expect(decodeReply(reply.subarray(8 + first))).toEqual({ code: 'fail' });
  });

  it('an oversized frame, a wrong version or a malformed body closes the connection without an answer', async () => {
    const big = Buffer.alloc(4);
    big.writeUInt32BE(1_000_000);
    for (const bytes of [
      big,
      Buffer.concat([Buffer.from([0, 0, 0, 5]), Buffer.from('2\0a\0\0')]),
      Buffer.concat([Buffer.from([0, 0, 0, 3]), Buffer.from('abc')]),
    ]) {
      const r = await exchange(bytes);
      expect(r.closed).toBe(true);
      expect(r.reply.length).toBe(0);
    }
    expect(await doors.metrics.registry.metrics()).toMatch(/mailmapd_connections_bad_input_total\{listener="checkpassword",reason="too_large"\} 1/);
  });
});
