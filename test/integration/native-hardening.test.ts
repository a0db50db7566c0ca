// The native parts hold passwords: the crypt(3) binding must refuse a setting too long
// for its buffer however the cut falls (a UTF-8 character straddling the end included),
// and the checkpassword program Dovecot runs for every login is built hardened.

import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { cryptBackend } from '../../src/password/native.js';
import { root } from '../helpers/daemon.js';

describe('the crypt(3) binding', () => {
  it('refuses an over-long setting whether the cut falls on ASCII or inside a UTF-8 character', () => {
    expect(cryptBackend.native).toBe(true);
    const pw = Buffer.from('pw');
    const hash = cryptBackend.crypt(pw, '$6$saltsalt$')!;
    expect(hash).toMatch(/^\$6\$saltsalt\$/);
    // 512 bytes (the binding's limit): ASCII, and ending in a 2- and a 3-byte character.
    for (const tail of ['x'.repeat(512 - hash.length), 'x'.repeat(510 - hash.length) + 'é', 'x'.repeat(509 - hash.length) + '€']) {
      const setting = hash + tail;
      expect(Buffer.byteLength(setting)).toBe(512);
      expect(cryptBackend.crypt(pw, setting)).toBeNull();
    }
    // Just under the limit still reaches crypt(3).
    expect(cryptBackend.crypt(pw, hash + 'x'.repeat(511 - hash.length))).toBe(hash);
  });
});

describe('bin/mailmapd-checkpassword', () => {
  const bin = join(root, 'bin/mailmapd-checkpassword');
  const readelf = (...args: string[]) => execFileSync('readelf', ['-W', ...args, bin], { encoding: 'utf8' });

  it('is position-independent, with read-only relocations bound at start', () => {
    expect(readelf('-h')).toMatch(/Type:\s+DYN/);
    expect(readelf('-l')).toMatch(/GNU_RELRO/);
    expect(readelf('-d')).toMatch(/BIND_NOW|Flags: .*NOW/);
  });

  it('has the stack protector and fortified libc calls', () => {
    const syms = readelf('--dyn-syms');
    expect(syms).toMatch(/__stack_chk_fail/);
    expect(syms).toMatch(/__\w+_chk\b/);
  });
});
