// The CLI as an administrator runs it against a test database: no config file, the database
// from MAILMAPD_DATABASE_URL; the exit code, stdout and stderr.

import { execFile } from 'node:child_process';
import { cliPath } from './daemon.js';

export interface CliRun {
  code: number;
  out: string;
  err: string;
}

export function runCli(url: string, args: string[], opts: { trim?: boolean } = {}): Promise<CliRun> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [cliPath, ...args],
      { env: { ...process.env, MAILMAPD_CONFIG: '/dev/null', MAILMAPD_DATABASE_URL: url } },
      (err, stdout, stderr) => {
        const code = err ? Number((err as { code?: number }).code ?? 1) : 0;
        resolve(opts.trim ? { code, out: stdout.trim(), err: stderr.trim() } : { code, out: stdout, err: stderr });
      },
    );
  });
}
