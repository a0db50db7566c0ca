// The mail-store commands `mailmapd dovecot-config` prints, run as printed (as root, in a
// private mount namespace with an overlay on /etc, so the user never reaches the host), give
// the configured mail_uid a directory where Dovecot's LMTP can create a mailbox's Maildir.

import { spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { dovecotConfig } from '../../src/cli/dovecot-config.js';
import { dovecotLuaConfig } from '../../src/cli/dovecot-lua-config.js';
import { mailStoreRoot } from '../../src/cli/mail-store-config.js';
import { parseConfigText } from '../../src/config.js';

const dir = mkdtempSync(join(tmpdir(), 'mailmapd-store-'));
chmodSync(dir, 0o755);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** The commands under the mail-store heading, without their comment marks. */
function printedCommands(text: string): string[] {
  const start = text.indexOf('# ---- The mail store');
  expect(start, 'dovecot-config prints the mail store section').toBeGreaterThanOrEqual(0);
  return text
    .slice(start)
    .split('\n')
    .filter((l) => l.startsWith('#   ') && !l.includes('mail_location') && !l.startsWith('#   #'))
    .map((l) => l.slice(4))
    .slice(0, 3);
}

describe('the mail store dovecot-config prints', () => {
  it('names the fixed part of mail_home', () => {
    expect(mailStoreRoot('/var/vmail/%d/%n')).toBe('/var/vmail');
    expect(mailStoreRoot('/srv/mail/%{domain}/%{user}')).toBe('/srv/mail');
    expect(mailStoreRoot('/home/vmail-%d/%n')).toBe('/home');
  });

  it('is made by its commands: the mail user then creates a Maildir under mail_home', () => {
    const uid = 40000 + Math.floor(Math.random() * 20000);
    const config = parseConfigText(`mail_home = ${dir}/vmail/%d/%n\nmail_uid = ${uid}\nmail_gid = ${uid}\n`, 'test.conf');
    const text = dovecotConfig(config, []);
    expect(dovecotLuaConfig(config)).toContain('# ---- The mail store');
    expect(text).toContain('mail_location = maildir:~/Maildir');
    const commands = printedCommands(text);
    expect(commands.join('\n')).toContain(`${dir}/vmail`);
    const maildir = `${dir}/vmail/example.org/alice/Maildir`;
    const script = [
      'set -eu',
      `mkdir ${dir}/ns && mount -t tmpfs none ${dir}/ns && mkdir ${dir}/ns/upper ${dir}/ns/work`,
      `mount -t overlay overlay -o lowerdir=/etc,upperdir=${dir}/ns/upper,workdir=${dir}/ns/work /etc`,
      ...commands,
      // Twice: an administrator who runs them again gets no error.
      ...commands,
      // As Dovecot's LMTP does it: as mail_uid, creating the home on the first delivery.
      `setpriv --reuid=${uid} --regid=${uid} --clear-groups mkdir -p ${maildir}`,
    ].join('\n');
    const r = spawnSync('unshare', ['--mount', '--propagation', 'private', 'bash', '-c', script], { encoding: 'utf8' });
    expect(r.status, `${r.stdout}\n${r.stderr}`).toBe(0);
    expect(statSync(maildir).uid).toBe(uid);
    expect(statSync(`${dir}/vmail`).uid).toBe(uid);
  });
});
