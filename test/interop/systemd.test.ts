// The unit file an administrator installs passes systemd's own checks.

import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';

const unit = new URL('../../systemd/mailmapd.service', import.meta.url).pathname;

describe('systemd unit', () => {
  it('systemd-analyze verify runs clean', () => {
    const r = spawnSync('systemd-analyze', ['verify', unit], { encoding: 'utf8' });
    expect(r.error, 'systemd-analyze is installed (Debian package systemd)').toBeUndefined();
    expect(r.stderr.trim()).toBe('');
    expect(r.status).toBe(0);
  });

  it('runs unprivileged, hardened, with its runtime directory for the sockets', () => {
    const text = readFileSync(unit, 'utf8');
    for (const line of [
      'User=mailmapd',
      'RuntimeDirectory=mailmapd',
      'NoNewPrivileges=yes',
      'ProtectSystem=strict',
      'ProtectHome=yes',
      'PrivateTmp=yes',
      'Type=notify',
    ]) {
      expect(text).toContain(`\n${line}\n`);
    }
    expect(text).toMatch(/\nRestrictAddressFamilies=AF_UNIX AF_INET AF_INET6\n/);
  });
});
