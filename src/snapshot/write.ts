// Writes the directory to its snapshot file without holding the event loop: the raw
// entries are copied a step (8 KiB: 10-30 µs) per turn of the event loop into a frame (1 MiB,
// which the reader adopts as one chunk of its table), and each full frame is written
// (asynchronously) before the next is filled, so a lookup waits at most for one step's copy.
// Entries copied later may be newer than the header's position, never older — resuming
// re-reads every key changed after it. An entry deleted and added again while the write
// runs may be copied twice, old and new; the reader keeps the later one.
// Atomic: a temp file in the same directory, mode 0600 (it holds password hashes), fsync,
// rename over the old one, fsync the directory. A reader sees the old file or the new one,
// never half of one.

import { processAlive } from '../process-alive.js';
import { constants, readdirSync, unlinkSync } from 'node:fs';
import { open, rename, rm, type FileHandle } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { crc32 } from 'node:zlib';
import type { DirectoryData } from '../directory/directory.js';
import { CHUNK_BYTES, type ByteTable } from '../directory/byte-table.js';
import { FORMAT_VERSION, FRAME_HEAD, KIND_JSON, KIND_RAW, PREFIX_BYTES, encodePrefix, parts, sectionHead, type SnapshotHeader } from './format.js';

export interface WriteOptions {
  path: string;
  data: DirectoryData;
  header: SnapshotHeader;
  /** Asked before each step: true abandons the write (the old file stays). */
  cancelled?: () => boolean;
  /** Entry bytes per frame (default 1 MiB, the byte table's chunk): what the reader adopts as one chunk. */
  frameBytes?: number;
  /** Entry bytes copied per step (default 8 KiB, 10-30 µs): bounds how long a lookup may wait for one. */
  stepBytes?: number;
  /**
   * The share of a core the copying may take (default 1): after each millisecond of steps it
   * pauses long enough to keep to it, so that lookups, logins and the disk write have the rest.
   */
  share?: number;
}

/** The daemon's background writes: a tenth of a core. Measured at 1M+1M (bench/snapshot.mjs): lookup p99 while writing is within noise of idle at 0.1 and 0.05, 1.3-2x at 0.25. */
export const BACKGROUND_SHARE = 0.1;

export type WriteResult = { status: 'written'; bytes: number } | { status: 'cancelled' };

const END_FRAME = Buffer.alloc(FRAME_HEAD);

function frameHead(count: number, headBytes: number, bytes: number): Buffer {
  const b = Buffer.alloc(FRAME_HEAD);
  b.writeUInt32LE(count, 0);
  b.writeUInt32LE(headBytes, 4);
  b.writeUInt32LE(bytes, 8);
  return b;
}

/** The temp file a process writes a snapshot to before renaming it into place. */
const tempOf = (path: string, pid: number) => `${path}.tmp-${pid}`;

/**
 * Removes temp files of `path` left by a process killed during a write (each holds a
 * copy of the password hashes); a live process's temp file is its write in progress and
 * stays. Returns the names removed.
 */
export function removeStaleTemps(path: string): string[] {
  const dir = dirname(path);
  const prefix = `${basename(path)}.tmp-`;
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  const removed: string[] = [];
  for (const name of names) {
    if (!name.startsWith(prefix)) continue;
    const digits = name.slice(prefix.length);
    const pid = Number(digits);
    if (!/^\d{1,10}$/.test(digits) || pid <= 0) continue;
    if (pid !== process.pid && processAlive(pid)) continue;
    try {
      unlinkSync(join(dir, name));
      removed.push(name);
    } catch {
      /* gone meanwhile, or not ours to remove: the next start tries again */
    }
  }
  return removed;
}

export async function writeSnapshot(o: WriteOptions): Promise<WriteResult> {
  const tmp = tempOf(o.path, process.pid);
  await rm(tmp, { force: true });
  const fh = await open(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o600);
  let done = false;
  try {
    const result = await writeBody(fh, o);
    if (result.status === 'cancelled') return result;
    await fh.sync();
    await fh.close();
    done = true;
    await rename(tmp, o.path);
    await syncDir(dirname(o.path));
    return result;
  } finally {
    if (!done) {
      await fh.close().catch(() => {});
      await rm(tmp, { force: true }).catch(() => {});
    }
  }
}

async function writeBody(fh: FileHandle, o: WriteOptions): Promise<WriteResult> {
  const header = Buffer.from(JSON.stringify(o.header), 'utf8');
  let at = PREFIX_BYTES + header.length;
  const sum = { crc: 0 };
  /** Appends bufs to the file; `summed`: their checksum is already in sum.crc. */
  const write = async (bufs: Buffer[], summed: boolean) => {
    if (!summed) for (const b of bufs) sum.crc = crc32(b, sum.crc);
    const r = await fh.writev(bufs, at);
    const want = bufs.reduce((n, b) => n + b.length, 0);
    if (r.bytesWritten !== want) throw new Error(`short write: ${r.bytesWritten} of ${want} bytes`);
    at += want;
  };
  const put = (...bufs: Buffer[]) => write(bufs, false);
  // A raw frame becomes a chunk of the reader's table, whose offsets go up to CHUNK_BYTES.
  const frameBytes = Math.min(o.frameBytes ?? CHUNK_BYTES, CHUNK_BYTES);
  const stepBytes = Math.min(o.stepBytes ?? 8 * 1024, frameBytes);
  for (const name of parts) {
    const part = o.data[name] as unknown;
    if (!(part as object as { raw?: unknown }).raw) {
      const small = part as { size: number; entries(): Iterable<[string, unknown]> };
      const json = Buffer.from(JSON.stringify([...small.entries()]), 'utf8');
      await put(sectionHead(name, KIND_JSON, false, small.size));
      const head = frameHead(1, 0, json.length);
      sum.crc = crc32(head, crc32(json, sum.crc));
      await write([head, json], true);
      await put(END_FRAME);
      continue;
    }
    const table = (part as { raw: ByteTable }).raw;
    await put(sectionHead(name, KIND_RAW, table.numbers, table.size));
    const r = await writeRecords(table, frameBytes, stepBytes, sum, write, o);
    if (r === 'cancelled') return { status: 'cancelled' };
    await put(END_FRAME);
  }
  if (o.cancelled?.()) return { status: 'cancelled' };
  const bodyBytes = at - PREFIX_BYTES - header.length;
  const prefix = encodePrefix({ version: FORMAT_VERSION, headerBytes: header.length, bodyBytes, bodyCrc: sum.crc, headerCrc: crc32(header) });
  await fh.writev([prefix, header], 0);
  return { status: 'written', bytes: at };
}

/**
 * A table's entries as frames: each frame is filled a step per turn of the event loop and
 * written once full (or at the end). An entry bigger than a frame gets a frame of its own.
 * The checksum takes each step's bytes as they are copied, so that no turn sums a whole
 * frame; hence a raw frame's order in the checksum: its data, its heads, its head (format.ts).
 */
async function writeRecords(
  table: ByteTable,
  frameBytes: number,
  stepBytes: number,
  sum: { crc: number },
  write: (bufs: Buffer[], summed: boolean) => Promise<void>,
  o: WriteOptions,
): Promise<'done' | 'cancelled'> {
  // The buffers are reused: each frame is written (awaited) before the next is filled.
  let bytes = Buffer.allocUnsafeSlow(frameBytes);
  // Heads for 64k entries: a 1 MiB frame of real entries (30 bytes and more) holds fewer;
  // a frame of tinier ones ends when its heads are full.
  let heads = Buffer.allocUnsafeSlow(Math.min(Math.ceil(frameBytes / 3), 65536) * table.recordHead);
  let count = 0;
  let headBytes = 0;
  let used = 0;
  const share = Math.min(1, Math.max(0.01, o.share ?? 1));
  let burst = performance.now();
  // Between steps the event loop runs (setImmediate lets pending I/O go first), so a lookup
  // waits for one step at most; a pause after each millisecond of steps keeps to `share`.
  const yieldTurn = async () => {
    const busy = performance.now() - burst;
    if (busy < 1) return new Promise<void>((resolve) => setImmediate(resolve));
    if (share < 1) await new Promise((resolve) => setTimeout(resolve, (busy * (1 - share)) / share));
    else await new Promise<void>((resolve) => setImmediate(resolve));
    burst = performance.now();
  };
  const flush = async () => {
    if (count > 0) {
      const head = frameHead(count, headBytes, used);
      sum.crc = crc32(head, crc32(heads.subarray(0, headBytes), sum.crc));
      await write([head, heads.subarray(0, headBytes), bytes.subarray(0, used)], true);
    }
    count = headBytes = used = 0;
    if (bytes.length > frameBytes) bytes = Buffer.allocUnsafeSlow(frameBytes);
  };
  for (let id = 0; id >= 0; ) {
    if (o.cancelled?.()) return 'cancelled';
    const r = table.exportRecords(id, heads.subarray(headBytes), bytes.subarray(used), stepBytes);
    sum.crc = crc32(bytes.subarray(used, used + r.bytes), sum.crc);
    count += r.count;
    headBytes += r.headBytes;
    used += r.bytes;
    id = r.next;
    if (r.need > 0 && count === 0) {
      // One entry bigger than a whole frame: a frame of its own.
      bytes = Buffer.allocUnsafeSlow(r.need);
      if (heads.length < table.recordHead) heads = Buffer.allocUnsafeSlow(table.recordHead);
      continue;
    }
    if (r.full || id < 0) await flush();
    await yieldTurn();
  }
  return 'done';
}

/** Makes the rename durable: without it a crash may bring back the old file, or none. */
async function syncDir(dir: string): Promise<void> {
  const d = await open(dir, constants.O_RDONLY);
  try {
    await d.sync();
  } finally {
    await d.close();
  }
}
