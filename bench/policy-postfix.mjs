// What the policy service costs a real submission (issue 31): a private Postfix whose smtpd
// authenticates through the daemon (SMTP AUTH, `smtpd_sasl_type = dovecot`) and relays to
// Postfix's own smtp-sink, on two ports — one with the `check_policy_service` lines that
// `mailmapd postfix-config` prints (RCPT and END-OF-MESSAGE), one without. Authenticated
// senders with sending limits high enough never to be reached, so every message takes the
// full path: resolve the login, sum the windows, count at END-OF-MESSAGE. Rounds alternate
// between the two ports; messages accepted per second, medians of the rounds, and the ratio.
// Target: with the policy service ≥ 0.95× without. Needs root, Postfix and PostgreSQL.
// Runnable alone: node bench/policy-postfix.mjs

import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { dbUrl, freePort, load, serverUrl, sleep, waitForPort, withClient } from './lib.mjs';

const SENDERS = 200;
const SESSIONS = 8;
const MESSAGES_PER_ROUND = 1200;
const ROUNDS = 5;
const cli = new URL('../dist/cli.js', import.meta.url).pathname;

const services = [
  'pickup unix n - n 60 1 pickup',
  'cleanup unix n - n - 0 cleanup',
  'qmgr unix n - n 300 1 qmgr',
  'rewrite unix - - n - - trivial-rewrite',
  'bounce unix - - n - 0 bounce',
  'defer unix - - n - 0 bounce',
  'trace unix - - n - 0 bounce',
  'verify unix - - n - 1 verify',
  'flush unix n - n 1000? 0 flush',
  'proxymap unix - - n - - proxymap',
  'smtp unix - - n - - smtp',
  'relay unix - - n - - smtp',
  'showq unix n - n - - showq',
  'error unix - - n - - error',
  'retry unix - - n - - error',
  'discard unix - - n - - discard',
  'anvil unix - - n - 1 anvil',
  'scache unix - - n - 1 scache',
  'postlog unix-dgram n - n - 1 postlogd',
];

async function prepare(name) {
  const { migrate } = await load('db/schema.js');
  await withClient(serverUrl, async (c) => {
    await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    await c.query(`CREATE DATABASE ${name}`);
  });
  await withClient(dbUrl(name), async (c) => {
    await migrate(c);
    await c.query(`INSERT INTO mailmapd.domains (name, send_limit_day) VALUES ('example.org', 100000000)`);
    await c.query(`INSERT INTO mailmapd.mailboxes (address, password, send_limit_hour, send_limit_day)
      SELECT 'user' || i || '@example.org', '{PLAIN}pw', 10000000, 10000000 FROM generate_series(1, ${SENDERS}) i`);
  });
}

/** One SMTP session: a command, its (multi-line) reply code. */
function smtp(port) {
  return new Promise((resolve, reject) => {
    const s = connect(port, '127.0.0.1');
    let buf = '';
    let waiting;
    s.setEncoding('utf8');
    s.on('data', (d) => {
      buf += d;
      for (;;) {
        const m = /^(\d{3}) .*\r\n/m.exec(buf);
        if (!m) return;
        buf = buf.slice(m.index + m[0].length);
        const w = waiting;
        waiting = undefined;
        w?.(Number(m[1]));
      }
    });
    s.on('error', reject);
    const command = (line) =>
      new Promise((r) => {
        waiting = r;
        if (line !== undefined) s.write(`${line}\r\n`);
      });
    command().then((greeting) => (greeting === 220 ? resolve({ command, close: () => s.end('QUIT\r\n') }) : reject(new Error(`greeting ${greeting}`))));
  });
}

/** CPU seconds a process has used so far (user + system), from /proc. */
function cpuSeconds(pid) {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(f[11]) + Number(f[12])) / 100;
}

/** Busy CPU seconds of the whole machine so far (every core, from /proc/stat). */
function machineBusySeconds() {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal: busy is all but idle and iowait.
  return (f[0] + f[1] + f[2] + f[5] + f[6] + f[7]) / 100;
}

/** CPU seconds per command name over every process now running (for where a round's CPU went). */
function cpuByCommand() {
  const out = new Map();
  for (const pid of readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    try {
      const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const comm = text.slice(text.indexOf('(') + 1, text.lastIndexOf(')'));
      const f = text.slice(text.lastIndexOf(')') + 2).split(' ');
      out.set(`${pid} ${comm}`, (Number(f[11]) + Number(f[12])) / 100);
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

/** What each command used between two cpuByCommand() readings, summed by name. */
function cpuSpent(before, after) {
  const by = new Map();
  for (const [k, v] of after) {
    const name = k.slice(k.indexOf(' ') + 1);
    by.set(name, (by.get(name) ?? 0) + v - (before.get(k) ?? 0));
  }
  return by;
}

/** `count` messages over SESSIONS authenticated sessions; messages accepted per second. */
async function submit(port, count, round) {
  let next = 0;
  let refused = 0;
  const t = performance.now();
  await Promise.all(
    Array.from({ length: SESSIONS }, async (_, k) => {
      const s = await smtp(port);
      const user = `user${((round * SESSIONS + k) % SENDERS) + 1}@example.org`;
      if ((await s.command('EHLO bench.test')) !== 250) throw new Error('EHLO refused');
      if ((await s.command(`AUTH PLAIN ${Buffer.from(`\0${user}\0pw`).toString('base64')}`)) !== 235) throw new Error('AUTH refused');
      while (next < count) {
        const i = next++;
        if ((await s.command(`MAIL FROM:<${user}>`)) !== 250) throw new Error('MAIL refused');
        if ((await s.command(`RCPT TO:<r${i}@remote.test>`)) !== 250) {
          refused++;
          await s.command('RSET');
          continue;
        }
        if ((await s.command('DATA')) !== 354) throw new Error('DATA refused');
        if ((await s.command(`From: <${user}>\r\nSubject: bench ${i}\r\n\r\n${'x'.repeat(1000)}\r\n.`)) !== 250) refused++;
      }
      s.close();
    }),
  );
  if (refused > 0) throw new Error(`${refused} messages refused: the limits should never be reached`);
  return count / ((performance.now() - t) / 1000);
}

function startPostfix(dir, ports, saslSocket, policySocket, sinkPort) {
  for (const sub of ['etc', 'spool', 'data']) mkdirSync(join(dir, sub), { recursive: true });
  const uid = Number(spawnSync('id', ['-u', 'postfix'], { encoding: 'utf8' }).stdout);
  chownSync(join(dir, 'data'), uid, 0);
  const check = `check_policy_service { unix:${policySocket}, default_action=DUNNO }`;
  writeFileSync(
    join(dir, 'etc/main.cf'),
    [
      'compatibility_level = 3.6',
      `queue_directory = ${dir}/spool`,
      `data_directory = ${dir}/data`,
      'mail_owner = postfix',
      'setgid_group = postdrop',
      'myhostname = mx.example.test',
      'mydestination =',
      'alias_maps =',
      'alias_database =',
      'inet_interfaces = 127.0.0.1',
      'inet_protocols = ipv4',
      `maillog_file = ${dir}/maillog`,
      `maillog_file_prefixes = ${dir}`,
      'smtpd_sasl_auth_enable = yes',
      'smtpd_sasl_type = dovecot',
      `smtpd_sasl_path = ${saslSocket}`,
      'smtpd_tls_auth_only = no',
      'smtpd_relay_restrictions = permit_sasl_authenticated, reject',
      `relayhost = [127.0.0.1]:${sinkPort}`,
      'smtp_tls_security_level = none',
      // The policy service's two checks, as `mailmapd postfix-config` prints them.
      `policy_check = ${check}`,
      '',
    ].join('\n'),
  );
  writeFileSync(
    join(dir, 'etc/master.cf'),
    [
      `127.0.0.1:${ports.without} inet n - n - - smtpd`,
      `127.0.0.1:${ports.with} inet n - n - - smtpd`,
      '  -o smtpd_recipient_restrictions=$policy_check',
      '  -o smtpd_end_of_data_restrictions=$policy_check',
      ...services,
      '',
    ].join('\n'),
  );
  const r = spawnSync('/usr/sbin/postfix', ['-c', join(dir, 'etc'), 'start'], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`postfix start: ${r.stderr}`);
}

export async function run(log) {
  if (!existsSync('/usr/sbin/postfix') || !existsSync('/usr/sbin/smtp-sink')) throw new Error('needs Postfix (apt-get install postfix)');
  const name = 'mailmapd_bench_policy_postfix';
  await prepare(name);
  // The queue on tmpfs where there is one: Postfix fsyncs every message, and this machine's
  // disk latency varied the rounds by half; the policy service's cost is CPU and round trips.
  const dir = mkdtempSync(join(existsSync('/dev/shm') ? '/dev/shm' : tmpdir(), 'mailmapd-bench-pfx-'));
  chmodSync(dir, 0o755);
  const ports = { without: await freePort(), with: await freePort(), sink: await freePort() };
  // UNIX sockets, as a mail server runs it (the contract's unix:/run/mailmapd/policy).
  const sockets = { auth: join(dir, 'auth'), policy: join(dir, 'policy') };
  writeFileSync(
    join(dir, 'mailmapd.conf'),
    [
      `database_url = ${dbUrl(name)}`,
      `policy_listen = unix:${sockets.policy}`,
      `auth_listen = unix:${sockets.auth}`,
      'unix_socket_mode = 0666',
      'socketmap_listen =',
      'checkpassword_listen =',
      `http_listen = 127.0.0.1:${await freePort()}`,
      'snapshot_file =',
      'dkim_dir =',
      'log_level = warn',
      '',
    ].join('\n'),
  );
  const prof = process.env.BENCH_CPU_PROF ? ['--cpu-prof', '--cpu-prof-dir', process.env.BENCH_CPU_PROF] : [];
  const daemon = spawn(process.execPath, [...prof, cli, '-c', join(dir, 'mailmapd.conf'), 'serve'], { stdio: ['ignore', 'ignore', 'inherit'] });
  // Postfix's own sink: accepts every message and throws it away.
  const sink = spawn('/usr/sbin/smtp-sink', ['-u', 'postfix', `127.0.0.1:${ports.sink}`, '256'], { stdio: 'ignore' });
  try {
    for (let i = 0; i < 300 && !(existsSync(sockets.auth) && existsSync(sockets.policy)); i++) await sleep(100);
    await sleep(1500); // the directory's first load
    startPostfix(join(dir, 'postfix'), ports, sockets.auth, sockets.policy, ports.sink);
    await waitForPort(ports.without);
    await waitForPort(ports.with);
    await submit(ports.without, 200, 99); // warm both paths
    await submit(ports.with, 200, 98);
    const rates = { without: [], with: [] };
    const cpu = { without: 0, with: 0 };
    const byCommand = { without: new Map(), with: new Map() };
    const machine = { without: [], with: [] };
    for (let round = 0; round < ROUNDS; round++) {
      for (const which of round % 2 === 0 ? ['without', 'with'] : ['with', 'without']) {
        const before = cpuSeconds(daemon.pid);
        const all = cpuByCommand();
        const busy = machineBusySeconds();
        rates[which].push(await submit(ports[which], MESSAGES_PER_ROUND, round));
        machine[which].push(((machineBusySeconds() - busy) / MESSAGES_PER_ROUND) * 1e6);
        cpu[which] += cpuSeconds(daemon.pid) - before;
        for (const [k, v] of cpuSpent(all, cpuByCommand())) byCommand[which].set(k, (byCommand[which].get(k) ?? 0) + v);
      }
    }
    const perMessage = (which) => ((cpu[which] / (ROUNDS * MESSAGES_PER_ROUND)) * 1e6).toFixed(0);
    const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
    const a = median(rates.without);
    const b = median(rates.with);
    log(`Postfix submission, ${SESSIONS} authenticated sessions, relayed to smtp-sink, ${ROUNDS} alternating rounds of ${MESSAGES_PER_ROUND} messages:`);
    log(`  without the policy service: ${a.toFixed(0)} messages/s (rounds ${rates.without.map((x) => x.toFixed(0)).join(', ')})`);
    log(`  with check_policy_service at RCPT and END-OF-MESSAGE: ${b.toFixed(0)} messages/s (rounds ${rates.with.map((x) => x.toFixed(0)).join(', ')})`);
    log(`  ratio with/without: ${(b / a).toFixed(3)} (target ≥ 0.95)`);
    // On a host whose CPU is the limit, messages/s goes as 1 / CPU per message: the steadier
    // estimate of the cost when the rates themselves are noisy.
    const ma = median(machine.without);
    const mb = median(machine.with);
    log(
      `  the whole machine's CPU per message (median of rounds): ${ma.toFixed(0)} µs without, ${mb.toFixed(0)} µs with: a CPU-bound host would send ${(ma / mb).toFixed(3)}× as many messages/s`,
    );
    log(`  the daemon's CPU per message: ${perMessage('without')} µs without (SMTP AUTH only), ${perMessage('with')} µs with the policy service`);
    const n = ROUNDS * MESSAGES_PER_ROUND;
    const top = [...byCommand.with]
      .filter(([, v]) => v > 0.05)
      .sort((x, y) => y[1] - x[1])
      .slice(0, 8);
    log(
      `  every process's CPU per message, without → with: ${top
        .map(([k, v]) => `${k} ${(((byCommand.without.get(k) ?? 0) / n) * 1e6).toFixed(0)} → ${((v / n) * 1e6).toFixed(0)} µs`)
        .join(', ')}`,
    );
    await sleep(1500); // the write-back's next batch
    const counted = await withClient(dbUrl(name), (c) =>
      c.query(`SELECT coalesce(sum(count), 0)::int AS n FROM mailmapd.send_counts WHERE address NOT LIKE '@%'`),
    );
    log(`  recipients counted per mailbox in send_counts: ${counted.rows[0].n} (the ${ROUNDS * MESSAGES_PER_ROUND + 200} messages through the policy port)`);
  } finally {
    spawnSync('/usr/sbin/postfix', ['-c', join(dir, 'postfix/etc'), 'stop'], { encoding: 'utf8' });
    sink.kill('SIGTERM');
    daemon.kill('SIGTERM');
    await new Promise((r) => daemon.once('exit', r));
    await sleep(500);
    const maillog = join(dir, 'postfix/maillog');
    if (existsSync(maillog) && /fatal|panic/.test(readFileSync(maillog, 'utf8'))) log('  (Postfix logged fatal errors: see the maillog)');
    rmSync(dir, { recursive: true, force: true });
    await withClient(serverUrl, (c) => c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`));
  }
}

if (import.meta.url === `file://${process.argv[1]}`) await run(console.log);
