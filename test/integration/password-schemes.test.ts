// Every hash Dovecot's own `doveadm pw` wrote (test/vectors/dovecot-pw.tsv) and every
// bare style the seed databases hold (seed-style-pw.tsv) verifies with its password and
// fails with any other; malformed and unknown stored values are bad_hash with a reason
// that never quotes the hash.

import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
import { verifyPassword } from '../../src/password/verify.js';
import { parseStored } from '../../src/password/scheme.js';
import { jsCrypt } from '../../src/password/jscrypt.js';
import { cryptBackend } from '../../src/password/native.js';

const sha512crypt = createRequire(import.meta.url)('sha512crypt-node') as { sha512crypt(pw: string, salt: string): string };

function readTsv(path: string): { label: string; password: string; hash: string }[] {
  const lines = readFileSync(path, 'utf8')
    .split('\n')
    .slice(1)
    .filter((l) => l !== '');
  return lines.map((l) => {
    const [label, password, hash] = l.split('\t') as [string, string, string];
    return { label, password, hash };
  });
}

const vectorDir = new URL('../vectors/', import.meta.url);
const dovecot = readTsv(new URL('dovecot-pw.tsv', vectorDir).pathname);
const seeds = readTsv(new URL('seed-style-pw.tsv', vectorDir).pathname);

describe('stored password vectors', () => {
  it('the vector files are there and cover the schemes the issue lists', () => {
    expect(dovecot.length).toBeGreaterThan(90);
    expect(seeds.length).toBe(6);
    expect(new Set(dovecot.map((v) => v.label))).toContain('SHA512-CRYPT');
  });

  it('uses the native crypt binding (a fallback here would hide a broken build)', () => {
    expect(cryptBackend.native).toBe(true);
  });

  for (const [file, vectors] of [
    ['dovecot-pw.tsv', dovecot],
    ['seed-style-pw.tsv', seeds],
  ] as const) {
    describe(file, () => {
      vectors.forEach((v, i) => {
        it(`${v.label} #${i} verifies with its password and fails with another`, async () => {
          const good = await verifyPassword(v.password, v.hash, 'CRYPT');
          expect(good).toMatchObject({ result: 'ok' });
          expect(good.scheme).not.toBe('unknown');
          // bcrypt reads only the first 72 bytes, so longer passwords are altered at the front.
          const wrongs = [(v.password.startsWith('Z') ? 'Y' : 'Z') + v.password.slice(1), '', ' ' + v.password];
          if (Buffer.byteLength(v.password) < 72) wrongs.push(v.password + 'x', v.password.slice(0, -1), v.password.slice(1));
          for (const wrong of wrongs) {
            expect(await verifyPassword(wrong, v.hash, 'CRYPT'), wrong).toMatchObject({ result: 'mismatch' });
          }
        });
      });
    });
  }

  it('labels every vector with its own scheme (metrics) and bare styles with CRYPT or ARGON2*', async () => {
    const plainish = dovecot.find((v) => v.label === 'SHA512.hex')!;
    expect((await verifyPassword(plainish.password, plainish.hash, 'CRYPT')).scheme).toBe('SHA512');
    expect((await verifyPassword('secret', seeds[0]!.hash, 'PLAIN')).scheme).toBe('CRYPT');
  });
});

describe('{MD5}, as Dovecot reads it', () => {
  it('is MD5-CRYPT when it starts with $1$, else a PLAIN-MD5 digest (Modoboa 1.0 stored `{MD5}` + hex)', async () => {
    const crypt = execFileSync('doveadm', ['pw', '-s', 'MD5-CRYPT', '-p', 'secret'], { encoding: 'utf8' }).trim().replace('{MD5-CRYPT}', '{MD5}');
    expect(await verifyPassword('secret', crypt, 'PLAIN')).toMatchObject({ result: 'ok' });
    expect(await verifyPassword('secret', '{MD5}5ebe2294ecd0e0f08eab7690d2a6ee69', 'PLAIN')).toMatchObject({ result: 'ok' });
    expect(await verifyPassword('secret', '{MD5}Xr4ilOzQ4PCOq3aQ0qbuaQ==', 'PLAIN')).toMatchObject({ result: 'ok' });
    expect(await verifyPassword('Secret', '{MD5}5ebe2294ecd0e0f08eab7690d2a6ee69', 'PLAIN')).toMatchObject({ result: 'mismatch' });
  });
});

describe('default_scheme', () => {
  it('applies to hashes without a prefix, like Dovecot', async () => {
    expect(await verifyPassword('secret', 'secret', 'PLAIN')).toMatchObject({ result: 'ok', scheme: 'PLAIN' });
    expect(await verifyPassword('secret', '5ebe2294ecd0e0f08eab7690d2a6ee69', 'PLAIN-MD5')).toMatchObject({ result: 'ok' });
    expect(
      await verifyPassword(
        'secret',
        'bd2b1aaf7ef4f09be9f52ce2d8d599674d81aa9d6a4421696dc4d93dd0619d682ce56b4d64a9ef097761ced99e0f67265b5f76085e5b0ee7ca4696b2ad6fe2b2',
        'SHA512.HEX',
      ),
    ).toMatchObject({ result: 'ok' });
    // With the default CRYPT, a plaintext is not a crypt string: it never matches.
    expect((await verifyPassword('secret', 'secret', 'CRYPT')).result).not.toBe('ok');
  });

  it('does not apply when a crypt or argon2 prefix says what the hash is', async () => {
    const argon = dovecot.find((v) => v.label === 'ARGON2ID')!.hash.replace('{ARGON2ID}', '');
    expect(await verifyPassword('secret', argon, 'PLAIN')).toMatchObject({ result: 'ok', scheme: 'ARGON2ID' });
  });
});

describe('hashes that cannot be checked', () => {
  const cases: [string, string][] = [
    ['{NOSUCH}abc', 'unknown scheme'],
    ['{SHA512.ROT13}abc', 'unknown encoding'],
    ['{SHA512}not*base64', 'neither valid hex nor base64'],
    ['{SHA256}K7gNU3sdo+OL0wNhqoVWhr3g6s1xYv72ol', 'bytes, expected 32'],
    ['{SSHA}AAAA', 'too short'],
    ['{ARGON2ID}$argon2id$v=19$garbage', 'PHC'],
    ['{ARGON2ID}$argon2id$v=19$m=99999999,t=3,p=1$c2FsdHNhbHQ$aGFzaGhhc2g', 'out of range'],
    ['{PBKDF2}$1$salt$99999999999$abcd', 'expected'],
    ['{SCRAM-SHA-256}4096,abc', 'expected'],
    ['{BLF-CRYPT}$2y$99$xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx', 'crypt(3) rejected'],
    ['{SHA512-CRYPT}', 'crypt(3) rejected'],
    ['{PLAIN-TRUNC}secret', 'length prefix'],
  ];
  for (const [stored, reason] of cases) {
    it(`${stored.slice(0, 30)} → bad_hash (${reason})`, async () => {
      const out = await verifyPassword('secret', stored, 'CRYPT');
      expect(out.result).toBe('bad_hash');
      expect(out.reason).toContain(reason);
      // The reason is logged: it must not carry the stored data.
      const data = stored.slice(stored.indexOf('}') + 1);
      if (data.length > 3) expect(out.reason).not.toContain(data);
    });
  }

  it('a password over 1024 bytes is a mismatch without hashing, even for {PLAIN}', async () => {
    const long = 'a'.repeat(1025);
    expect(await verifyPassword(long, `{PLAIN}${long}`, 'CRYPT')).toMatchObject({ result: 'mismatch' });
  });

  it('a password with a NUL byte never matches a crypt hash', async () => {
    expect(await verifyPassword('secret\0junk', dovecot[0]!.hash, 'CRYPT')).toMatchObject({ result: 'mismatch' });
  });
});

describe('parseStored', () => {
  it('reads scheme names case-insensitively, with .b64/.hex/.base64 suffixes', () => {
    expect(parseStored('{ssha512.hex}00', 'CRYPT')).toEqual({ scheme: 'SSHA512', encoding: 'hex', data: '00' });
    expect(parseStored('{Sha256.Base64}AA', 'CRYPT')).toEqual({ scheme: 'SHA256', encoding: 'b64', data: 'AA' });
    expect(parseStored('$2b$10$abc', 'PLAIN').scheme).toBe('CRYPT');
    expect(parseStored('{broken', 'PLAIN')).toEqual({ scheme: 'PLAIN', encoding: undefined, data: '{broken' });
  });
});

describe('pure-JavaScript crypt fallback', () => {
  const crypts = dovecot.filter((v) => /^(MD5|SHA256|SHA512)-CRYPT$/.test(v.label));
  it('agrees with every $1$/$5$/$6$ vector', () => {
    expect(crypts.length).toBeGreaterThanOrEqual(12);
    for (const v of [...crypts, seeds[0]!, seeds[3]!]) {
      const h = v.hash.replace(/^\{[^}]*\}/, '');
      expect(jsCrypt(Buffer.from(v.password), h)).toBe(h);
    }
  });

  it('agrees with the native binding and with sha512crypt-node on random inputs, including rounds=', () => {
    const alphabet = 'abcXYZ019./ äö☃';
    for (let i = 0; i < 25; i++) {
      let pw = '';
      const n = Math.floor(Math.random() * 80);
      for (let j = 0; j < n; j++) pw += alphabet[Math.floor(Math.random() * alphabet.length)];
      const salt = 'abcdefghijklmnop'.slice(0, 1 + (i % 16));
      for (const setting of [`$6$${salt}`, `$5$${salt}`, `$1$${salt.slice(0, 8)}`, `$6$rounds=${1000 + i}$${salt}`]) {
        expect(jsCrypt(Buffer.from(pw), setting), `${setting} ${pw}`).toBe(cryptBackend.crypt(Buffer.from(pw), setting));
      }
      // sha512crypt-node works on UTF-16 code units: hand it the UTF-8 bytes as a latin1 string.
      expect(jsCrypt(Buffer.from(pw), `$6$${salt}`)).toBe(sha512crypt.sha512crypt(Buffer.from(pw).toString('latin1'), salt));
    }
  });
});
