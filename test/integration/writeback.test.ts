// Written back, through the real daemon on a private PostgreSQL cluster: a login through
// each door (SMTP AUTH on the auth socket, mailmapd-checkpassword, the Lua door's HTTP
// endpoint) lands in mailmapd.last_logins with its service and client address, at most once
// per last_login_interval; a login while PostgreSQL is stopped is written once it is back;
// the dict listener takes Dovecot 2.3's and 2.4's quota-clone transactions and answers
// what it does not keep with a failure line, never silence.

import { spawn, spawnSync } from 'node:child_process';
import { connect, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCluster, type Cluster } from '../helpers/cluster.js';
import { cliPath, freePort, root, startDaemon, type Daemon } from '../helpers/daemon.js';
import { createTestDatabase, waitFor, type TestDatabase } from '../helpers/db.js';
import { smtpAuth } from '../helpers/logins.js';
import { onLines } from '../helpers/lines.js';

const checkpassword = `${root}bin/mailmapd-checkpassword`;

/** mailmapd-checkpassword as Dovecot runs it: user\0password\0 on fd 3, SERVICE and TCPREMOTEIP set. */
function checkpasswordLogin(port: number, user: string, pass: string, service: string, rip: string): Promise<number | null> {
  return new Promise((resolve, reject) => {
    const child = spawn(checkpassword, ['-s', `inet:127.0.0.1:${port}`], {
      stdio: ['ignore', 'ignore', 'ignore', 'pipe', 'pipe'],
      env: { SERVICE: service, TCPREMOTEIP: rip },
    });
    (child.stdio[4] as NodeJS.ReadableStream).resume();
    (child.stdio[3] as NodeJS.WritableStream).end(Buffer.from(`${user}\0${pass}\0\0`));
    child.on('error', reject);
    child.on('close', resolve);
  });
}

/** A line client for the dict protocol: send lines, read reply lines. */
async function dictClient(port: number): Promise<{ send(lines: string[]): void; reply(): Promise<string>; closed: Promise<void>; socket: Socket }> {
  const socket = connect(port, '127.0.0.1');
  await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
  const waiting: ((l: string) => void)[] = [];
  const lines: string[] = [];
  socket.setEncoding('utf8');
  onLines(socket, (line) => {
    const w = waiting.shift();
    if (w) w(line);
    else lines.push(line);
  });
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  return {
    socket,
    closed,
    send: (ls) => socket.write(ls.map((l) => `${l}\n`).join('')),
    reply: () =>
      lines.length > 0
        ? Promise.resolve(lines.shift()!)
        : new Promise<string>((resolve, reject) => {
            const t = setTimeout(() => reject(new Error('no reply within 2 s')), 2000);
            waiting.push((l) => {
              clearTimeout(t);
              resolve(l);
            });
          }),
  };
}

describe('written back through the daemon', { timeout: 30_000 }, () => {
  let cluster: Cluster;
  let db: TestDatabase;
  let daemon: Daemon;
  let dictPort: number;
  const lastLogin = async (address: string) =>
    (
      await db.sql.query<{ service: string; remote_ip: string | null; at: Date }>(
        'SELECT service, host(remote_ip) AS remote_ip, at FROM mailmapd.last_logins WHERE address = $1',
        [address],
      )
    ).rows[0];
  const usage = async (address: string) =>
    (await db.sql.query<{ bytes: string | null; messages: string | null }>('SELECT bytes, messages FROM mailmapd.quota_usage WHERE address = $1', [address]))
      .rows[0];
  let changesBefore = 0;
  const changeCount = async () => (await db.sql.query<{ n: number }>(`SELECT count(*)::int AS n FROM mailmapd.changes`)).rows[0]!.n;
  const metric = async (name: string) => {
    const text = await (await daemon.http('/metrics')).text();
    return text
      .split('\n')
      .filter((l) => l.startsWith(name))
      .reduce((a, l) => a + Number(l.split(' ').at(-1)), 0);
  };

  beforeAll(async () => {
    cluster = await createCluster();
    db = await createTestDatabase({ base: cluster.url });
    await db.sql.query(`INSERT INTO mailmapd.domains (name) VALUES ('example.org');
      INSERT INTO mailmapd.alias_domains (name, target) VALUES ('example.net', 'example.org');
      INSERT INTO mailmapd.mailboxes (address, password) VALUES
        ('alice@example.org', '{PLAIN}alice-pw'), ('bob@example.org', '{PLAIN}bob-pw'),
        ('carol@example.org', '{PLAIN}carol-pw'), ('dave@example.org', '{PLAIN}dave-pw')`);
    dictPort = await freePort();
    changesBefore = await changeCount();
    daemon = await startDaemon({ databaseUrl: db.url, config: { dict_listen: `inet:127.0.0.1:${dictPort}`, policy_enabled: 'no' } });
  }, 60_000);
  afterAll(async () => {
    await daemon?.stop();
    await db?.sql.end().catch(() => {}); // it may be the one made after the restart, unknown to drop()
    await db?.drop();
    cluster?.destroy();
  });

  it('says at start where it writes', () => {
    expect(daemon.logs()).toMatch(/writing last logins and quota usage.*checked_not_standby=true/);
  });

  it('a login through each door lands in last_logins with its service and client address', async () => {
    expect(await smtpAuth(daemon.ports.auth, 'Alice@Example.NET', 'alice-pw', '192.0.2.10')).toBe('OK');
    expect(await checkpasswordLogin(daemon.ports.checkpassword, 'bob@example.org', 'bob-pw', 'imap', '2001:db8::7')).toBe(0);
    const lua = await daemon.http('/dovecot/passdb', {
      method: 'POST',
      body: new URLSearchParams({ user: 'carol@example.org', password: 'carol-pw', service: 'pop3', rip: '198.51.100.3' }).toString(),
    });
    expect(lua.status).toBe(200);
    await waitFor(async () => (await lastLogin('carol@example.org')) !== undefined && (await lastLogin('bob@example.org')) !== undefined, 5000, 'last logins');
    expect(await lastLogin('alice@example.org')).toMatchObject({ service: 'smtp', remote_ip: '192.0.2.10' });
    expect(await lastLogin('bob@example.org')).toMatchObject({ service: 'imap', remote_ip: '2001:db8::7' });
    expect(await lastLogin('carol@example.org')).toMatchObject({ service: 'pop3', remote_ip: '198.51.100.3' });
    // A failed login is no login.
    expect(await smtpAuth(daemon.ports.auth, 'dave@example.org', 'wrong', '192.0.2.11')).toBe('FAIL');
    await new Promise((r) => setTimeout(r, 1500));
    expect(await lastLogin('dave@example.org')).toBeUndefined();
  });

  it('records a mailbox at most once per last_login_interval', async () => {
    const first = await lastLogin('alice@example.org');
    expect(await checkpasswordLogin(daemon.ports.checkpassword, 'alice@example.org', 'alice-pw', 'imap', '192.0.2.99')).toBe(0);
    await new Promise((r) => setTimeout(r, 1500));
    expect(await lastLogin('alice@example.org')).toEqual(first);
  });

  it('a login while PostgreSQL is stopped is written once it is back', async () => {
    await db.sql.end(); // the test's own connection would go down with the server
    cluster.stop();
    try {
      expect(await smtpAuth(daemon.ports.auth, 'dave@example.org', 'dave-pw', '192.0.2.12')).toBe('OK');
      await waitFor(async () => (await metric('mailmapd_writeback_pending')) === 1, 5000, 'the login held');
      await new Promise((r) => setTimeout(r, 1000)); // a flush or two fails meanwhile
    } finally {
      cluster.start();
    }
    db.sql = new (await import('pg')).default.Client({ connectionString: db.url });
    await db.sql.connect();
    await waitFor(async () => (await lastLogin('dave@example.org')) !== undefined, 10_000, 'the held login written');
    expect(await lastLogin('dave@example.org')).toMatchObject({ service: 'smtp', remote_ip: '192.0.2.12' });
    expect(await metric('mailmapd_writeback_pending')).toBe(0);
    expect(await metric('mailmapd_writeback_dropped_total')).toBe(0);
  });

  it("takes Dovecot 2.3's quota-clone transaction (protocol 3) into quota_usage", async () => {
    const c = await dictClient(dictPort);
    c.send(['H3\t2\t0\t\tquota', 'B1\talice@example.org', 'S1\tpriv/quota/storage\t4096', 'S1\tpriv/quota/messages\t3', 'C1']);
    expect(await c.reply()).toBe('O1');
    await waitFor(async () => (await usage('alice@example.org'))?.messages === '3', 5000, 'usage written');
    expect(await usage('alice@example.org')).toEqual({ bytes: '4096', messages: '3' });
    c.socket.end();
  });

  it('keeps counts above 2^53 exact (issue 29, item 7)', async () => {
    const c = await dictClient(dictPort);
    c.send(['H3\t2\t0\t\tquota', 'B2\tbob@example.org', 'S2\tpriv/quota/storage\t9007199254740993', 'S2\tpriv/quota/messages\t900000000000000001', 'C2']);
    expect(await c.reply()).toBe('O2');
    await waitFor(async () => (await usage('bob@example.org'))?.messages === '900000000000000001', 5000, 'usage written');
    expect(await usage('bob@example.org')).toEqual({ bytes: '9007199254740993', messages: '900000000000000001' });
    c.socket.end();
  });

  it("takes Dovecot 2.4's (protocol 4: BEGIN with an expiry, V) and canonicalizes the user", async () => {
    const c = await dictClient(dictPort);
    c.send([
      'H4\t0\t0\t\tquota',
      'B7\tBob@Example.NET\t0',
      'V7\t0',
      'U7\tpriv/quota/storage',
      'S7\tpriv/quota/storage\t10',
      'S7\tpriv/quota/messages\t1',
      'C7',
    ]);
    expect(await c.reply()).toBe('O7');
    await waitFor(async () => (await usage('bob@example.org'))?.messages === '1', 5000, 'usage written');
    expect(await usage('bob@example.org')).toEqual({ bytes: '10', messages: '1' });
    c.socket.end();
  });

  it('answers what it does not keep: lookups not found, other keys and increments a failed commit', async () => {
    const c = await dictClient(dictPort);
    c.send(['H3\t2\t0\t\tquota', 'Lpriv/quota/storage\talice@example.org', 'Lshared/anything\t']);
    expect(await c.reply()).toBe('N');
    expect(await c.reply()).toBe('N');
    c.send(['B2\talice@example.org', 'S2\tpriv/other\tx', 'C2']);
    expect(await c.reply()).toMatch(/^F2\tmailmapd keeps only priv\/quota\/storage and priv\/quota\/messages/);
    c.send(['B3\talice@example.org', 'A3\tpriv/quota/storage\t100', 'C3']);
    expect(await c.reply()).toMatch(/^F3\t.*atomic increments/);
    c.send(['C9']);
    expect(await c.reply()).toBe('F9\tno such transaction');
    c.send(['I0\t0\tshared/\t']);
    expect(await c.reply()).toMatch(/^F/);
    // The failed commits wrote nothing.
    expect(await usage('alice@example.org')).toEqual({ bytes: '4096', messages: '3' });
    c.send(['X']);
    expect(await c.reply()).toMatch(/^Funknown dict command/);
    await c.closed;
  });

  it('an unknown protocol version gets a failure line and the connection ends', async () => {
    const c = await dictClient(dictPort);
    c.send(['H9\t0\t0\t\tquota', 'Lpriv/quota/storage\tx']);
    expect(await c.reply()).toMatch(/^Fmailmapd speaks dict protocol 2, 3 and 4/);
    await c.closed;
  });

  it('a line longer than max_request_bytes closes the connection', async () => {
    const c = await dictClient(dictPort);
    c.send(['H3\t2\t0\t\tquota', `B1\t${'a'.repeat(5000)}`]);
    await c.closed;
  });

  it('writing them reloads nothing: the tables are not watched', async () => {
    expect(await changeCount()).toBe(changesBefore);
  });

  it('mailbox list and mailbox show tell the last login and the usage', () => {
    const cli = (...args: string[]) => spawnSync(process.execPath, [cliPath, '-c', daemon.configPath, ...args], { encoding: 'utf8' });
    const list = cli('mailbox', 'list');
    expect(list.status, list.stderr).toBe(0);
    expect(list.stdout).toMatch(/^alice@example\.org last_login=\S+Z service=smtp from=192\.0\.2\.10 bytes=4096 messages=3$/m);
    expect(list.stdout).toMatch(/^bob@example\.org last_login=\S+Z service=imap from=2001:db8::7 bytes=10 messages=1$/m);
    const show = cli('mailbox', 'show', 'Alice@Example.org');
    expect(show.status, show.stderr).toBe(0);
    expect(show.stdout).toMatch(/^last login: \S+Z via smtp from 192\.0\.2\.10$/m);
    expect(show.stdout).toMatch(/^usage: +4096 bytes, 3 messages, reported \S+Z$/m);
    expect(cli('mailbox', 'show', 'carol@example.org').stdout).toMatch(/^usage: +not reported/m);
    expect(cli('mailbox', 'show', 'nobody@example.org').status).toBe(1);
  });
});
