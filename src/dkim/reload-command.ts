// Running dkim_reload_command, and finding dkim_group's id. The command comes from the
// config file alone, which is trusted like the rest of it (only root may write it), and is
// run by /bin/sh -c so that it may reload two signers (`…; …`); nothing from the database
// or from a client ever becomes part of it. Only its exit status is reported; its output
// is not read into any log line.

import { execFile, spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';

export interface CommandResult {
  ok: boolean;
  /** `exit 0`, `exit 1`, `signal SIGTERM`, or the spawn error's code (ENOENT). */
  status: string;
}

export function runReloadCommand(command: string, timeoutMs = 30_000): Promise<CommandResult> {
  if (command.trim() === '') return Promise.resolve({ ok: true, status: 'none' });
  return new Promise((resolve) => {
    let done = false;
    const finish = (r: CommandResult) => {
      if (!done) resolve(r);
      done = true;
    };
    const child = spawn('/bin/sh', ['-c', command], { stdio: 'ignore', timeout: timeoutMs });
    child.once('error', (err: NodeJS.ErrnoException) => finish({ ok: false, status: err.code ?? 'error' }));
    child.once('exit', (code, signal) =>
      finish(code === 0 ? { ok: true, status: 'exit 0' } : { ok: false, status: signal ? `signal ${signal}` : `exit ${code}` }),
    );
  });
}

/** The group's id from /etc/group, else `getent group` (NSS); undefined when neither knows it. */
export async function groupId(name: string): Promise<number | undefined> {
  if (/^\d+$/.test(name)) return Number(name);
  try {
    for (const line of (await readFile('/etc/group', 'utf8')).split('\n')) {
      const f = line.split(':');
      if (f[0] === name && f[2] !== undefined && /^\d+$/.test(f[2])) return Number(f[2]);
    }
  } catch {
    /* no /etc/group: ask NSS */
  }
  return new Promise((resolve) => {
    execFile('getent', ['group', name], { timeout: 5000 }, (err, stdout) => {
      const gid = err ? undefined : String(stdout).split(':')[2];
      resolve(gid !== undefined && /^\d+$/.test(gid) ? Number(gid) : undefined);
    });
  });
}
