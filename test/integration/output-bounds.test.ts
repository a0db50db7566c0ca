// A client that sends and never reads cannot grow the daemon: the auth-client socket (a
// flood of CONT lines for unknown ids, each answered with a FAIL) and the checkpassword
// socket (thousands of pipelined requests) stop reading a connection while its unsent
// replies pass 64 KiB. The doors run in this process over the real authenticator and
// directory; the flood comes from a child process, so this process's RSS is the daemon's.
//
// The bound stated: a connection that does not read holds at most ~512 KiB of replies
// (64 KiB plus the replies to one 64 KiB read); the test allows 48 MiB of RSS growth for
// the whole flood (collector noise), where the unbounded daemon grew by hundreds.

import { spawn } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeRequest } from '../../src/checkpassword/wire.js';
import { closePool, startDoors, type Doors } from '../helpers/logins.js';

const FLOOD_BYTES = 24 * 1024 * 1024;
const RSS_BOUND = 48 * 1024 * 1024;
const hello = Buffer.from('VERSION\t1\t0\nCPID\t1\n');
const lookupRequest = encodeRequest({ mode: 'lookup', user: 'user@example.org', password: '', service: 'imap', remoteIp: '', localIp: '', secured: false });

/** A child that connects to `path`, writes `unit` repeatedly (after `head`) up to FLOOD_BYTES, never reads, and reports. */
function flood(path: string, head: Buffer, unit: Buffer, total = FLOOD_BYTES): Promise<{ written: number }> {
  const script = `
    const net = require('node:net');
    const head = Buffer.from(process.argv[2], 'base64');
    const unit = Buffer.from(process.argv[3], 'base64');
    const total = Number(process.argv[4]);
    const chunk = Buffer.concat(Array(Math.ceil(65536 / unit.length)).fill(unit));
    const s = net.connect(process.argv[1]);
    s.on('error', () => process.exit(0));
    let written = 0;
    const done = () => { console.log(JSON.stringify({ written })); process.exit(0); };
    // Bounded in time: a daemon that stops reading leaves this waiting for 'drain' until then.
    setTimeout(done, 8000);
    s.once('connect', () => {
      s.write(head);
      const pump = () => {
        while (written < total) {
          written += chunk.length;
          if (!s.write(chunk)) return void s.once('drain', pump);
        }
        setTimeout(done, 1000);
      };
      pump();
    });
  `;
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['-e', script, path, head.toString('base64'), unit.toString('base64'), String(total)], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.once('exit', () => {
      try {
        resolve(JSON.parse(out));
      } catch {
        reject(new Error(`flood child said ${JSON.stringify(out)}`));
      }
    });
  });
}

/** The highest RSS of this process while `work` runs, sampled every 50 ms, minus the RSS before. */
async function rssGrowth<T>(work: () => Promise<T>): Promise<[T, number]> {
  const before = process.memoryUsage().rss;
  let peak = before;
  const t = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 50);
  try {
    const out = await work();
    peak = Math.max(peak, process.memoryUsage().rss);
    return [out, peak - before];
  } finally {
    clearInterval(t);
  }
}

describe('a client that never reads', () => {
  let doors: Doors;
  beforeAll(async () => {
    doors = await startDoors();
    // Warm up (code paths compiled, buffers allocated) so that growth measures the flood only.
    await flood(doors.checkpasswordSocket, Buffer.alloc(0), lookupRequest, 64 * 1024);
    await flood(doors.authSocket, hello, Buffer.from('CONT\t7\tx\n'), 64 * 1024);
  }, 30_000);
  afterAll(async () => {
    await doors?.close();
    await closePool();
  });

  it('cannot grow the daemon through pipelined checkpassword requests', async () => {
    const [r, grown] = await rssGrowth(() => flood(doors.checkpasswordSocket, Buffer.alloc(0), lookupRequest));
    console.log(`checkpassword: ${(r.written / 1048576).toFixed(1)} MiB sent, RSS +${(grown / 1048576).toFixed(1)} MiB`);
    expect(grown).toBeLessThan(RSS_BOUND);
  }, 60_000);

  it('cannot grow the daemon through CONT lines for unknown request ids', async () => {
    const [r, grown] = await rssGrowth(() => flood(doors.authSocket, hello, Buffer.from('CONT\t7\tx\n')));
    console.log(`auth-client: ${(r.written / 1048576).toFixed(1)} MiB sent, RSS +${(grown / 1048576).toFixed(1)} MiB`);
    expect(grown).toBeLessThan(RSS_BOUND);
  }, 60_000);

  it('is still answered when it reads again', async () => {
    const { lineClient } = await import('../helpers/logins.js');
    const c = await lineClient(doors.authSocket);
    c.send('VERSION\t1\t0\nCPID\t1\n');
    c.socket.pause();
    c.send('CONT\t7\tx\n'.repeat(100_000));
    await new Promise((r) => setTimeout(r, 300));
    c.socket.resume();
    await c.waitFor((l) => l.startsWith('FAIL\t7'), 5000);
    c.send('AUTH\t1\tPLAIN\tservice=smtp\tresp=AHVzZXJAZXhhbXBsZS5vcmcAc2VjcmV0\n');
    expect(await c.waitFor((l) => l.startsWith('OK\t1'), 10_000)).toMatch(/user=user@example.org/);
    c.close();
  }, 30_000);
});
