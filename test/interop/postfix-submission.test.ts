// The master.cf `submission` block `mailmapd postfix-config` prints, as the real Postfix
// reads it: postconf parses the service and its -o overrides (TLS required, AUTH only after
// STARTTLS, senders limited to what the login owns). Fails, never skips, without postconf.

import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { postfixConfigOutput } from '../../src/cli/postfix-config.js';
import { parseConfigText } from '../../src/config.js';

const dir = mkdtempSync(join(tmpdir(), 'mailmapd-submission-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('postfix-config submission block', () => {
  it('is a master.cf service that real postconf reads with its overrides', () => {
    const text = postfixConfigOutput(parseConfigText('socketmap_listen = unix:/run/mailmapd/socketmap\n', 'test.conf'));
    const start = text.indexOf('# ---- /etc/postfix/master.cf');
    expect(start).toBeGreaterThan(0);
    const block = text.slice(start);
    expect(block).toMatch(/smtpd_tls_cert_file/);
    const main = text
      .slice(0, start)
      .split('\n')
      .filter((l) => l !== '' && !l.startsWith('#'));
    writeFileSync(join(dir, 'main.cf'), [...main, 'smtpd_sasl_type = dovecot', 'smtpd_sasl_path = private/mailmapd-auth', ''].join('\n'));
    writeFileSync(
      join(dir, 'master.cf'),
      block
        .split('\n')
        .filter((l) => !l.startsWith('#'))
        .join('\n'),
    );
    const service = execFileSync('postconf', ['-c', dir, '-M', 'submission/inet'], { encoding: 'utf8' });
    expect(service).toMatch(/^submission\s+inet\s+n\s+-\s+y\s+-\s+-\s+smtpd\b/);
    const param = (name: string) => execFileSync('postconf', ['-c', dir, '-P', '-h', `submission/inet/${name}`], { encoding: 'utf8' }).trim();
    expect(param('smtpd_tls_security_level')).toBe('encrypt');
    expect(param('smtpd_tls_auth_only')).toBe('yes');
    expect(param('smtpd_sasl_auth_enable')).toBe('yes');
    expect(param('smtpd_sender_restrictions')).toBe('reject_authenticated_sender_login_mismatch');
    expect(param('smtpd_sender_login_maps')).toBe('proxy:socketmap:unix:/run/mailmapd/socketmap:senders');
    expect(param('smtpd_relay_restrictions')).toBe('permit_sasl_authenticated,reject');
    // The same map in main.cf, where proxymap's default proxy_read_maps finds it.
    expect(execFileSync('postconf', ['-c', dir, '-h', 'smtpd_sender_login_maps'], { encoding: 'utf8' }).trim()).toBe(
      'proxy:socketmap:unix:/run/mailmapd/socketmap:senders',
    );
    // postconf warns about what it cannot parse; nothing here.
    const all = spawnSync('postconf', ['-c', dir, '-P'], { encoding: 'utf8' });
    expect(all.stderr).toBe('');
    expect(all.stdout).toContain('submission/inet/smtpd_tls_auth_only = yes');
  });
});
