// Dovecot's own quota-status service (`quota-status -p postfix`, the count backend), the
// reference bench/policy.mjs measures the policy door against: a private Dovecot 2.3 with
// the same mailboxes in a passwd-file userdb and the same quota, answering the same RCPT
// requests on a loopback port. It knows recipients only (an alias is "nouser": DUNNO), and
// reads each mailbox's usage from its own index, so it runs on the host that stores the mail.

import { spawnSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Starts it for `addresses` (quota `quotaBytes` each) on `port`; returns stop(). */
export async function startQuotaStatus(addresses, quotaBytes, port, sleep) {
  if (spawnSync('dovecot', ['--version']).status !== 0) throw new Error('dovecot is not installed (apt-get install dovecot-core)');
  if (!existsSync('/usr/lib/dovecot/quota-status')) throw new Error('quota-status is missing (dovecot-core ships it)');
  const dir = mkdtempSync(join(tmpdir(), 'mailmapd-bench-quota-status-'));
  chmodSync(dir, 0o755);
  for (const sub of ['run', 'state', 'vmail']) mkdirSync(join(dir, sub));
  chownSync(join(dir, 'vmail'), 5000, 5000);
  writeFileSync(join(dir, 'users'), addresses.map((a) => `${a}::5000:5000::${dir}/vmail/${a.split('@')[1]}/${a.split('@')[0]}::`).join('\n') + '\n');
  writeFileSync(
    join(dir, 'dovecot.conf'),
    [
      `base_dir = ${dir}/run`,
      `state_dir = ${dir}/state`,
      `log_path = ${dir}/dovecot.log`,
      'ssl = no',
      'protocols =',
      'mail_location = maildir:~/Maildir',
      'mail_plugins = quota',
      `passdb {\n  driver = passwd-file\n  args = ${dir}/users\n}`,
      `userdb {\n  driver = passwd-file\n  args = ${dir}/users\n}`,
      'plugin {',
      '  quota = count:User quota',
      '  quota_vsizes = yes',
      `  quota_rule = *:storage=${Math.floor(quotaBytes / 1024)}k`,
      '  quota_status_success = DUNNO',
      '  quota_status_nouser = DUNNO',
      '  quota_status_overquota = "552 5.2.2 Mailbox is full"',
      '}',
      'service quota-status {',
      '  executable = quota-status -p postfix',
      `  inet_listener {\n    address = 127.0.0.1\n    port = ${port}\n  }`,
      '  client_limit = 1',
      '  process_limit = 64',
      '}',
      '',
    ].join('\n'),
  );
  const r = spawnSync('dovecot', ['-c', join(dir, 'dovecot.conf')], { stdio: 'ignore', timeout: 20_000 });
  const log = () => (existsSync(join(dir, 'dovecot.log')) ? readFileSync(join(dir, 'dovecot.log'), 'utf8') : '');
  if (r.status !== 0) throw new Error(`dovecot did not start: ${log()}`);
  for (let i = 0; i < 100 && !existsSync(join(dir, 'run', 'master.pid')); i++) await sleep(100);
  await sleep(500);
  return {
    log,
    async stop() {
      const pid = Number(readFileSync(join(dir, 'run', 'master.pid'), 'utf8'));
      try {
        process.kill(pid, 'SIGTERM');
      } catch {}
      for (let i = 0; i < 100; i++) {
        try {
          process.kill(pid, 0);
        } catch {
          break;
        }
        await sleep(100);
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
