// Reads and verifies a snapshot file. Nothing in it is served before every check passes:
// the magic and format version, the exact length (a truncated file is refused), the
// header's CRC-32, the caller's check of the header (which database, how old), every
// section of the directory present and none unknown, every entry inside its frame, and
// the body's CRC-32. Frames of raw entries become the tables' chunks without a copy, and
// their entries go into the tables' indexes by the hashes stored with them: no key is
// hashed, no per-entry object made (a restart's time is mostly reading the file).

import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { crc32 } from 'node:zlib';
import { emptyData, type DirectoryData } from '../directory/directory.js';
import type { ByteTable } from '../directory/byte-table.js';
import { FORMAT_VERSION, FRAME_HEAD, KIND_JSON, KIND_RAW, PREFIX_BYTES, decodePrefix, parts, type SnapshotHeader } from './format.js';

export type ReadResult =
  | { status: 'missing' }
  | { status: 'refused'; reason: string }
  | { status: 'ok'; header: SnapshotHeader; data: DirectoryData; bytes: number };

class Damaged extends Error {}

/** `check` returns why a well-formed snapshot must not be used, or undefined. */
export function readSnapshot(path: string, check: (h: SnapshotHeader) => string | undefined): ReadResult {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return { status: 'missing' };
    return { status: 'refused', reason: `cannot read it: ${code ?? (err as Error).message}` };
  }
  try {
    return readFrom(fd, check);
  } catch (err) {
    if (err instanceof Damaged || err instanceof RangeError) return { status: 'refused', reason: `damaged: ${err.message}` };
    return { status: 'refused', reason: `cannot read it: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}` };
  } finally {
    closeSync(fd);
  }
}

function readFrom(fd: number, check: (h: SnapshotHeader) => string | undefined): ReadResult {
  const refuse = (reason: string): ReadResult => ({ status: 'refused', reason });
  const size = fstatSync(fd).size;
  let at = 0;
  const read = (n: number): Buffer => {
    if (at + n > size) throw new Damaged('runs past the end of the file');
    const b = Buffer.allocUnsafeSlow(n);
    for (let got = 0; got < n; ) {
      const r = readSync(fd, b, got, n - got, at + got);
      if (r === 0) throw new Damaged('file shrank while read');
      got += r;
    }
    at += n;
    return b;
  };
  if (size < PREFIX_BYTES) return refuse(`truncated: ${size} bytes`);
  const p = decodePrefix(read(PREFIX_BYTES));
  if (typeof p === 'string') return refuse(p);
  if (p.version !== FORMAT_VERSION) return refuse(`format version ${p.version}, this mailmapd reads ${FORMAT_VERSION}`);
  const expected = PREFIX_BYTES + p.headerBytes + p.bodyBytes;
  if (size !== expected) return refuse(`truncated or damaged: ${size} bytes, the header says ${expected}`);
  const headerBuf = read(p.headerBytes);
  if (crc32(headerBuf) !== p.headerCrc) return refuse('damaged: header checksum mismatch');
  let header: SnapshotHeader;
  try {
    header = JSON.parse(headerBuf.toString('utf8')) as SnapshotHeader;
  } catch {
    return refuse('damaged: unreadable header');
  }
  const why = check(header);
  if (why !== undefined) return refuse(why);

  let crc = 0;
  const body = (n: number): Buffer => {
    const b = read(n);
    crc = crc32(b, crc);
    return b;
  };
  // Frame heads and record heads are only looked at while a frame is adopted: one buffer each.
  const frame = Buffer.allocUnsafeSlow(FRAME_HEAD);
  let heads = Buffer.allocUnsafeSlow(64 * 1024);
  const readInto = (b: Buffer, n: number): Buffer => {
    if (at + n > size) throw new Damaged('runs past the end of the file');
    for (let got = 0; got < n; ) {
      const r = readSync(fd, b, got, n - got, at + got);
      if (r === 0) throw new Damaged('file shrank while read');
      got += r;
    }
    at += n;
    return b.subarray(0, n);
  };
  const data = emptyData();
  const seen = new Set<string>();
  while (at < size) {
    const nameLen = body(1).readUInt8(0);
    const rest = body(nameLen + 6);
    const name = rest.toString('latin1', 0, nameLen);
    const kind = rest.readUInt8(nameLen);
    const numbers = rest.readUInt8(nameLen + 1) === 1;
    const entries = rest.readUInt32LE(nameLen + 2);
    if (!(parts as readonly string[]).includes(name) || seen.has(name)) throw new Damaged(`unexpected section ${JSON.stringify(name)}`);
    seen.add(name);
    const part = data[name as keyof DirectoryData] as unknown;
    const map = (part as { raw?: unknown }).raw === undefined ? (part as { set(k: string, v: unknown): unknown }) : undefined;
    const table = map ? undefined : (part as { raw: ByteTable }).raw;
    if (kind !== (map ? KIND_JSON : KIND_RAW) || (table !== undefined && table.numbers !== numbers)) {
      throw new Damaged(`section ${name} has another layout`);
    }
    // A hint only, and bounded by what the rest of the file could hold.
    const loader = table?.load(Math.min(entries, Math.floor((size - at) / table.recordHead)));
    for (;;) {
      // A frame's checksum order: data, heads, head (write.ts sums each step as it copies it).
      const f = readInto(frame, FRAME_HEAD);
      const count = f.readUInt32LE(0);
      const headBytes = f.readUInt32LE(4);
      const bytes = f.readUInt32LE(8);
      if (count === 0 && headBytes === 0 && bytes === 0) {
        crc = crc32(f, crc);
        break;
      }
      if (headBytes > heads.length) {
        if (at + headBytes > size) throw new Damaged('runs past the end of the file');
        heads = Buffer.allocUnsafeSlow(headBytes);
      }
      const h = readInto(heads, headBytes);
      const chunk = read(bytes);
      crc = crc32(f, crc32(h, crc32(chunk, crc)));
      if (map) {
        for (const [k, v] of JSON.parse(chunk.toString('utf8')) as [string, unknown][]) map.set(k, v);
      } else {
        if (headBytes !== count * table!.recordHead) throw new Damaged(`section ${name}: bad frame`);
        loader!.chunk(h, count, chunk);
      }
    }
    loader?.finish();
  }
  if (crc !== p.bodyCrc) return refuse('damaged: body checksum mismatch');
  const missing = parts.filter((n) => !seen.has(n));
  if (missing.length > 0) return refuse(`damaged: sections missing: ${missing.join(', ')}`);
  return { status: 'ok', header, data, bytes: size };
}
