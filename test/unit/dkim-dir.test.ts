// The signer's files under dkim_dir: what signerFiles makes of the signing keys (one
// SigningTable per algorithm, as one OpenDKIM process signs with one), and how the writer
// puts them there: modes, only changed files rewritten, key files of removed keys gone,
// names a panel could have written refused. And the reload command's exit status.

import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { writeSignerDir } from '../../src/dkim/dir-writer.js';
import { runReloadCommand } from '../../src/dkim/reload-command.js';
import { type SigningKey, signerFiles } from '../../src/dkim/signer-files.js';

const parent = mkdtempSync(join(tmpdir(), 'mailmapd-dkim-dir-'));
afterAll(() => rmSync(parent, { recursive: true, force: true }));

const pem = (n: string) => `-----BEGIN PRIVATE KEY-----\n${n}\n-----END PRIVATE KEY-----\n`;
const key = (domain: string, selector: string, algorithm: SigningKey['algorithm'], active = true): SigningKey => ({
  domain,
  selector,
  algorithm,
  privateKey: pem(selector),
  active,
});

describe('the signer files', () => {
  it('lists signing RSA keys and Ed25519 keys in separate signing tables, every published key in the key table', () => {
    const dir = '/var/lib/mailmapd/dkim';
    const { files, skipped } = signerFiles(dir, [
      key('b.test', 'e1', 'ed25519'),
      key('a.test', 'r1', 'rsa-2048'),
      key('b.test', 'r2', 'rsa-2048'),
      // Retired (or not signing yet): its file stays, so that a signer that has not reloaded still finds it.
      key('b.test', 'r0', 'rsa-2048', false),
      key('x.test', '../evil', 'rsa-2048'),
    ]);
    expect(skipped).toEqual([{ domain: 'x.test', selector: '../evil' }]);
    const lines = (name: string) =>
      files
        .get(name)!
        .split('\n')
        .filter((l) => l !== '' && !l.startsWith('#'));
    expect(lines('SigningTable')).toEqual(['*@a.test r1._domainkey.a.test', '*@b.test r2._domainkey.b.test']);
    expect(lines('SigningTable.ed25519')).toEqual(['*@b.test e1._domainkey.b.test']);
    expect(lines('KeyTable')).toEqual([
      `r1._domainkey.a.test a.test:r1:${dir}/a.test.r1.key`,
      `r0._domainkey.b.test b.test:r0:${dir}/b.test.r0.key`,
      `r2._domainkey.b.test b.test:r2:${dir}/b.test.r2.key`,
      `e1._domainkey.b.test b.test:e1:${dir}/b.test.e1.key`,
    ]);
    // rspamd signs with one key per domain: the RSA one.
    expect(lines('dkim_selectors.map')).toEqual(['a.test r1', 'b.test r2']);
    expect(files.get('b.test.e1.key')).toBe(pem('e1'));
    expect(files.get('b.test.r0.key')).toBe(pem('r0'));
  });

  it('writes 0640 files in a 0750 directory, rewrites only what changed, removes the files of removed keys', async () => {
    const dir = join(parent, 'dkim');
    const first = signerFiles(dir, [key('a.test', 'r1', 'rsa-2048'), key('a.test', 'e1', 'ed25519')]).files;
    expect((await writeSignerDir(dir, first, undefined)).written.sort()).toEqual([...first.keys()].sort());
    expect(statSync(dir).mode & 0o777).toBe(0o750);
    for (const name of first.keys()) expect(statSync(join(dir, name)).mode & 0o777).toBe(0o640);
    expect(await writeSignerDir(dir, first, undefined)).toEqual({ written: [], removed: [] });

    // A link planted where a temporary file goes is replaced, never written through.
    const victim = join(parent, 'victim');
    writeFileSync(victim, 'untouched');
    symlinkSync(victim, join(dir, `.a.test.r2.key.tmp-${process.pid}`));
    const second = signerFiles(dir, [key('a.test', 'r2', 'rsa-2048')]).files;
    const changes = await writeSignerDir(dir, second, undefined);
    expect(changes.removed.sort()).toEqual(['a.test.e1.key', 'a.test.r1.key']);
    expect(changes.written).toContain('a.test.r2.key');
    expect(readFileSync(victim, 'utf8')).toBe('untouched');
    expect(readdirSync(dir).sort()).toEqual(['KeyTable', 'SigningTable', 'SigningTable.ed25519', 'a.test.r2.key', 'dkim_selectors.map']);
  });

  it('a file whose mode was changed is written again', async () => {
    const dir = join(parent, 'dkim2');
    mkdirSync(dir, { mode: 0o700 });
    const files = signerFiles(dir, [key('a.test', 'r1', 'rsa-2048')]).files;
    await writeSignerDir(dir, files, undefined);
    expect(statSync(dir).mode & 0o777).toBe(0o750);
    const { chmodSync } = await import('node:fs');
    chmodSync(join(dir, 'a.test.r1.key'), 0o644);
    expect((await writeSignerDir(dir, files, undefined)).written).toEqual(['a.test.r1.key']);
    expect(statSync(join(dir, 'a.test.r1.key')).mode & 0o777).toBe(0o640);
  });

  it('reports the reload command by its exit status only', async () => {
    expect(await runReloadCommand('true')).toEqual({ ok: true, status: 'exit 0' });
    expect(await runReloadCommand('echo secret-output; exit 3')).toEqual({ ok: false, status: 'exit 3' });
    expect(await runReloadCommand('   ')).toEqual({ ok: true, status: 'none' });
  });
});
