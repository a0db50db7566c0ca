// The check_policy_service lines postfix-config prints for the policy service, as the real
// postconf reads them: the endpoint a chrooted smtpd can reach, default_action=DUNNO, in
// smtpd_recipient_restrictions and smtpd_end_of_data_restrictions.

import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { policyEndpoint, policyServiceLines } from '../../src/cli/postfix-policy-config.js';
import { parseListenList } from '../../src/net/listen-address.js';

const dir = mkdtempSync(join(tmpdir(), 'mailmapd-policy-config-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const address = (text: string) => parseListenList(text)[0]!;

describe('postfix-config: the policy service lines', () => {
  it('names the socket as a chrooted smtpd reaches it', () => {
    expect(policyEndpoint(address('unix:/var/spool/postfix/private/mailmapd-policy'))).toBe('unix:private/mailmapd-policy');
    expect(policyEndpoint(address('inet:127.0.0.1:9998'))).toBe('inet:127.0.0.1:9998');
    expect(policyEndpoint(address('inet:[::1]:9998'))).toBe('inet:[::1]:9998');
    expect(policyServiceLines(address('unix:/run/mailmapd/policy')).join('\n')).toMatch(/outside Postfix's queue directory/);
    expect(policyServiceLines(undefined).join('\n')).toMatch(/policy_listen is empty/);
  });

  it('is main.cf that real postconf reads, with default_action=DUNNO', () => {
    const lines = policyServiceLines(address('unix:/var/spool/postfix/private/mailmapd-policy'));
    writeFileSync(join(dir, 'main.cf'), `${lines.join('\n')}\n`);
    writeFileSync(join(dir, 'master.cf'), '');
    const get = (name: string) => execFileSync('postconf', ['-c', dir, '-h', name], { encoding: 'utf8' }).trim();
    const check = 'check_policy_service { unix:private/mailmapd-policy, default_action=DUNNO }';
    expect(get('smtpd_recipient_restrictions')).toBe(check);
    expect(get('smtpd_end_of_data_restrictions')).toBe(check);
    expect(spawnSync('postconf', ['-c', dir, '-n'], { encoding: 'utf8' }).stderr).toBe('');
  });
});
