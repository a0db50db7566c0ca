// Where the interop tests find their Dovecots — the host's 2.3, and 2.4 in the Debian 13
// root scripts/dovecot24-root.sh makes (`npm test` makes it) — and a private instance of
// either: its own directory, configuration, master process and doveadm.

import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, chownSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'vitest';
import { defaultLuaFile } from '../../src/cli/dovecot-lua-config.js';
import { waitFor } from './db.js';
import { stopByPidFile } from './pid-file.js';

export const dovecot24Root = process.env.MAILMAPD_DOVECOT24_ROOT ?? '/var/cache/mailmapd/dovecot24';

/** Whether dovecot-auth-lua is installed under `root` ('' for the host). */
export function hasLuaModule(root: string): boolean {
  return [`${root}/usr/lib/dovecot/modules/auth/libauthdb_lua.so`, `${root}/usr/lib/x86_64-linux-gnu/dovecot/libauthdb_lua.so`].some((f) => existsSync(f));
}

/** A Dovecot version under test; each suite adds the settings it needs. */
export interface DovecotTarget {
  version: '2.3' | '2.4';
  /** '' for the host's Dovecot; else the root directory Dovecot runs chrooted in. */
  root: string;
  /** Fails, saying how to get it, when this Dovecot (with the Lua module) is not installed. */
  requireInstalled(): void;
  /** Lines a dovecot.conf of this version starts with. */
  preamble: string[];
}

// Debian 12's own Dovecot.
export const dovecot23Target: DovecotTarget = {
  version: '2.3',
  root: '',
  requireInstalled() {
    expect(spawnSync('dovecot', ['--version']).status, 'dovecot must be installed (apt-get install dovecot-core)').toBe(0);
    expect(hasLuaModule(''), 'dovecot-auth-lua must be installed').toBe(true);
  },
  preamble: [],
};

// Debian 13's Dovecot 2.4, in its root.
export const dovecot24Target: DovecotTarget = {
  version: '2.4',
  root: dovecot24Root,
  requireInstalled() {
    expect(
      existsSync(join(dovecot24Root, 'usr/sbin/dovecot')) && hasLuaModule(dovecot24Root),
      `Dovecot 2.4 with dovecot-auth-lua must be in ${dovecot24Root}: run scripts/dovecot24-root.sh (as root)`,
    ).toBe(true);
  },
  preamble: ['dovecot_config_version = 2.4.1', 'dovecot_storage_version = 2.4.1'],
};

export interface DovecotInstance {
  /** On this host; inside the target's root for a chrooted Dovecot. */
  dir: string;
  /** A path under the root as the chrooted Dovecot sees it. */
  inside(path: string): string;
  /** The shipped Lua script, as this Dovecot sees it (a chrooted one gets a copy in dir). */
  luaFile: string;
  /** dovecot.conf: the version's preamble, this instance's directories, no TLS, then `lines`. */
  writeConfig(lines: string[]): void;
  /** Starts the master and waits for the named sockets in its base_dir. */
  start(sockets: string[]): Promise<void>;
  /** doveadm against this instance, asynchronously: a daemon in this process may have to answer Dovecot meanwhile. */
  doveadm(args: string[], input?: string): Promise<{ code: number | null; out: string }>;
  /** The instance's log so far. */
  log(): string;
  /** Stops the master, waits until it is gone, and removes the directory. */
  stop(): Promise<void>;
}

/** A private instance: base_dir run/, state_dir state/, and vmail/ owned by the daemon's default mail uid 5000 and gid 5001. */
export function dovecotInstance(t: DovecotTarget, prefix: string): DovecotInstance {
  const dir = mkdtempSync(join(t.root === '' ? tmpdir() : join(t.root, 'tmp'), prefix));
  chmodSync(dir, 0o755); // Dovecot's unprivileged processes must reach base_dir
  for (const sub of ['run', 'state', 'vmail']) mkdirSync(join(dir, sub));
  chownSync(join(dir, 'vmail'), 5000, 5001);
  const inside = (path: string) => (t.root === '' ? path : path.slice(t.root.length));
  const command = (bin: string, args: string[]): [string, string[]] => (t.root === '' ? [bin, args] : ['chroot', [t.root, bin, ...args]]);
  let luaFile = defaultLuaFile;
  if (t.root !== '') {
    luaFile = join(dir, 'auth-mailmapd.lua'); // a chrooted Dovecot sees no file outside its root
    copyFileSync(defaultLuaFile, luaFile);
  }
  const conf = inside(join(dir, 'dovecot.conf'));
  const log = () => (existsSync(join(dir, 'dovecot.log')) ? readFileSync(join(dir, 'dovecot.log'), 'utf8') : '');
  let started = false;
  return {
    dir,
    inside,
    luaFile: inside(luaFile),
    writeConfig(lines) {
      const head = [...t.preamble, `base_dir = ${inside(dir)}/run`, `state_dir = ${inside(dir)}/state`, `log_path = ${inside(dir)}/dovecot.log`, 'ssl = no'];
      writeFileSync(join(dir, 'dovecot.conf'), `${[...head, ...lines].join('\n')}\n`);
    },
    async start(sockets) {
      // stdio ignored: the daemonized master keeps inherited pipes open, which would make
      // spawnSync wait for it forever. Startup errors land in dovecot.log.
      const r = spawnSync(...command('dovecot', ['-c', conf]), { stdio: 'ignore', timeout: 20_000 });
      started = true;
      expect(r.status, log() || 'dovecot did not start').toBe(0);
      await waitFor(() => [...sockets, 'master.pid'].every((s) => existsSync(join(dir, 'run', s))), 10_000, `dovecot's ${sockets.join(', ')}`);
    },
    doveadm: (args, input) =>
      new Promise((resolve, reject) => {
        const child = spawn(...command('doveadm', ['-c', conf, ...args]), { stdio: ['pipe', 'pipe', 'pipe'] });
        let out = '';
        child.stdout.on('data', (x) => (out += x));
        child.stderr.on('data', (x) => (out += x));
        child.once('error', (err) => reject(new Error(`doveadm is required for this interop test: ${err.message}`)));
        child.once('close', (code) => resolve({ code, out }));
        child.stdin.end(input ?? '');
      }),
    log,
    async stop() {
      // The master detached: stop it by its pid, and wait until it is gone before its directory goes.
      if (started) await stopByPidFile(join(dir, 'run', 'master.pid'), 'dovecot');
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
