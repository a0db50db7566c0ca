// New passwords come from stdin (scripts: `printf '%s\n' "$PW" | mailmapd mailbox add …`:
// the password once, one final newline optional)
// or, on a terminal, from a prompt without echo, asked twice. Never from argv, where
// every user of the host can read them in /proc.

import { stdin, stderr } from 'node:process';
import { UsageError } from '../errors.js';

async function readAll(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks)
    .toString('utf8')
    .replace(/\r?\n$/, '');
}

function prompt(question: string): Promise<string> {
  return new Promise((resolve, reject) => {
    stderr.write(question);
    const wasRaw = stdin.isRaw;
    stdin.setRawMode(true);
    stdin.resume();
    let buf = '';
    const onData = (d: Buffer) => {
      for (const ch of d.toString('utf8')) {
        if (ch === '\r' || ch === '\n') {
          cleanup();
          stderr.write('\n');
          resolve(buf);
          return;
        }
        if (ch === '\u0003') {
          cleanup();
          stderr.write('\n');
          reject(new Error('interrupted'));
          return;
        }
        if (ch === '\u007f' || ch === '\b') buf = buf.slice(0, -1);
        else buf += ch;
      }
    };
    const cleanup = () => {
      stdin.removeListener('data', onData);
      stdin.setRawMode(wasRaw);
      stdin.pause();
    };
    stdin.on('data', onData);
  });
}

export async function readNewPassword(): Promise<string> {
  let pw: string;
  if (stdin.isTTY) {
    pw = await prompt('New password: ');
    const again = await prompt('Retype new password: ');
    if (pw !== again) throw new UsageError('passwords do not match');
  } else {
    pw = await readAll();
  }
  if (pw === '') throw new UsageError('empty password (give it on stdin or at the prompt)');
  if (pw.includes('\0')) throw new UsageError('a password cannot contain NUL bytes');
  // stdin holds the password once, with at most one final newline: a second line is most
  // likely the password typed or piped twice, which stored as one string would never log in.
  if (/[\r\n]/.test(pw)) throw new UsageError('a password cannot contain a line break (give it once on stdin, optionally followed by one newline)');
  return pw;
}
