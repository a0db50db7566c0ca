// What the login benchmarks share: the built daemon's modules, the test hash, and a load
// generator that speaks the auth-client protocol like Postfix (one request at a time per
// connection, several connections).

import { connect } from 'node:net';

export { load, sleep } from './lib.mjs';

// "secret", SHA512-CRYPT with the default 5000 rounds (test/vectors/dovecot-pw.tsv).
export const HASH = '{SHA512-CRYPT}$6$lXRp1ig.4KPF2O5i$8hULb3sBLbI1Eo5rjuOrw262V.pizuOv3igQTRCz/cfOctXAnCnIVo7857/Esw/QbDljhogP5FOeQDddoyfos0';
export const USERS = 200;
export const CONNECTIONS = 8;
export const SECONDS = 3;

export const plain = (u, p) => Buffer.from(`\0${u}\0${p}`).toString('base64');

/** One auth-client connection to Dovecot: handshake, then sequential PLAIN logins until `until`. */
export async function loginLoop(path, until, offset) {
  const sock = connect(path);
  sock.setEncoding('utf8');
  let buf = '';
  let waiting;
  sock.on('data', (d) => {
    buf += d;
    let nl;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      if (waiting && (line.startsWith('OK\t') || line.startsWith('FAIL\t'))) waiting(line);
    }
  });
  await new Promise((resolve, reject) => {
    sock.once('connect', resolve);
    sock.once('error', reject);
  });
  sock.write(`VERSION\t1\t2\nCPID\t${process.pid}\n`);
  let ok = 0;
  let failed = 0;
  for (let id = 1; performance.now() < until; id++) {
    const user = `u${(offset + id) % USERS}@bench.test`;
    const line = await new Promise((resolve) => {
      waiting = resolve;
      sock.write(`AUTH\t${id}\tPLAIN\tservice=imap\tno-penalty\tresp=${plain(user, 'secret')}\n`);
    });
    if (line.startsWith('OK\t')) ok++;
    else failed++;
  }
  sock.destroy();
  return { ok, failed };
}

export async function loginsPerSecond(path, seconds = SECONDS) {
  const until = performance.now() + seconds * 1000;
  const t0 = performance.now();
  const r = await Promise.all(Array.from({ length: CONNECTIONS }, (_, i) => loginLoop(path, until, i * 25)));
  const secs = (performance.now() - t0) / 1000;
  return { rate: r.reduce((a, x) => a + x.ok, 0) / secs, failed: r.reduce((a, x) => a + x.failed, 0) };
}
