// Reading a snapshot of format 3, the one before the byte tables' entries carried their
// lengths and numbers in their bytes (format.ts, version 4). Kept for one upgrade: a daemon
// upgraded from it restarts from the file it finds, not from the database — at ten
// million mailboxes that is 3 s of serving instead of 50 s of TEMP answers. Its raw
// records are put into the tables one by one (each key hashed again, slower than an
// adoption but once); the rest of the file is read as format 4's.
//
// A format-3 record head: [keyLen | flags << 24 u32, valueLen or NULL_LEN u32, the key's
// hash u32, the number f64 when the table keeps numbers], all LE; the data: each record's
// key bytes then its value bytes, back to back. Addresses and hashes were already packed
// as they are now (packed-address.ts, hash-prefix.ts).

import { LATIN1_VALUE, type ByteTable } from '../directory/byte-table.js';

export const FORMAT_3 = 3;
const NULL_LEN = 0xffffffff;
const KEY_BYTES = 0xffffff;
const USER_FLAGS = 0x7f;

/** Bytes of one record head of `table`'s kind in format 3. */
export const recordHead3 = (table: ByteTable): number => (table.numbers ? 20 : 12);

/** Puts a format-3 frame's `count` records into `table`; throws (RangeError) on a frame that does not add up. */
export function putRecords3(table: ByteTable, heads: Buffer, count: number, data: Buffer): void {
  const head = recordHead3(table);
  if (heads.length < count * head) throw new RangeError('truncated record heads');
  let pos = 0;
  for (let i = 0; i < count; i++) {
    const at = i * head;
    const kf = heads.readUInt32LE(at);
    const vlRaw = heads.readUInt32LE(at + 4);
    const kl = kf & KEY_BYTES;
    const flags = (kf >>> 24) & USER_FLAGS;
    const vl = vlRaw === NULL_LEN ? 0 : vlRaw;
    if (pos + kl + vl > data.length) throw new RangeError('record past the end of its chunk');
    const value = vlRaw === NULL_LEN ? null : data.toString((flags & LATIN1_VALUE) !== 0 ? 'latin1' : 'utf8', pos + kl, pos + kl + vl);
    table.put(data.toString('utf8', pos, pos + kl), value, table.numbers ? heads.readDoubleLE(at + 12) : 0, flags);
    pos += kl + vl;
  }
  if (pos !== data.length) throw new RangeError('chunk bytes without a record');
}
