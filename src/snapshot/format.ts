// The on-disk snapshot's layout, shared by the writer and the reader.
//
//   prefix (32 bytes): magic "MMDSNAP\n", format version u32, header length u32,
//                      body length u64, body CRC-32 u32, header CRC-32 u32 (all LE)
//   header: JSON (SnapshotHeader)
//   body:   one section per part of the directory, in `parts` order:
//           name length u8, name, kind u8 (1 JSON, 2 raw byte-table records),
//           numbers u8 (raw: whether records carry a number), entries u32 (how many the
//           part had when its writing began: a hint to size the table), then frames until one of
//           all zeros: entries u32, head bytes u32, data bytes u32, the heads, the data.
//           A raw frame's data is a byte-table chunk as is (see RecordFrame in byte-table.ts:
//           each record's head carries its key's hash); a JSON frame (1 entry, no heads) is
//           the part's entries as a JSON array.
//   The body CRC-32 covers every byte of the body, in file order except within a frame:
//   its data, then its heads, then its 12-byte head — the writer sums the data as it copies
//   it, a step per turn of the event loop, and knows the frame's head only at its end.
//
// Version 2: record heads carry the key's hash; frames are 1 MiB; the checksum order above.
// Version 3: the big tables' addresses are packed (local part and domain id), their ids in
// the domainIds section, the last one: ids only ever grow, so written after the tables it
// has every id an entry written during a slow write may hold. Hashes lose their scheme
// prefix (hash-prefix.ts).
// Version 4: a record's lengths and number live in its bytes, its head is [hash, flags]
// (byte-table.ts: ten million mailboxes pay for every byte of metadata); frames are at
// most a chunk.
// A file of version 3 is read still (format-3.ts), for the upgrade from it.
// A file of another version is refused (and rewritten by the next write).
//
// The byte tables travel as their raw records (byte-table.ts), so whatever a mailbox record
// holds rides along unchanged; the small tables (domains, alias domains, routes, master
// users: anything with entries() and set()) as JSON.

import type { DirectoryData } from '../directory/directory.js';

export const MAGIC = Buffer.from('MMDSNAP\n', 'latin1');
export const FORMAT_VERSION = 4;
export const PREFIX_BYTES = 32;

/** The directory's parts, by their field in DirectoryData. A new kind is one more name here. */
export const parts = [
  'domains',
  'aliasDomains',
  'mailboxes',
  'aliases',
  'routes',
  'masterUsers',
  'domainIds',
] as const satisfies readonly (keyof DirectoryData)[];

export const KIND_JSON = 1;
export const KIND_RAW = 2;
export const FRAME_HEAD = 12;

/** Where the data came from, as far as the config says: checked before anything is served. */
export interface SnapshotSource {
  /** host:port/database of database_url (no user, no password). */
  database: string;
  /** The config's `schema` (the profile whose queries filled the directory). */
  schema: string;
}

/** The database's identity as PostgreSQL reports it: checked once the database answers. */
export interface DatabaseIdentity {
  systemIdentifier: string;
  database: string;
  databaseOid: string;
}

export interface SnapshotHeader {
  software: string;
  writtenAt: number;
  /** Date.now() when the sync reported the position: how current the data was known to be. */
  dataAt: number;
  source: SnapshotSource;
  identity: DatabaseIdentity | null;
  /** The sync's position (onApplied); the body holds that data or newer. */
  position: unknown;
  counts: Record<string, number>;
}

export interface Prefix {
  version: number;
  headerBytes: number;
  bodyBytes: number;
  bodyCrc: number;
  headerCrc: number;
}

export function encodePrefix(p: Prefix): Buffer {
  const b = Buffer.alloc(PREFIX_BYTES);
  MAGIC.copy(b, 0);
  b.writeUInt32LE(p.version, 8);
  b.writeUInt32LE(p.headerBytes, 12);
  b.writeBigUInt64LE(BigInt(p.bodyBytes), 16);
  b.writeUInt32LE(p.bodyCrc >>> 0, 24);
  b.writeUInt32LE(p.headerCrc >>> 0, 28);
  return b;
}

export function decodePrefix(b: Buffer): Prefix | string {
  if (b.length < PREFIX_BYTES || !b.subarray(0, 8).equals(MAGIC)) return 'not a mailmapd snapshot';
  return {
    version: b.readUInt32LE(8),
    headerBytes: b.readUInt32LE(12),
    bodyBytes: Number(b.readBigUInt64LE(16)),
    bodyCrc: b.readUInt32LE(24),
    headerCrc: b.readUInt32LE(28),
  };
}

export function sectionHead(name: string, kind: number, numbers: boolean, entries: number): Buffer {
  const n = Buffer.from(name, 'latin1');
  const b = Buffer.alloc(1 + n.length + 2 + 4);
  b.writeUInt8(n.length, 0);
  n.copy(b, 1);
  b.writeUInt8(kind, 1 + n.length);
  b.writeUInt8(numbers ? 1 : 0, 2 + n.length);
  b.writeUInt32LE(entries, 3 + n.length);
  return b;
}
