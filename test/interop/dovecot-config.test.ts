// `mailmapd dovecot-config`: the snippets name this daemon's configured sockets and the
// built checkpassword program, and real Dovecot 2.3 (doveconf) accepts the passdb/userdb
// part as it is printed.

import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { defaultCheckpasswordProgram, dovecotConfig } from '../../src/cli/dovecot-config.js';
import { UsageError } from '../../src/errors.js';
import { parseConfigText } from '../../src/config.js';
import { checkpasswordBinary } from '../helpers/logins.js';

const unixConfig = parseConfigText(
  'checkpassword_listen = unix:/run/mailmapd/checkpassword\nauth_listen = unix:/run/mailmapd/auth\nunix_socket_group = dovecot\n',
  '/etc/mailmapd/mailmapd.conf',
);
const inetConfig = parseConfigText('checkpassword_listen = inet:127.0.0.1:7027\nauth_listen = inet:127.0.0.1:7026\n', 'local.conf');

describe('mailmapd dovecot-config', () => {
  it('points passdb and userdb at the built program with -s and the checkpassword socket', () => {
    expect(defaultCheckpasswordProgram).toBe(checkpasswordBinary);
    const text = dovecotConfig(unixConfig, []);
    const args = `args = ${checkpasswordBinary} -s unix:/run/mailmapd/checkpassword`;
    expect(text).toContain(`passdb {\n  driver = checkpassword\n  ${args}\n}`);
    expect(text).toContain(`userdb {\n  driver = checkpassword\n  ${args}\n}`);
    expect(text).toMatch(/vsz_limit/);
    expect(text).toContain('group dovecot');
  });

  it('prints the Postfix SMTP AUTH lines for the auth socket, unix or inet', () => {
    const unix = dovecotConfig(unixConfig, []);
    expect(unix).toContain('smtpd_sasl_type = dovecot\n');
    expect(unix).toContain('smtpd_sasl_path = unix:/run/mailmapd/auth\n');
    // AUTH is the submission service's (postfix-config), not every smtpd's: see postfix-delivery's daemon-down case.
    expect(unix).not.toMatch(/^smtpd_sasl_auth_enable/m);
    expect(unix).toContain('-o smtpd_sasl_auth_enable=yes');
    expect(unix).toContain('chroot');
    expect(unix).toContain('doveadm auth test -a /run/mailmapd/auth');
    const inet = dovecotConfig(inetConfig, []);
    expect(inet).toContain('smtpd_sasl_path = inet:127.0.0.1:7026\n');
    expect(inet).toContain(`-s inet:127.0.0.1:7027\n`);
    expect(inet).toContain('UNIX sockets only');
  });

  it("names an auth socket in Postfix's queue directory relative to it, as the chrooted smtpd sees it", () => {
    const spool = dovecotConfig(parseConfigText('auth_listen = unix:/var/spool/postfix/private/mailmapd-auth\nunix_socket_group = postfix\n', 'x.conf'), []);
    expect(spool).toContain('smtpd_sasl_path = private/mailmapd-auth\n');
    expect(spool).not.toContain('does not exist');
    expect(spool).toContain('group postfix');
  });

  it('takes --program, and refuses unknown arguments', () => {
    expect(dovecotConfig(unixConfig, ['--program', '/usr/local/bin/mailmapd-checkpassword'])).toContain(
      'args = /usr/local/bin/mailmapd-checkpassword -s unix:/run/mailmapd/checkpassword',
    );
    expect(() => dovecotConfig(unixConfig, ['--bogus'])).toThrow(UsageError);
  });

  it('says so when a listener is not configured', () => {
    const none = parseConfigText('checkpassword_listen =\nauth_listen =\n', 'x.conf');
    const text = dovecotConfig(none, []);
    expect(text).toContain('checkpassword_listen is empty');
    expect(text).toContain('auth_listen is empty');
    expect(text).not.toContain('passdb {');
  });

  it('real doveconf accepts the Dovecot part and real postconf the Postfix part', () => {
    const dir = mkdtempSync(join(tmpdir(), 'mailmapd-doveconf-'));
    try {
      const conf = join(dir, 'dovecot.conf');
      const text = dovecotConfig(unixConfig, []);
      const split = text.indexOf('# ---- Postfix');
      expect(split).toBeGreaterThan(0);
      writeFileSync(conf, `base_dir = ${dir}/run\nprotocols =\nlisten = 127.0.0.1\nssl = no\n${text.slice(0, split)}\n`);
      const out = execFileSync('doveconf', ['-n', '-c', conf], { encoding: 'utf8' });
      expect(out).toContain('driver = checkpassword');
      expect(out).toContain(`args = ${checkpasswordBinary} -s unix:/run/mailmapd/checkpassword`);
      // The LMTP listener Postfix's virtual_transport delivers to (see postfix-delivery.test.ts).
      expect(out).toMatch(
        /service lmtp \{\n\s+unix_listener \/var\/spool\/postfix\/private\/dovecot-lmtp \{\n\s+group = postfix\n\s+mode = 0600\n\s+user = postfix/,
      );
      expect(text).toMatch(/^recipient_delimiter = \+$/m);

      writeFileSync(join(dir, 'main.cf'), text.slice(split));
      const pf = execFileSync('postconf', ['-c', dir, '-n'], { encoding: 'utf8' });
      expect(pf).toContain('smtpd_sasl_type = dovecot');
      expect(pf).toContain('smtpd_sasl_path = unix:/run/mailmapd/auth');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
