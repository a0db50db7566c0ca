// The checkpassword program's bound (20 s by default, -t SECONDS; here 1 s) holds even when
// the daemon is stopped (SIGSTOP: it accepts nothing) with its listen backlog full — where a
// blocking connect() waits forever on a UNIX socket. Dovecot 2.3 has no timeout of its own
// for the program: without the bound, every login process would hang with it. That the
// program gave up by itself shows in its exit code: killed by this test it would have none.

import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { checkpasswordBinary } from '../helpers/logins.js';

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

function runCheckpassword(socket: string): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(checkpasswordBinary, ['-s', socket, '-t', '1'], { stdio: ['ignore', 'ignore', 'pipe', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr!.on('data', (d) => (stderr += d));
    (child.stdio[3] as NodeJS.WritableStream).on('error', () => {});
    (child.stdio[4] as NodeJS.ReadableStream).resume();
    (child.stdio[3] as NodeJS.WritableStream).end(Buffer.from('user@example.org\0secret\0\0'));
    const kill = setTimeout(() => child.kill('SIGKILL'), 30_000);
    child.once('exit', (code) => {
      clearTimeout(kill);
      resolve({ code, stderr });
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

  it('gives up by itself with a temporary failure at its bound, on a UNIX socket and on TCP', async () => {
    const path = join(dir, 'checkpassword');
    const unix = await stoppedListener(path);
    const tcp = await stoppedListener('tcp');
    children.push(unix.child, tcp.child);
    held.push(...(await fill(() => connect(path))), ...(await fill(() => connect(tcp.port!, '127.0.0.1'))));

    const [u, t] = await Promise.all([runCheckpassword(`unix:${path}`), runCheckpassword(`inet:127.0.0.1:${tcp.port}`)]);
    for (const r of [u, t]) {
      expect(r.code).toBe(111);
      expect(r.stderr).toMatch(/cannot connect to mailmapd/);
    }
  });

  it('is bounded at 20 s when -t is not given, and refuses a -t it cannot use', async () => {
    expect(readFileSync(new URL('../../src/checkpassword/checkpassword.c', import.meta.url), 'utf8')).toMatch(/#define TIMEOUT_SECONDS 20\n/);
    for (const bad of ['0', '3601', '2x']) {
      const child = spawn(checkpasswordBinary, ['-t', bad], { stdio: ['ignore', 'ignore', 'pipe', 'pipe', 'pipe'] });
      let stderr = '';
      child.stderr!.on('data', (d) => (stderr += d));
      const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
      expect(code).toBe(111);
      expect(stderr).toMatch(/-t takes whole seconds/);
    }
  });
});
