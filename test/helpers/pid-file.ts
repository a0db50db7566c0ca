// Stopping a daemon that detached from the test (Dovecot's and Postfix's masters) by the pid
// it wrote, and waiting until it is really gone before its directory is removed.

import { existsSync, readFileSync } from 'node:fs';
import { waitFor } from './db.js';

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

export async function stopByPidFile(pidFile: string, what: string): Promise<void> {
  if (!existsSync(pidFile)) return;
  const pid = Number(readFileSync(pidFile, 'utf8').trim());
  if (!(pid > 0) || !alive(pid)) return;
  process.kill(pid, 'SIGTERM');
  await waitFor(() => !alive(pid), 10_000, `${what} to stop`);
}
