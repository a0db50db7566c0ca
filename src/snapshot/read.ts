// Reads and verifies a snapshot file. Nothing in it is served before every check passes:
// the magic and format version, the exact length (a truncated file is refused), the
// header's CRC-32, the caller's check of the header (which database, how old), every
// section of the directory present and none unknown, every entry inside its frame, and
// the body's CRC-32. Frames of raw entries become the tables' chunks without a copy, and
// their entries go into the tables' indexes by the hashes stored with them: no key is
// hashed, no per-entry object made (a restart's time is mostly reading the file). A file
// of the format before is read too, its records put one by one (format-3.ts).

import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { crc32 } from 'node:zlib';
import { emptyData, type DirectoryData } from '../directory/directory.js';
import type { ByteTable } from '../directory/byte-table.js';
import { FORMAT_3, putRecords3, recordHead3 } from './format-3.js';
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

/** Reads at a moving position; reading past the end or a file that shrinks is damage. */
interface FileReader {
  size: number;
  at(): number;
  /** The next n bytes, in a new buffer. */
  read(n: number): Buffer;
  /** The next n bytes, into `b` (at least n long). */
  readInto(b: Buffer, n: number): Buffer;
}

function fileReader(fd: number): FileReader {
  const size = fstatSync(fd).size;
  let at = 0;
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
  return { size, at: () => at, readInto, read: (n) => readInto(Buffer.allocUnsafeSlow(n), n) };
}

function readFrom(fd: number, check: (h: SnapshotHeader) => string | undefined): ReadResult {
  const refuse = (reason: string): ReadResult => ({ status: 'refused', reason });
  const r = fileReader(fd);
  const { size } = r;
  if (size < PREFIX_BYTES) return refuse(`truncated: ${size} bytes`);
  const p = decodePrefix(r.read(PREFIX_BYTES));
  if (typeof p === 'string') return refuse(p);
  if (p.version !== FORMAT_VERSION && p.version !== FORMAT_3) return refuse(`format version ${p.version}, this mailmapd reads ${FORMAT_VERSION}`);
  const expected = PREFIX_BYTES + p.headerBytes + p.bodyBytes;
  if (size !== expected) return refuse(`truncated or damaged: ${size} bytes, the header says ${expected}`);
  const headerBuf = r.read(p.headerBytes);
  if (crc32(headerBuf) !== p.headerCrc) return refuse('damaged: header checksum mismatch');
  let header: SnapshotHeader;
  try {
    header = JSON.parse(headerBuf.toString('utf8')) as SnapshotHeader;
  } catch {
    return refuse('damaged: unreadable header');
  }
  const why = check(header);
  if (why !== undefined) return refuse(why);

  const data = emptyData();
  const seen = new Set<string>();
  const body: BodyState = { version: p.version, crc: 0, frame: Buffer.allocUnsafeSlow(FRAME_HEAD), heads: Buffer.allocUnsafeSlow(64 * 1024) };
  while (r.at() < size) seen.add(readSection(r, body, data, seen));
  if (body.crc !== p.bodyCrc) return refuse('damaged: body checksum mismatch');
  const missing = parts.filter((n) => !seen.has(n));
  if (missing.length > 0) return refuse(`damaged: sections missing: ${missing.join(', ')}`);
  return { status: 'ok', header, data, bytes: size };
}

/** The body's running checksum, and the buffers frame heads and record heads are read into (only looked at while a frame is adopted). */
interface BodyState {
  /** The file's format: FORMAT_VERSION, or FORMAT_3 (format-3.ts). */
  version: number;
  crc: number;
  frame: Buffer;
  heads: Buffer;
}

/** Reads one section into `data`; returns its name. */
function readSection(r: FileReader, st: BodyState, data: DirectoryData, seen: Set<string>): string {
  const summed = (n: number): Buffer => {
    const b = r.read(n);
    st.crc = crc32(b, st.crc);
    return b;
  };
  const nameLen = summed(1).readUInt8(0);
  const rest = summed(nameLen + 6);
  const name = rest.toString('latin1', 0, nameLen);
  const kind = rest.readUInt8(nameLen);
  const numbers = rest.readUInt8(nameLen + 1) === 1;
  const entries = rest.readUInt32LE(nameLen + 2);
  if (!(parts as readonly string[]).includes(name) || seen.has(name)) throw new Damaged(`unexpected section ${JSON.stringify(name)}`);
  const part = data[name as keyof DirectoryData] as unknown;
  const map = (part as { raw?: unknown }).raw === undefined ? (part as { set(k: string, v: unknown): unknown }) : undefined;
  const table = map ? undefined : (part as { raw: ByteTable }).raw;
  if (kind !== (map ? KIND_JSON : KIND_RAW) || (table !== undefined && table.numbers !== numbers)) {
    throw new Damaged(`section ${name} has another layout`);
  }
  const old = st.version === FORMAT_3;
  const recordHead = table === undefined ? 0 : old ? recordHead3(table) : table.recordHead;
  // A hint only, and bounded by what the rest of the file could hold.
  const hint = table === undefined ? 0 : Math.min(entries, Math.floor((r.size - r.at()) / recordHead));
  const loader = old ? undefined : table?.load(hint);
  if (old) table?.reserve(hint);
  for (;;) {
    // A frame's checksum order: data, heads, head (write.ts sums each step as it copies it).
    const f = r.readInto(st.frame, FRAME_HEAD);
    const count = f.readUInt32LE(0);
    const headBytes = f.readUInt32LE(4);
    const bytes = f.readUInt32LE(8);
    if (count === 0 && headBytes === 0 && bytes === 0) {
      st.crc = crc32(f, st.crc);
      break;
    }
    if (headBytes > st.heads.length) {
      if (r.at() + headBytes > r.size) throw new Damaged('runs past the end of the file');
      st.heads = Buffer.allocUnsafeSlow(headBytes);
    }
    const h = r.readInto(st.heads, headBytes);
    const chunk = r.read(bytes);
    st.crc = crc32(f, crc32(h, crc32(chunk, st.crc)));
    if (map) {
      // Read before the body's checksum is checked (at its end): a bad byte here is damage too.
      let entries: [string, unknown][];
      try {
        entries = JSON.parse(chunk.toString('utf8')) as [string, unknown][];
      } catch {
        throw new Damaged(`section ${name}: unreadable JSON`);
      }
      for (const [k, v] of entries) map.set(k, v);
    } else {
      if (headBytes !== count * recordHead) throw new Damaged(`section ${name}: bad frame`);
      if (old) putRecords3(table!, h, count, chunk);
      else loader!.chunk(h, count, chunk);
    }
  }
  loader?.finish();
  return name;
}
