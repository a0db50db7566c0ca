// The Postfix policy service (sending limits, quota at RCPT): requests per second and the
// time of one request, p50/p99, for the RCPT and END-OF-MESSAGE requests a mail server
// sends — inbound to mailboxes and aliases of 10k mailboxes with quotas, authenticated
// senders under limits. Two measures: the service's own answer() in-process (what the door
// adds nothing to), and through the daemon's policy_listen door over 1 and 16 connections,
// one request outstanding on each as Postfix's smtpd keeps it (when the door is built).
// Runnable alone: node bench/policy.mjs   (needs `npm run build` and PostgreSQL)

import { spawn } from 'node:child_process';
import { connect } from 'node:net';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { dbUrl, freePort, load, pct, serverUrl, sleep, waitForPort, withClient } from './lib.mjs';
import { startQuotaStatus } from './policy-quota-status.mjs';

const MAILBOXES = 10_000;
const DOMAINS = 100;
const ALIASES = 2_000;
const REQUESTS = 100_000;
const DOOR_SECONDS = 5;

async function prepare(name) {
  const { migrate } = await load('db/schema.js');
  await withClient(serverUrl, async (c) => {
    await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    await c.query(`CREATE DATABASE ${name}`);
  });
  await withClient(dbUrl(name), async (c) => {
    await migrate(c);
    await c.query(`INSERT INTO mailmapd.domains (name, send_limit_day) SELECT 'd' || i || '.test', 1000000 FROM generate_series(1, ${DOMAINS}) i`);
    await c.query(`INSERT INTO mailmapd.mailboxes (address, password, quota_bytes, send_limit_hour)
      SELECT 'user' || i || '@d' || (i % ${DOMAINS} + 1) || '.test', '{PLAIN}x', 1000000, CASE WHEN i % 10 = 0 THEN 100000 END
        FROM generate_series(1, ${MAILBOXES}) i`);
    await c.query(`INSERT INTO mailmapd.aliases (address, destination)
      SELECT 'alias' || i || '@d' || (i % ${DOMAINS} + 1) || '.test', 'user' || (i * 3 % ${MAILBOXES} + 1) || '@d' || ((i * 3 % ${MAILBOXES} + 1) % ${DOMAINS} + 1) || '.test'
        FROM generate_series(1, ${ALIASES}) i`);
    // A tenth of the mailboxes full.
    await c.query(`INSERT INTO mailmapd.quota_usage (address, bytes, messages, updated)
      SELECT address, CASE WHEN random() < 0.1 THEN 2000000 ELSE 1000 END, 1, now() FROM mailmapd.mailboxes`);
  });
}

/** Deterministic requests: half inbound RCPT (mailboxes, extensions, aliases), half from authenticated senders (RCPT, then END-OF-MESSAGE). */
function requests(n, seed) {
  let x = seed;
  const rnd = () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 4294967296;
  };
  const user = () => {
    const i = 1 + Math.floor(rnd() * MAILBOXES);
    return `user${i}@d${(i % DOMAINS) + 1}.test`;
  };
  const out = [];
  for (let i = 0; i < n; i++) {
    const r = rnd();
    const base = { request: 'smtpd_access_policy', instance: `i${i}`, size: '12345' };
    if (r < 0.3) out.push({ ...base, protocol_state: 'RCPT', recipient: user() });
    else if (r < 0.4) out.push({ ...base, protocol_state: 'RCPT', recipient: user().replace('@', '+tag@') });
    else if (r < 0.5) {
      const a = 1 + Math.floor(rnd() * ALIASES);
      out.push({ ...base, protocol_state: 'RCPT', recipient: `alias${a}@d${(a % DOMAINS) + 1}.test` });
    } else if (r < 0.8) out.push({ ...base, protocol_state: 'RCPT', sasl_username: user(), recipient: `x${i}@remote.test` });
    else out.push({ ...base, protocol_state: 'END-OF-MESSAGE', sasl_username: user(), recipient_count: '1', recipient: `x${i}@remote.test` });
  }
  return out;
}

const encode = (attrs) =>
  `${Object.entries(attrs)
    .map(([k, v]) => `${k}=${v}`)
    .join('\n')}\n\n`;

async function inProcess(url, log) {
  const { createDirectory } = await load('directory/directory.js');
  const { createSync } = await load('sync/sync.js');
  const { nativeProfile } = await load('sync/profile.js');
  const { silentLogger } = await load('log.js');
  const { createMetrics } = await load('metrics.js');
  const { parseConfigText } = await load('config.js');
  const { createPolicy } = await load('smtpd-policy/start.js');
  const directory = createDirectory({ recipientDelimiter: '+' });
  const metrics = createMetrics(true);
  const sync = createSync({
    databaseUrl: url,
    profile: nativeProfile,
    directory,
    logger: silentLogger,
    metrics,
    pollIntervalMs: 1000,
    retentionMs: 86_400_000,
    reconnectMaxDelayMs: 1000,
  });
  sync.start();
  await sync.firstLoad();
  const config = parseConfigText('send_limit_hour = 1000\nsend_max_recipients = 100\n', 'bench');
  const policy = createPolicy(() => config, directory, nativeProfile, silentLogger, metrics.registry);
  policy.start(url, undefined);
  await sleep(1500); // the follower's first read
  const reqs = requests(REQUESTS, 2463534242).map((r) => new Map(Object.entries(r)));
  const answers = new Map();
  for (const r of reqs.slice(0, 10_000)) policy.service.answer(r); // warm-up
  const times = new Float64Array(reqs.length);
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < reqs.length; i++) {
    const s = process.hrtime.bigint();
    const a = policy.service.answer(reqs[i]);
    times[i] = Number(process.hrtime.bigint() - s) / 1000;
    const k = a.slice(0, 3);
    answers.set(k, (answers.get(k) ?? 0) + 1);
  }
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  log(
    `in-process answer(): ${(reqs.length / secs).toFixed(0)} requests/s, p50 ${pct(times, 50).toFixed(1)} µs, p99 ${pct(times, 99).toFixed(1)} µs (answers: ${[...answers].map(([k, v]) => `${k} ${v}`).join(', ')})`,
  );
  await policy.stop();
  await sync.stop();
}

/** The inbound RCPT requests only: what Dovecot's quota-status can be asked too. */
const inboundRcpt = () => requests(40_000, 88172645).filter((r) => r.sasl_username === undefined && r.protocol_state === 'RCPT');

/** Clients each with one request outstanding, for `seconds`; requests/s and per-request latency. */
async function overConnections(port, clients, seconds, list = requests(20_000, 88172645), once = false) {
  const reqs = list.map(encode);
  let taken = 0;
  const latencies = [];
  let done = 0;
  const until = Date.now() + seconds * 1000;
  await Promise.all(
    Array.from(
      { length: clients },
      (_, c) =>
        new Promise((resolve, reject) => {
          const socket = connect(port, '127.0.0.1');
          socket.setEncoding('utf8');
          let buf = '';
          let i = c * 997;
          let sent = 0n;
          const next = () => {
            if (Date.now() >= until || (once && taken >= reqs.length)) return socket.end(resolve);
            sent = process.hrtime.bigint();
            // once: every request exactly once, shared out between the clients.
            socket.write(once ? reqs[taken++] : reqs[i++ % reqs.length]);
          };
          socket.on('data', (d) => {
            buf += d;
            let end;
            while ((end = buf.indexOf('\n\n')) >= 0) {
              buf = buf.slice(end + 2);
              latencies.push(Number(process.hrtime.bigint() - sent) / 1000);
              done++;
              next();
            }
          });
          socket.on('error', reject);
          socket.on('connect', next);
        }),
    ),
  );
  return { rps: done / seconds, p50: pct(latencies, 50), p99: pct(latencies, 99) };
}

async function throughDoor(url, log) {
  const { configKeys } = await load('config.js');
  if (!configKeys.includes('policy_listen')) {
    log('door: policy_listen is not in this build (the door comes with the connection layer): measured in-process only');
    return;
  }
  const dir = mkdtempSync(join(tmpdir(), 'mailmapd-bench-policy-'));
  const port = await freePort();
  const conf = join(dir, 'mailmapd.conf');
  writeFileSync(
    conf,
    [
      `database_url = ${url}`,
      `policy_listen = inet:127.0.0.1:${port}`,
      `socketmap_listen = inet:127.0.0.1:${await freePort()}`,
      `auth_listen =`,
      `checkpassword_listen =`,
      `http_listen = 127.0.0.1:${await freePort()}`,
      `snapshot_file =`,
      'send_limit_hour = 1000',
      'log_level = warn',
      '',
    ].join('\n'),
  );
  const daemon = spawn(process.execPath, [new URL('../dist/cli.js', import.meta.url).pathname, '-c', conf, 'serve'], {
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  try {
    await waitForPort(port);
    await sleep(2000); // the directory's load and the follower's first read
    for (const clients of [1, 16]) {
      const r = await overConnections(port, clients, DOOR_SECONDS);
      log(
        `door, the mix, ${clients} connection${clients > 1 ? 's' : ''}: ${r.rps.toFixed(0)} requests/s, p50 ${r.p50.toFixed(0)} µs, p99 ${r.p99.toFixed(0)} µs`,
      );
      const q = await overConnections(port, clients, DOOR_SECONDS, inboundRcpt());
      log(
        `door, inbound RCPT, ${clients} connection${clients > 1 ? 's' : ''}: ${q.rps.toFixed(0)} requests/s, p50 ${q.p50.toFixed(0)} µs, p99 ${q.p99.toFixed(0)} µs`,
      );
    }
  } finally {
    daemon.kill('SIGTERM');
    await new Promise((r) => daemon.once('exit', r));
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Dovecot's quota-status on the same mailboxes and the same inbound RCPT requests. */
async function quotaStatus(log) {
  const addresses = Array.from({ length: MAILBOXES }, (_, k) => `user${k + 1}@d${((k + 1) % DOMAINS) + 1}.test`);
  const port = await freePort();
  const qs = await startQuotaStatus(addresses, 1_000_000, port, sleep);
  try {
    // Each mailbox's first request makes its Maildir and index: once for every mailbox, before measuring.
    await overConnections(
      port,
      16,
      60,
      addresses.map((recipient) => ({ request: 'smtpd_access_policy', protocol_state: 'RCPT', recipient, size: '1' })),
      true,
    );
    for (const clients of [1, 16]) {
      const r = await overConnections(port, clients, DOOR_SECONDS, inboundRcpt());
      log(
        `Dovecot quota-status (count backend), inbound RCPT, ${clients} connection${clients > 1 ? 's' : ''}: ${r.rps.toFixed(0)} requests/s, p50 ${r.p50.toFixed(0)} µs, p99 ${r.p99.toFixed(0)} µs`,
      );
    }
  } finally {
    await qs.stop();
  }
}

export async function run(log) {
  const name = `mailmapd_bench_policy_${process.pid}`;
  await prepare(name);
  try {
    log(`${MAILBOXES} mailboxes with quotas (a tenth full), ${ALIASES} aliases; requests: 50% inbound RCPT, 30% authenticated RCPT, 20% END-OF-MESSAGE`);
    await inProcess(dbUrl(name), log);
    await throughDoor(dbUrl(name), log);
    await quotaStatus(log);
  } finally {
    await withClient(serverUrl, (c) => c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`));
  }
}

if (import.meta.url === `file://${process.argv[1]}`) await run(console.log);
