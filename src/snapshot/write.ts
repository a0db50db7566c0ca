// Writes the directory to its snapshot file without holding the event loop: the raw
// entries go out a frame at a time, each written (asynchronously) before the next is
// copied, so a lookup waits at most for one frame's copy. Entries copied later may be newer
// than the header's position, never older — resuming re-reads every key changed after it.
// Atomic: a temp file in the same directory, mode 0600 (it holds password hashes), fsync,
// rename over the old one, fsync the directory. A reader sees the old file or the new one,
// never half of one.

import { constants } from 'node:fs';
import { open, rename, rm, type FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';
import { crc32 } from 'node:zlib';
import type { DirectoryData } from '../directory/directory.js';
import type { ByteTable } from '../directory/byte-table.js';
import { FORMAT_VERSION, FRAME_HEAD, KIND_JSON, KIND_RAW, PREFIX_BYTES, encodePrefix, parts, sectionHead, type SnapshotHeader } from './format.js';

export interface WriteOptions {
  path: string;
  data: DirectoryData;
  header: SnapshotHeader;
  /** Asked between frames: true abandons the write (the old file stays). */
  cancelled?: () => boolean;
  /** Entry bytes copied per frame (default 64 KiB): bounds how long one turn of the event loop takes. */
  frameBytes?: number;
  /** A pause after each frame, so that the copy and the disk write take a core only part of the time. */
  pauseMs?: number;
}

export type WriteResult = { status: 'written'; bytes: number } | { status: 'cancelled' };

const END_FRAME = Buffer.alloc(FRAME_HEAD);

function frameHead(count: number, headBytes: number, bytes: number): Buffer {
  const b = Buffer.alloc(FRAME_HEAD);
  b.writeUInt32LE(count, 0);
  b.writeUInt32LE(headBytes, 4);
  b.writeUInt32LE(bytes, 8);
  return b;
}

export async function writeSnapshot(o: WriteOptions): Promise<WriteResult> {
  const tmp = `${o.path}.tmp-${process.pid}`;
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
  let crc = 0;
  const put = async (...bufs: Buffer[]) => {
    for (const b of bufs) crc = crc32(b, crc);
    const r = await fh.writev(bufs, at);
    const want = bufs.reduce((n, b) => n + b.length, 0);
    if (r.bytesWritten !== want) throw new Error(`short write: ${r.bytesWritten} of ${want} bytes`);
    at += want;
  };
  const frameBytes = o.frameBytes ?? 64 * 1024;
  let bytes = Buffer.allocUnsafeSlow(frameBytes);
  for (const name of parts) {
    const part = o.data[name] as unknown;
    if (!(part as object as { raw?: unknown }).raw) {
      const small = part as { size: number; entries(): Iterable<[string, unknown]> };
      const json = Buffer.from(JSON.stringify([...small.entries()]), 'utf8');
      await put(sectionHead(name, KIND_JSON, false, small.size), frameHead(1, 0, json.length), json, END_FRAME);
      continue;
    }
    const table = (part as { raw: ByteTable }).raw;
    const heads = Buffer.allocUnsafeSlow(4096 * table.recordHead);
    await put(sectionHead(name, KIND_RAW, table.numbers, table.size));
    for (let id = 0; id >= 0; ) {
      if (o.cancelled?.()) return { status: 'cancelled' };
      const r = table.exportRecords(id, heads, bytes);
      if (r.need > 0) {
        bytes = Buffer.allocUnsafeSlow(r.need);
        continue;
      }
      if (r.count > 0) await put(frameHead(r.count, r.headBytes, r.bytes), heads.subarray(0, r.headBytes), bytes.subarray(0, r.bytes));
      if (o.pauseMs) await new Promise((resolve) => setTimeout(resolve, o.pauseMs));
      if (bytes.length > frameBytes) bytes = Buffer.allocUnsafeSlow(frameBytes);
      id = r.next;
    }
    await put(END_FRAME);
  }
  if (o.cancelled?.()) return { status: 'cancelled' };
  const bodyBytes = at - PREFIX_BYTES - header.length;
  const prefix = encodePrefix({ version: FORMAT_VERSION, headerBytes: header.length, bodyBytes, bodyCrc: crc, headerCrc: crc32(header) });
  await fh.writev([prefix, header], 0);
  return { status: 'written', bytes: at };
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
