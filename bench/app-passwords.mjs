// Login cost with app passwords: the shared login decision (what every door calls) with
// the verified-credential cache off, so that every login really verifies, for a mailbox
// with 0, 1 and 30 app passwords — right mailbox password, right app password (the last
// one checked), wrong password — in one run. App passwords as `app-password add` makes
// them ({SSHA256} of a random string), and 30 that a panel wrote with a slow scheme
// (SHA512-CRYPT, 5000 rounds, like the mailbox password). One login at a time, one hash
// worker: the numbers are per-login CPU cost, and the ratios compare with no app passwords.
// Runnable alone: node bench/app-passwords.mjs

import { load } from './lib.mjs';

const SECONDS = 1.5;

export async function run(log) {
  const { createAuthenticator } = await load('auth/authenticator.js');
  const { createDirectory, emptyData } = await load('directory/directory.js');
  const { createLogger } = await load('log.js');
  const { createMetrics } = await load('metrics.js');
  const { createHashPool } = await load('password/pool.js');
  const { hashPassword } = await load('password/hash.js');
  const { generateAppPassword } = await load('cli/app-password.js');

  const main = await hashPassword('secret', 'SHA512-CRYPT');
  const make = async (n, scheme) => {
    const apps = [];
    for (let i = 0; i < n; i++) {
      const pw = generateAppPassword();
      apps.push({ pw, stored: { name: `device${i}`, password: await hashPassword(pw, scheme), services: [] } });
    }
    return apps;
  };
  const cases = [
    ['none', []],
    ['1 generated', await make(1, 'SSHA256')],
    ['30 generated', await make(30, 'SSHA256')],
    ['30 slow (panel, SHA512-CRYPT)', await make(30, 'SHA512-CRYPT')],
  ];

  const directory = createDirectory({ recipientDelimiter: '+' });
  const data = emptyData();
  data.domains.set('bench.test', true);
  cases.forEach(([, apps], i) => {
    data.mailboxes.set(`u${i}@bench.test`, { password: main, quotaBytes: 0, active: true, appPasswords: apps.map((a) => a.stored) });
  });
  directory.replaceAll(data);
  const metrics = createMetrics(false);
  const logger = createLogger('error', () => {});
  const pool = createHashPool({ workers: 1, queueLimit: 100, defaultScheme: 'CRYPT', metrics, logger });
  const auth = createAuthenticator({ directory, pool, logger, metrics, userdb: { mailHome: '/var/vmail/%d/%n', mailUid: 5000, mailGid: 5000 }, cacheSize: 0 });
  const ctx = { service: 'imap' };

  const measure = async (user, password, want, ms) => {
    let n = 0;
    const t0 = performance.now();
    while (performance.now() - t0 < ms) {
      const out = await auth.authenticate(user, password, ctx);
      if (out.result !== want) throw new Error(`${user}: expected ${want}, got ${out.result}`);
      n++;
    }
    return ((performance.now() - t0) * 1000) / n; // µs per login
  };

  const configs = [];
  for (const [i, [label, apps]] of cases.entries()) {
    const user = `u${i}@bench.test`;
    configs.push({ label, what: 'right mailbox password', user, pw: 'secret', want: 'ok', baseKey: 'main', first: i === 0 });
    if (apps.length > 0) configs.push({ label, what: 'right app password (last)', user, pw: apps[apps.length - 1].pw, want: 'ok', baseKey: 'main' });
    configs.push({ label, what: 'wrong password', user, pw: 'not-the-password', want: 'fail', baseKey: 'wrong', first: i === 0 });
  }
  // Round robin, best of five short rounds each: a busy machine slows a round, not a case.
  for (const c of configs) await measure(c.user, c.pw, c.want, 50);
  for (let round = 0; round < 5; round++) {
    for (const c of configs) c.best = Math.min(c.best ?? Infinity, await measure(c.user, c.pw, c.want, (SECONDS * 1000) / 5));
  }
  const base = Object.fromEntries(configs.filter((c) => c.first).map((c) => [c.baseKey, c.best]));
  log('app passwords on the mailbox  | login                      | µs per login | × the same login without app passwords');
  for (const c of configs) log(`${c.label.padEnd(30)}| ${c.what.padEnd(26)} | ${c.best.toFixed(0).padStart(12)} | ${(c.best / base[c.baseKey]).toFixed(2)}×`);
  auth.close();
  await pool.close();
}

if (import.meta.url === `file://${process.argv[1]}`) await run(console.log);
