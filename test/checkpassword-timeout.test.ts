// The checkpassword program's documented 20-s bound holds even when the daemon is stopped
// (SIGSTOP: it accepts nothing) with its listen backlog full — where a blocking connect()
// waits forever on a UNIX socket. Dovecot 2.3 has no timeout of its own for the program:
// without the bound, every login process would hang with it.

import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { checkpasswordBinary } from './helpers/logins.js';

/** A child process listening on `target` with a backlog of 1, stopped once listening. */
async function stoppedListener(target: string): Promise<{ child: ChildProcess; port?: number }> {
  const script = `
    const net = require('node:net');
    const s = net.createServer(() => {});
    const t = process.argv[1];
    const ready = () => process.stdout.write(JSON.stringify({ port: s.address().port }) + '\\n');
    if (t.startsWith('/')) s.listen({ path: t, backlog: 1 }, () => process.stdout.write('{}\\n'));
    else s.listen({ host: '127.0.0.1', port: 0, backlog: 1 }, ready);
  `;
  const child = spawn(process.execPath, ['-e', script, target], { stdio: ['ignore', 'pipe', 'inherit'] });
  const line = await new Promise<string>((resolve) => child.stdout!.once('data', (d) => resolve(String(d))));
  child.kill('SIGSTOP');
  return { child, ...(JSON.parse(line) as { port?: number }) };
}

/** Opens connections until the stopped listener's backlog is full (bounded: 50). */
async function fill(open: () => Socket): Promise<Socket[]> {
  const held: Socket[] = [];
  for (let i = 0; i < 50; i++) {
    const s = open();
    s.on('error', () => {});
    held.push(s);
    const outcome = await Promise.race([
      new Promise<string>((r) => s.once('connect', () => r('connected'))),
      new Promise<string>((r) => s.once('error', () => r('refused'))),
      new Promise<string>((r) => setTimeout(() => r('pending'), 300)),
    ]);
    if (outcome !== 'connected') break;
  }
  return held;
}

function runCheckpassword(socket: string): Promise<{ code: number | null; ms: number; stderr: string }> {
  const t0 = performance.now();
  return new Promise((resolve) => {
    const child = spawn(checkpasswordBinary, ['-s', socket], { stdio: ['ignore', 'ignore', 'pipe', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr!.on('data', (d) => (stderr += d));
    (child.stdio[3] as NodeJS.WritableStream).on('error', () => {});
    (child.stdio[4] as NodeJS.ReadableStream).resume();
    (child.stdio[3] as NodeJS.WritableStream).end(Buffer.from('user@example.org\0secret\0\0'));
    const kill = setTimeout(() => child.kill('SIGKILL'), 30_000);
    child.once('exit', (code) => {
      clearTimeout(kill);
      resolve({ code, ms: performance.now() - t0, stderr });
    });
  });
}

describe('mailmapd-checkpassword with the daemon stopped and its backlog full', () => {
  const dir = mkdtempSync(join(tmpdir(), 'mailmapd-cpto-'));
  const children: ChildProcess[] = [];
  const held: Socket[] = [];
  afterAll(() => {
    for (const s of held) s.destroy();
    for (const c of children) {
      c.kill('SIGKILL');
      c.kill('SIGCONT');
    }
    rmSync(dir, { recursive: true, force: true });
  });

  it('gives up with a temporary failure within its 20-s bound, on a UNIX socket and on TCP', async () => {
    const path = join(dir, 'checkpassword');
    const unix = await stoppedListener(path);
    const tcp = await stoppedListener('tcp');
    children.push(unix.child, tcp.child);
    held.push(...(await fill(() => connect(path))), ...(await fill(() => connect(tcp.port!, '127.0.0.1'))));

    const [u, t] = await Promise.all([runCheckpassword(`unix:${path}`), runCheckpassword(`inet:127.0.0.1:${tcp.port}`)]);
    console.log(`unix: exit ${u.code} after ${u.ms.toFixed(0)} ms; tcp: exit ${t.code} after ${t.ms.toFixed(0)} ms`);
    for (const r of [u, t]) {
      expect(r.code).toBe(111);
      expect(r.ms).toBeGreaterThan(19_000);
      expect(r.ms).toBeLessThan(22_000);
      expect(r.stderr).toMatch(/cannot connect to mailmapd/);
    }
  }, 45_000);
});
