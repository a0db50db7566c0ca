// Starts the real daemon (`node dist/cli.js serve`) the way an administrator would: a
// config file, its own listeners on free loopback ports, a database. Tests talk to it
// with the real Postfix and Dovecot tools.

import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const root = fileURLToPath(new URL('../..', import.meta.url));
export const cliPath = join(root, 'dist/cli.js');

/** Binds 127.0.0.1:port (0: any) and closes it again: the port, or undefined when it was taken. */
function tryPort(port: number): Promise<number | undefined> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once('error', () => resolve(undefined));
    s.listen(port, '127.0.0.1', () => {
      const a = s.address();
      const got = typeof a === 'object' && a ? a.port : 0;
      s.close(() => resolve(got));
    });
  });
}

/** The first port of the kernel's ephemeral range (the ports outgoing connections are given). */
function ephemeralStart(): number {
  try {
    return Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]) || 32768;
  } catch {
    return 32768;
  }
}

/**
 * A loopback port free now, for a listener a test starts soon after. Picked below the
 * ephemeral range: a port bind(0) gives is one an outgoing connection may take next, and
 * while the suite runs, other files hold thousands of them (connection-limits), so the
 * daemon's bind a second later could find it taken. Below the range only another test's
 * listener can take it, and the pick is random over ten thousand ports.
 */
export async function freePort(): Promise<number> {
  const top = ephemeralStart();
  const bottom = Math.max(10_000, top - 12_000);
  for (let i = 0; i < 50 && top - bottom > 1000; i++) {
    const port = await tryPort(bottom + Math.floor(Math.random() * (top - bottom)));
    if (port !== undefined) return port;
  }
  const port = await tryPort(0);
  if (port === undefined) throw new Error('no free loopback port');
  return port;
}

export interface Daemon {
  dir: string;
  configPath: string;
  ports: { socketmap: number; auth: number; checkpassword: number; http: number };
  /** Everything the daemon logged so far. */
  logs(): string;
  http(path: string, init?: RequestInit): Promise<Response>;
  /** Sends a signal and resolves with the exit code once it has exited. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
  process: ChildProcess;
}

export interface DaemonOptions {
  databaseUrl: string;
  /** Extra `key = value` lines. */
  config?: Record<string, string>;
  /** Wait for /readyz 200 (default) or only for the HTTP listener. */
  waitReady?: boolean;
}

/**
 * Starts the daemon on free ports. A port freePort() found can be taken by another test
 * before the daemon binds it: then the start is tried again on new ports.
 */
export async function startDaemon(opts: DaemonOptions): Promise<Daemon> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await startDaemonOnce(opts);
    } catch (err) {
      if (attempt >= 3 || !/EADDRINUSE/.test((err as Error).message)) throw err;
    }
  }
}

async function startDaemonOnce(opts: DaemonOptions): Promise<Daemon> {
  const dir = mkdtempSync(join(tmpdir(), 'mailmapd-test-'));
  const ports = { socketmap: await freePort(), auth: await freePort(), checkpassword: await freePort(), http: await freePort() };
  const lines: Record<string, string> = {
    database_url: opts.databaseUrl,
    socketmap_listen: `inet:127.0.0.1:${ports.socketmap}`,
    auth_listen: `inet:127.0.0.1:${ports.auth}`,
    checkpassword_listen: `inet:127.0.0.1:${ports.checkpassword}`,
    http_listen: `127.0.0.1:${ports.http}`,
    sync_poll_interval: '200ms',
    reconnect_max_delay: '500ms',
    auth_failure_delay: '50ms',
    log_level: 'debug',
    snapshot_file: join(dir, 'directory.snapshot'),
    // Not the system's /var/lib/mailmapd/dkim: a test that signs names its own (test/interop/dkim-signing.test.ts).
    dkim_dir: '',
    ...opts.config,
  };
  const configPath = join(dir, 'mailmapd.conf');
  writeFileSync(
    configPath,
    Object.entries(lines)
      .map(([k, v]) => `${k} = ${v}\n`)
      .join(''),
  );
  const child = spawn(process.execPath, [cliPath, 'serve', '-c', configPath], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, MAILMAPD_CONFIG: '' },
  });
  let log = '';
  child.stdout!.on('data', (d) => (log += d));
  child.stderr!.on('data', (d) => (log += d));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const base = `http://127.0.0.1:${ports.http}`;
  const daemon: Daemon = {
    dir,
    configPath,
    ports,
    process: child,
    logs: () => log,
    // A fresh connection per request: tests block their event loop in spawnSync (the CLI)
    // for longer than the daemon keeps an idle connection, and a kept-alive connection the
    // daemon closed meanwhile would fail the next request with "other side closed".
    http: (path, init) => fetch(base + path, { ...init, headers: { connection: 'close', ...(init?.headers as Record<string, string> | undefined) } }),
    async stop(signal = 'SIGTERM') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      const t = setTimeout(() => child.kill('SIGKILL'), 15000);
      const code = await exited;
      clearTimeout(t);
      rmSync(dir, { recursive: true, force: true });
      return code;
    },
  };
  const deadline = Date.now() + 30000;
  for (;;) {
    if (child.exitCode !== null) {
      rmSync(dir, { recursive: true, force: true });
      throw new Error(`daemon exited with ${child.exitCode}:\n${log}`);
    }
    try {
      const r = await fetch(base + (opts.waitReady === false ? '/healthz' : '/readyz'));
      if (r.status === 200) break;
    } catch {
      /* not listening yet */
    }
    if (Date.now() > deadline) {
      await daemon.stop('SIGKILL');
      throw new Error(`daemon not ready after 30 s:\n${log}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return daemon;
}
