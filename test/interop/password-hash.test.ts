// New hashes — what `mailmapd hash`, `mailbox add` and `mailbox passwd` store — are
// accepted by Dovecot's own `doveadm pw -t` (interop: fails, never skips, without doveadm),
// verify with our own code, and `mailmapd hash` behaves like `doveadm pw -s`.

import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { hashPassword, UnknownSchemeError } from '../../src/password/hash.js';
import { schemeNames } from '../../src/password/schemes.js';
import { verifyPassword } from '../../src/password/verify.js';

const root = fileURLToPath(new URL('../../..', import.meta.url));
const password = 'pässwörd ☃ with spaces & $6$';

function doveadmTest(hash: string, pw: string): { code: number | null; out: string } {
  const r = spawnSync('doveadm', ['pw', '-t', hash, '-p', pw], { encoding: 'utf8' });
  if (r.error) throw new Error(`doveadm is required for this interop test: ${r.error.message}`);
  return { code: r.status, out: r.stdout + r.stderr };
}

/** Runs the built `hashCommand` in a child, password on stdin, as an administrator would. */
function mailmapdHash(args: string[], input: string) {
  const script = `
    import { hashCommand } from ${JSON.stringify(`${root}dist/cli/hash.js`)};
    import { parseConfigText } from ${JSON.stringify(`${root}dist/config.js`)};
    process.exitCode = await hashCommand(${JSON.stringify(args)}, parseConfigText('', 'test'), (s) => console.log(s));`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { input, encoding: 'utf8' });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

describe('hashes mailmapd writes', () => {
  beforeAll(() => {
    expect(spawnSync('doveadm', ['pw', '-l']).status, 'doveadm must be installed').toBe(0);
  });

  const schemes = [...schemeNames, 'SHA512.HEX', 'SSHA256.HEX', 'PLAIN-MD5.B64', 'CRAM-MD5', 'MD5', 'SHA', 'CLEARTEXT'];
  for (const scheme of schemes) {
    it(`{${scheme}} passes doveadm pw -t and our own verify, and fails both with a wrong password`, async () => {
      const hash = await hashPassword(password, scheme);
      expect(hash).toMatch(/^\{[A-Z0-9.-]+\}/);
      const good = doveadmTest(hash, password);
      expect(good.out).toContain('(verified)');
      expect(good.code).toBe(0);
      // Wrong at the front: bcrypt reads 72 bytes and PLAIN-TRUNC its stored length only.
      expect(doveadmTest(hash, 'X' + password).code).not.toBe(0);
      expect((await verifyPassword(password, hash, 'CRYPT')).result).toBe('ok');
      expect((await verifyPassword(password.slice(1), hash, 'CRYPT')).result).toBe('mismatch');
    });
  }

  it('salts every hash: the same password twice gives two different hashes', async () => {
    for (const scheme of ['ARGON2ID', 'SHA512-CRYPT', 'BLF-CRYPT', 'SSHA512', 'PBKDF2', 'SCRAM-SHA-256']) {
      expect(await hashPassword('secret', scheme)).not.toBe(await hashPassword('secret', scheme));
    }
  });

  it('uses strong defaults: argon2id m=64MiB t=3 p=1 (p=1 for libsodium), bcrypt cost 10', async () => {
    expect(await hashPassword('secret', 'ARGON2ID')).toMatch(/^\{ARGON2ID\}\$argon2id\$v=19\$m=65536,t=3,p=1\$/);
    expect(await hashPassword('secret', 'BLF-CRYPT')).toMatch(/^\{BLF-CRYPT\}\$2y\$10\$/);
    expect(await hashPassword('secret', 'SHA512-CRYPT')).toMatch(/^\{SHA512-CRYPT\}\$6\$[./0-9A-Za-z]{16}\$/);
  });

  it('refuses unknown schemes and encodings that make no sense', async () => {
    await expect(hashPassword('secret', 'NOPE')).rejects.toBeInstanceOf(UnknownSchemeError);
    await expect(hashPassword('secret', 'SHA512-CRYPT.HEX')).rejects.toBeInstanceOf(UnknownSchemeError);
    await expect(hashPassword('secret', 'SHA512.ROT13')).rejects.toBeInstanceOf(UnknownSchemeError);
  });
});

describe('mailmapd hash', () => {
  beforeAll(() => {
    expect(existsSync(`${root}dist/cli/hash.js`), 'run `npm run build` first').toBe(true);
  });

  it('defaults to ARGON2ID (password_scheme) and reads the password from stdin', () => {
    const r = mailmapdHash([], 'secret\n');
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/^\{ARGON2ID\}\$argon2id\$/);
    expect(doveadmTest(r.out.trim(), 'secret').code).toBe(0);
  });

  it('--scheme S and -s S pick the scheme; the output passes doveadm pw -t', () => {
    for (const args of [['--scheme', 'SHA512-CRYPT'], ['-s', 'blf-crypt'], ['--scheme=SSHA512']]) {
      const r = mailmapdHash(args, 'Tr0ub4dor&3');
      expect(r.code, r.err).toBe(0);
      expect(doveadmTest(r.out.trim(), 'Tr0ub4dor&3').code).toBe(0);
    }
  });

  it('exits 2 for an unknown scheme without reading a password, and never echoes the password', () => {
    const r = mailmapdHash(['--scheme', 'ROT13'], 'secret');
    expect(r.code).toBe(2);
    expect(r.err).toContain('unknown password scheme');
    expect(r.out + r.err).not.toContain('secret');
    expect(mailmapdHash(['--bogus'], 'secret').code).toBe(2);
    expect(mailmapdHash([], '').code).not.toBe(0);
  });
});
