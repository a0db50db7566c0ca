// The snapshot file on its own: what goes in comes out (every field of every entry, big
// and non-ASCII ones too), the file is private, a write abandoned halfway leaves the old file
// whole, and a truncated, damaged or foreign file is refused with the reason.

import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CHUNK_BYTES } from '../../src/directory/byte-table.js';
import { emptyData, type DirectoryData } from '../../src/directory/directory.js';
import { FORMAT_VERSION, type SnapshotHeader } from '../../src/snapshot/format.js';
import { readSnapshot } from '../../src/snapshot/read.js';
import { writeSnapshot } from '../../src/snapshot/write.js';

const dir = mkdtempSync(join(tmpdir(), 'mailmapd-snapfile-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const header = (position: unknown): SnapshotHeader => ({
  software: 'test',
  writtenAt: Date.now(),
  dataAt: Date.now(),
  source: { database: '127.0.0.1:5432/mail', schema: 'native' },
  identity: { systemIdentifier: '1', database: 'mail', databaseOid: '2' },
  position,
  counts: {},
});

function sample(n: number): DirectoryData {
  const d = emptyData();
  d.domains.set('example.org', true).set('off.org', false).set('bücher.example', true);
  d.aliasDomains.set('example.net', { target: 'example.org', active: true });
  for (let i = 0; i < n; i++) {
    d.mailboxes.set(`u${i}@example.org`, { password: `{PLAIN}pw${i}`, quotaBytes: i * 1024, active: i % 3 !== 0 });
    d.aliases.set(`a${i}@example.org`, `u${i}@example.org,u${i + 1}@example.org`);
  }
  d.mailboxes.set('nopass@example.org', { password: null, quotaBytes: 0, active: true });
  d.mailboxes.set('jürgen@bücher.example', { password: '{PLAIN}grüße', quotaBytes: 5, active: true });
  // Bigger than a frame, and than the byte table's shared chunks.
  d.aliases.set('big@example.org', Array.from({ length: 40000 }, (_, i) => `member${i}@example.org`).join(','));
  // Replaced and deleted entries leave garbage behind; only the live ones may come back.
  for (let i = 0; i < n; i += 2) d.aliases.delete(`a${i}@example.org`);
  d.mailboxes.set('u1@example.org', { password: '{PLAIN}changed', quotaBytes: 7, active: true });
  return d;
}

function dump(d: DirectoryData) {
  const out: Record<string, unknown> = { domains: [...d.domains], aliasDomains: [...d.aliasDomains] };
  out.mailboxes = [...d.mailboxes.keys()].sort().map((k) => [k, d.mailboxes.get(k)]);
  out.aliases = [...d.aliases.keys()].sort().map((k) => [k, d.aliases.get(k)]);
  return out;
}

describe('snapshot file', () => {
  const path = join(dir, 'directory.snapshot');

  it('gives back exactly what was written, in a file only its owner can read', async () => {
    const d = sample(20000);
    const r = await writeSnapshot({ path, data: d, header: header({ at: 'p1' }), frameBytes: 4096 });
    expect(r.status).toBe('written');
    expect(statSync(path).mode & 0o777).toBe(0o600);
    const back = readSnapshot(path, () => undefined);
    if (back.status !== 'ok') throw new Error(JSON.stringify(back));
    expect(back.header.position).toEqual({ at: 'p1' });
    expect(dump(back.data)).toEqual(dump(d));
    expect(back.data.mailboxes.get('jürgen@bücher.example')).toEqual({ password: '{PLAIN}grüße', quotaBytes: 5, active: true });
    expect(back.data.aliases.get('a2@example.org')).toBeUndefined();
    // The loaded tables keep working as tables.
    back.data.mailboxes.set('new@example.org', { password: null, quotaBytes: 1, active: true });
    back.data.mailboxes.delete('u5@example.org');
    expect(back.data.mailboxes.get('new@example.org')?.quotaBytes).toBe(1);
    expect(back.data.mailboxes.has('u5@example.org')).toBe(false);
    expect(back.data.mailboxes.get('u7@example.org')?.password).toBe('{PLAIN}pw7');
  });

  it('entries so small that a frame runs out of record heads before bytes come back whole', async () => {
    const d = emptyData();
    for (let i = 0; i < 150_000; i++) d.aliases.set(i.toString(36), '');
    const r = await writeSnapshot({ path: join(dir, 'tiny.snapshot'), data: d, header: header({ at: 'tiny' }) });
    expect(r.status).toBe('written');
    const back = readSnapshot(join(dir, 'tiny.snapshot'), () => undefined);
    if (back.status !== 'ok') throw new Error(JSON.stringify(back));
    expect(back.data.aliases.size).toBe(150_000);
    expect(back.data.aliases.get((149_999).toString(36))).toBe('');
    rmSync(join(dir, 'tiny.snapshot'));
  });

  it('entries changing while it is written come out old or new, never torn, and none is lost', async () => {
    const d = sample(20000);
    let frames = 0;
    const writing = writeSnapshot({
      path,
      data: d,
      header: header({ at: 'p2' }),
      frameBytes: 4096,
      cancelled: () => {
        frames++;
        // Between frames, as the sync would: replace, add and delete entries everywhere.
        d.mailboxes.set(`u${(frames * 7919) % 20000}@example.org`, { password: `{PLAIN}new${frames}`, quotaBytes: frames, active: true });
        d.aliases.set(`late${frames}@example.org`, 'u1@example.org');
        // A domain no entry had when the write began: its id must be in the file too.
        d.mailboxes.set(`new@d${frames}.test`, { password: null, quotaBytes: 0, active: true });
        d.aliases.set(`to@d${frames}.test`, `x@e${frames}.test,u1@example.org`);
        return false;
      },
    });
    expect((await writing).status).toBe('written');
    const back = readSnapshot(path, () => undefined);
    if (back.status !== 'ok') throw new Error(back.status);
    expect(frames).toBeGreaterThan(10);
    for (let i = 1; i < 20000; i++) {
      const m = back.data.mailboxes.get(`u${i}@example.org`)!;
      expect(m.password === `{PLAIN}pw${i}` || m.password === '{PLAIN}changed' || m.password === `{PLAIN}new${m.quotaBytes}`).toBe(true);
    }
    // Entries in domains first seen during the write: either absent or whole, never another domain's.
    for (const a of back.data.mailboxes.keys()) if (a.endsWith('.test')) expect(a).toMatch(/^new@d\d+\.test$/);
    for (const [a, dest] of [...back.data.aliases.keys()].map((k) => [k, back.data.aliases.get(k)!])) {
      const n = /^to@d(\d+)\.test$/.exec(a!)?.[1];
      if (n !== undefined) expect(dest).toBe(`x@e${n}.test,u1@example.org`);
    }
    expect([...back.data.mailboxes.keys()].some((a) => a.startsWith('new@d'))).toBe(true);
  });

  it('a write abandoned halfway leaves the previous file whole and no temp file', async () => {
    const before = readFileSync(path);
    let n = 0;
    const r = await writeSnapshot({ path, data: sample(20000), header: header({ at: 'p3' }), frameBytes: 4096, cancelled: () => ++n > 5 });
    expect(r.status).toBe('cancelled');
    expect(readFileSync(path).equals(before)).toBe(true);
    expect(readdirSync(dir)).toEqual(['directory.snapshot']);
  });

  it('writes frames no bigger than the reader can adopt as chunks, whatever frame size it is given', async () => {
    // A frame becomes a chunk of the reader's table, whose offsets end at CHUNK_BYTES: a
    // bigger frame of many records would be refused, and the snapshot with it.
    const d = sample(60_000);
    const big = join(dir, 'big-frames.snapshot');
    expect((await writeSnapshot({ path: big, data: d, header: header({ at: 'p4' }), frameBytes: 8 * CHUNK_BYTES })).status).toBe('written');
    const back = readSnapshot(big, () => undefined);
    expect(back.status).toBe('ok');
    if (back.status === 'ok') expect(dump(back.data)).toEqual(dump(d));
    rmSync(big);
  });

  it('reads a snapshot of format 3, as the mailmapd before this one wrote it, so that an upgrade restarts from it', async () => {
    // test/fixtures/snapshot/format-3.snapshot was written by commit dceb3b2's writeSnapshot
    // with the directory made here (the script is in that commit's message).
    const expected = emptyData();
    expected.domains.set('example.org', true).set('bücher.example', true);
    expected.aliasDomains.set('example.net', { target: 'example.org', active: true });
    for (let i = 0; i < 300; i++) {
      const hash = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789./'.slice(i % 40);
      expected.mailboxes.set(`u${i}@example.org`, { password: `{SHA512-CRYPT}$6$salt${i}$${hash}`, quotaBytes: i * 1024 * 1024, active: i % 3 !== 0 });
      expected.aliases.set(`a${i}@example.org`, `u${i}@example.org,u${i + 1}@example.org`);
    }
    expected.mailboxes.set('nopass@example.org', { password: null, quotaBytes: 0, active: true });
    expected.mailboxes.set('jürgen@bücher.example', { password: '{PLAIN}grüße', quotaBytes: 1.5, active: true, maintenance: true, disabledServices: ['imap'] });
    expected.aliases.set('@bücher.example', 'jürgen@bücher.example');
    expected.routes.set('transport:example.org', 'lmtp:unix:private/dovecot-lmtp');
    const back = readSnapshot(new URL('../fixtures/snapshot/format-3.snapshot', import.meta.url).pathname, () => undefined);
    expect(back.status === 'refused' ? back.reason : back.status).toBe('ok');
    if (back.status !== 'ok') return;
    expect(dump(back.data)).toEqual(dump(expected));
    expect([...back.data.routes.entries()]).toEqual([...expected.routes.entries()]);
    expect(back.data.mailboxes.get('jürgen@bücher.example')).toEqual(expected.mailboxes.get('jürgen@bücher.example'));
    // The tables it filled go on as tables: changed, written in the current format, read back.
    back.data.mailboxes.set('new@example.org', { password: '{PLAIN}x', quotaBytes: 0, active: true });
    expected.mailboxes.set('new@example.org', { password: '{PLAIN}x', quotaBytes: 0, active: true });
    const again = join(dir, 'from-format-3.snapshot');
    expect((await writeSnapshot({ path: again, data: back.data, header: header({ at: 'p5' }) })).status).toBe('written');
    expect(readFileSync(again).readUInt32LE(8)).toBe(FORMAT_VERSION);
    const current = readSnapshot(again, () => undefined);
    expect(current.status).toBe('ok');
    if (current.status === 'ok') expect(dump(current.data)).toEqual(dump(expected));
    rmSync(again);
  });

  it('refuses a truncated, damaged, foreign or missing file and says why', () => {
    const good = readFileSync(path);
    const bad = join(dir, 'bad.snapshot');
    const refused = (bytes: Buffer, check: (h: SnapshotHeader) => string | undefined = () => undefined) => {
      writeFileSync(bad, bytes);
      const r = readSnapshot(bad, check);
      return r.status === 'refused' ? r.reason : r.status;
    };
    expect(refused(good.subarray(0, good.length - 100))).toMatch(/^truncated/);
    expect(refused(good.subarray(0, 10))).toMatch(/^truncated/);
    const flipped = Buffer.from(good);
    flipped[good.length - 5000]! ^= 0x20;
    // Refused by the checksum, or earlier by a frame that no longer adds up.
    expect(refused(flipped)).toMatch(/^damaged: /);
    const headerFlip = Buffer.from(good);
    headerFlip[40]! ^= 1;
    expect(refused(headerFlip)).toMatch(/damaged: header checksum mismatch/);
    expect(refused(Buffer.from('not a snapshot at all, just some text'))).toBe('not a mailmapd snapshot');
    // A file of the previous format (heads without hashes): refused, not misread.
    const v1 = Buffer.from(good);
    v1.writeUInt32LE(1, 8);
    expect(refused(v1)).toBe(`format version 1, this mailmapd reads ${FORMAT_VERSION}`);
    expect(refused(good, (h) => (h.source.database === 'elsewhere' ? undefined : 'from another database'))).toBe('from another database');
    expect(refused(good)).toBe('ok');
    expect(readSnapshot(join(dir, 'none'), () => undefined).status).toBe('missing');
    rmSync(bad);
  });
});
