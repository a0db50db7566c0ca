// A private OpenDKIM milter for tests: Debian's `opendkim` in the foreground (`-f -x CONF`)
// with its own config, pid file and loopback port, signing with the KeyTable and
// SigningTable mailmapd keeps in dkim_dir. The config is the OpenDKIM part of what
// `mailmapd dkim-config` prints, with the test's socket and pid file. Nothing of the host's
// OpenDKIM is used.

import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { chownSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { freePort } from './daemon.js';
import { waitFor } from './db.js';

export interface OpenDkim {
  port: number;
  pidFile: string;
  logs(): string;
  stop(): Promise<void>;
}

const accepts = (port: number) =>
  new Promise<boolean>((resolve) => {
    const s = connect(port, '127.0.0.1');
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });

/**
 * The settings of one OpenDKIM part of `mailmapd dkim-config`'s output (`# --- NAME…`),
 * comments left out; a part that lists only what differs (the Ed25519 instance) is laid
 * over `base`'s settings.
 */
export function openDkimSettings(dkimConfigOutput: string, name: string, base: readonly string[] = []): string[] {
  const part = dkimConfigOutput.split('# --- ').find((p) => p.startsWith(name));
  if (part === undefined) throw new Error(`no "${name}" part in:\n${dkimConfigOutput}`);
  const own = part
    .split('\n')
    .slice(1)
    .filter((l) => l.trim() !== '' && !l.startsWith('#'));
  const key = (l: string) => l.split(/\s/)[0];
  return [...base.filter((b) => !own.some((o) => key(o) === key(b))), ...own];
}

/** `settings`: opendkim.conf lines; Socket is replaced by a loopback port (the test's Postfix is not chrooted to the spool). */
export async function startOpenDkim(dir: string, settings: readonly string[]): Promise<OpenDkim> {
  mkdirSync(dir, { recursive: true });
  const port = await freePort();
  const pidFile = join(dir, 'opendkim.pid');
  const conf = join(dir, 'opendkim.conf');
  // UserID opendkim: the pid file is written after the switch.
  const uid = Number(spawnSync('id', ['-u', 'opendkim'], { encoding: 'utf8' }).stdout);
  chownSync(dir, uid, -1);
  writeFileSync(
    conf,
    ['Syslog no', `PidFile ${pidFile}`, `Socket inet:${port}@127.0.0.1`, ...settings.filter((l) => !/^(Socket|PidFile|Syslog)\s/.test(l)), ''].join('\n'),
  );
  const child: ChildProcess = spawn('/usr/sbin/opendkim', ['-f', '-x', conf], { stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  child.stdout!.on('data', (d) => (log += d));
  child.stderr!.on('data', (d) => (log += d));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  await waitFor(
    async () => {
      if (child.exitCode !== null) throw new Error(`opendkim exited ${child.exitCode}:\n${log}`);
      return existsSync(pidFile) && Number(readFileSync(pidFile, 'utf8')) === child.pid && (await accepts(port));
    },
    20_000,
    'opendkim listening',
  );
  return {
    port,
    pidFile,
    logs: () => log,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      await exited;
    },
  };
}
