// A string-keyed hash table whose keys and values live as UTF-8 bytes in large buffers
// outside the JavaScript heap, for the directory's two big tables (mailboxes, aliases).
//
// Why not a Map: a million mailboxes as Map entries are four million heap objects — the
// key string, a record object, the password-hash string, the Map's slot — about 300 bytes
// each with their headers, and a garbage collector that must trace them all. Here an entry
// is its bytes in a 1 MiB chunk, five bytes of metadata and a 4-byte slot in an index
// array: with 10M mailboxes + 10M aliases (bench/scale.mjs) a mailbox and its alias cost
// about 30 bytes beside their keys' and values' own (86 in all there); a lookup touches
// three cache lines, as a Map's does.
//
// Layout (every byte here is paid twenty million times at ten million mailboxes, so the
// metadata is the least a lookup needs, and the rest lives with the entry's bytes):
// - chunks: Buffers of CHUNK_BYTES (an entry bigger than BIG gets a chunk of its own). An
//   entry is [key length varint][key][value length + 1 varint, 0 = null value][the number,
//   when the table keeps them (numCode)][value].
// - places: per entry id, one u32: the chunk's number in the top 12 bits, the offset in
//   the low 20 (so a table holds at most MAX_CHUNKS chunks, 4 GiB of entries).
// - flags: per entry id, the caller's flags and LIVE.
// - index: open addressing with linear probing, one u32 a slot: id + 1 in the low ID_BITS
//   (0 = empty slot), the top bits of the key's hash above them, so that a probe of another
//   key seldom reads that key's bytes; at most 60% full; deletion shifts later slots back (no
//   tombstones to accumulate). Where a full hash is needed (growth, deletion) it is computed
//   again from the key's bytes: that is rare, a slot's other 4 bytes are paid by every entry.
// Replaced and deleted bytes are garbage; compaction (maybeCompact) copies the live entries
// of the chunks with the most garbage to the tail chunk and frees them, so memory follows
// the live data.

const CHUNK_BITS = 20;
/** Bytes of a shared chunk; a snapshot's frames are no bigger (write.ts), so that one becomes a chunk. */
export const CHUNK_BYTES = 1 << CHUNK_BITS;
const OFFSET_MASK = CHUNK_BYTES - 1;
const MAX_CHUNKS = 2 ** (32 - CHUNK_BITS);
const BIG = 256 * 1024;
const ID_BITS = 26;
const ID_MASK = 2 ** ID_BITS - 1;
/** Entries one table can hold (ids 0 … MAX_IDS - 1, so that id + 1 fits ID_BITS): 67 million. */
const MAX_IDS = ID_MASK;
/** Ids a page of places and flags holds (see placePages). */
const ID_PAGE_BITS = 16;
const ID_PAGE = 1 << ID_PAGE_BITS;
const ID_PAGE_MASK = ID_PAGE - 1;
const LIVE = 0x80;
/** Flags a caller may use; the top bit marks a live entry. */
const USER_FLAGS = 0x7f;
/**
 * A flag of the caller's that the table reads too: the value is bytes, a char each (below
 * 256), not UTF-8 text — a packed hash (hash-prefix.ts) would take two bytes per byte above
 * 0x7f as UTF-8.
 */
export const LATIN1_VALUE = 0x40;
const valueEncoding = (flags: number): BufferEncoding => ((flags & LATIN1_VALUE) !== 0 ? 'latin1' : 'utf8');
const MIN_GARBAGE = 4 << 20;
const MOVE_BUDGET = 8 << 20;
/** Entries a change's share of the index's growth copies (see growStep). */
const GROW_STEP = 64;
/** Ids a change's share of a compaction looks at (see maybeCompact). */
const STEP_IDS = 16 * 1024;
/** Bytes of a record head in a snapshot frame: [hash u32 LE, flags u8] (RecordFrame). */
const RECORD_HEAD = 5;

/** Bytes of varint(v): 7 bits a byte, low bits first; v is a non-negative safe integer. */
function varintBytes(v: number): number {
  let n = 1;
  for (; v >= 128; n++) v = Math.floor(v / 128);
  return n;
}

/** Writes varint(v) at `at`; returns where it ends. */
function writeVarint(buf: Buffer, at: number, v: number): number {
  for (; v >= 128; v = Math.floor(v / 128)) buf[at++] = (v % 128) | 128;
  buf[at++] = v;
  return at;
}

/** Where the last readVarint stopped (a second return value without an object per call). */
let varEnd = 0;

/** The varint at `at`; throws past the buffer's end (a damaged snapshot's chunk). */
function readVarint(buf: Buffer, at: number): number {
  let b = buf[at++];
  if (b !== undefined && b < 128) {
    varEnd = at;
    return b;
  }
  let v = 0;
  for (let mult = 1; ; mult *= 128) {
    if (b === undefined || mult > 2 ** 49) throw new RangeError('record past the end of its chunk');
    v += (b & 127) * mult;
    if (b < 128) break;
    b = buf[at++];
  }
  varEnd = at;
  return v;
}

/**
 * A number as an entry keeps it: m × 1024^e as varint(4m + e) for e below 3 — a quota of
 * 1 GiB takes two bytes, none one — or, for any other number (negative, fractional, huge,
 * -0), F64 and the number's 8 bytes.
 */
const F64 = 3;
function numCode(n: number): number {
  if (!Number.isSafeInteger(n) || n < 0 || Object.is(n, -0)) return F64;
  let m = n;
  let e = 0;
  for (; e < 2 && m > 0 && m % 1024 === 0; e++) m /= 1024;
  return m < 2 ** 50 ? m * 4 + e : F64;
}
const numBytes = (code: number): number => (code === F64 ? 9 : varintBytes(code));

/** Reads a number written with numCode at `at`; varEnd is then past it. */
function readNum(buf: Buffer, at: number): number {
  const code = readVarint(buf, at);
  if (code === F64) {
    const n = buf.readDoubleLE(varEnd);
    varEnd += 8;
    return n;
  }
  return Math.floor(code / 4) * 1024 ** (code % 4);
}

export interface ByteTable {
  readonly size: number;
  /** The entry id of `key`, or -1. Ids are stable while the entry lives. */
  find(key: string): number;
  /** Adds or replaces `key`'s entry. */
  put(key: string, value: string | null, num: number, flags: number): void;
  /** As put() when `key` has no entry (and -1); else the id of the one it has, unchanged: a lookup fewer than find() then put(). */
  putIfAbsent(key: string, value: string | null, num: number, flags: number): number;
  delete(key: string): boolean;
  value(id: number): string | null;
  num(id: number): number;
  flags(id: number): number;
  keys(): IterableIterator<string>;
  /** Bytes held in chunks and, of them, still live; the index's slots (for tests). */
  memory(): { chunkBytes: number; liveBytes: number; chunks: number; indexSlots: number };
  /**
   * Makes room for `entries` in all, at once: a bulk load of that many then never grows the
   * index (each growth hashes every key again). A guess (PostgreSQL's estimate of a query's
   * rows): fit() undoes one far too high.
   */
  reserve(entries: number): void;
  /** Shrinks an index left far bigger than the entries need (by reserve()). */
  fit(): void;
  /** Whether entries carry a number (the layout of their raw records). */
  readonly numbers: boolean;
  /** Bytes of one record head in exportRecords' `heads` (see RecordFrame). */
  readonly recordHead: number;
  /**
   * Copies live entries, by id from `fromId`, while they fit: their heads into `heads`,
   * their key and value bytes, back to back, into `bytes`; it stops early, between entries,
   * once `budget` bytes are copied (so that one call is a bounded piece of work). `next` is
   * the id to go on from (-1: done); `full` says it stopped because the next entry did not
   * fit `bytes` or `heads`; `need` is that entry's size when nothing was copied (0 otherwise).
   */
  exportRecords(fromId: number, heads: Buffer, bytes: Buffer, budget?: number): RecordFrame & { next: number; need: number; full: boolean };
  /**
   * Loads raw entries (exportRecords' frames, about `entries` of them) into this table,
   * which must be empty. See TableLoader.
   */
  load(entries: number): TableLoader;
}

/**
 * A bulk load: each chunk (filled by exportRecords) becomes a chunk of the table without a
 * copy, its entries take the next ids; finish() then indexes them all by the hashes their
 * heads carry — in the order of their index slots, so that building the index walks it
 * front to back instead of missing the cache two million times. An entry of the same key
 * as an earlier one replaces it. Until finish() the table finds nothing.
 */
export interface TableLoader {
  /** Throws on heads that do not fit the chunk. */
  chunk(heads: Buffer, count: number, chunk: Buffer): void;
  finish(): void;
}

/**
 * A batch of raw entries: per entry a head of RECORD_HEAD bytes, [the key's hash u32 LE,
 * the caller's flags u8]; the entries' bytes (keys, values, numbers and their lengths, as
 * the table keeps them) back to back in a separate buffer, laid out as a chunk, so a reader
 * can adopt it. The hash is there so that loading a snapshot builds the index without
 * hashing twenty million keys again (the largest part of a restart's time before it was stored).
 */
export interface RecordFrame {
  count: number;
  headBytes: number;
  bytes: number;
}

/** FNV-1a, finished so that the low bits (the probe start) depend on every byte. */
function finish(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  return h >>> 0;
}

/** The hash of a key already in UTF-8 bytes: what encode() gives for the same key. */
function hashBytes(buf: Buffer, off: number, len: number): number {
  let h = 0x811c9dc5;
  for (let j = 0; j < len; j++) h = Math.imul(h ^ buf[off + j]!, 0x01000193);
  return finish(h);
}

// Long because it is a closure holding the module's private state; the functions inside
// it are short and each does one thing.
/** `growStep`: entries copied per change while the index grows (GROW_STEP; tests make it slow). */
export function createByteTable(options: { numbers?: boolean; growStep?: number } = {}): ByteTable {
  const growBy = options.growStep ?? GROW_STEP;
  const numbers = options.numbers === true;
  const chunks: (Buffer | undefined)[] = [];
  const chunkUsed: number[] = [];
  const chunkGarbage: number[] = [];
  /** Chunks made for one big entry: freed with it, never compacted. */
  const chunkSingle: boolean[] = [];
  const freeChunks: number[] = [];
  let tail = -1;
  let sharedBytes = 0; // bytes of the chunks entries share
  let garbage = 0; // bytes in them of replaced and deleted entries

  // Per id, in pages of ID_PAGE ids that are added and never copied: one array doubled at
  // 8.4 million ids held the event loop for 30 ms (a 33 MB copy and its page faults).
  const placePages: Uint32Array[] = [];
  const flagPages: Uint8Array[] = [];
  const placeOf = (id: number): number => placePages[id >>> ID_PAGE_BITS]![id & ID_PAGE_MASK]!;
  const setPlace = (id: number, place: number) => {
    placePages[id >>> ID_PAGE_BITS]![id & ID_PAGE_MASK] = place;
  };
  const flagsOf = (id: number): number => flagPages[id >>> ID_PAGE_BITS]![id & ID_PAGE_MASK]!;
  const setFlags = (id: number, flags: number) => {
    flagPages[id >>> ID_PAGE_BITS]![id & ID_PAGE_MASK] = flags;
  };
  let topId = 0; // ids below this have been used
  const freeIds: number[] = [];
  let size = 0;

  let index = new Uint32Array(1024);
  let mask = 1023;

  let scratch = Buffer.allocUnsafeSlow(1024);

  /** Length in scratch of the key the last encode() wrote. */
  let keyLen = 0;
  /**
   * Writes `key` as UTF-8 into scratch and returns its hash. Keys compare as UTF-8, so a
   * lone surrogate would equal U+FFFD; neither PostgreSQL text nor a decoded request holds one.
   */
  const encode = (key: string): number => {
    let h = 0x811c9dc5;
    const n = key.length;
    if (n > scratch.length) scratch = Buffer.allocUnsafeSlow(Math.max(n, 2 * scratch.length));
    let i = 0;
    for (; i < n; i++) {
      const c = key.charCodeAt(i);
      if (c >= 0x80) break;
      scratch[i] = c;
      h = Math.imul(h ^ c, 0x01000193);
    }
    if (i < n) {
      // Not ASCII: the same hash over the UTF-8 bytes, as stored.
      const need = Buffer.byteLength(key, 'utf8');
      if (need > scratch.length) scratch = Buffer.allocUnsafeSlow(need);
      scratch.write(key, 0, 'utf8');
      keyLen = need;
      return hashBytes(scratch, 0, need);
    }
    keyLen = n;
    return finish(h);
  };

  const chunkOf = (id: number): Buffer => chunks[placeOf(id) >>> CHUNK_BITS]!;
  const offsetOf = (id: number): number => placeOf(id) & OFFSET_MASK;

  /** The end of the entry at `off` of `buf` (throws when it runs past the buffer). */
  const entryEnd = (buf: Buffer, off: number): number => {
    const kl = readVarint(buf, off);
    const vl1 = readVarint(buf, varEnd + kl);
    if (numbers) readNum(buf, varEnd);
    return varEnd + (vl1 === 0 ? 0 : vl1 - 1);
  };
  const entryBytes = (id: number): number => entryEnd(chunkOf(id), offsetOf(id)) - offsetOf(id);

  /** The hash of entry `id`'s key, from its bytes (the index keeps only its top bits). */
  const hashOf = (id: number): number => {
    const buf = chunkOf(id);
    const kl = readVarint(buf, offsetOf(id));
    return hashBytes(buf, varEnd, kl);
  };

  /** Index slot of the key in scratch[0, keyLen) with hash h, or -1. */
  const slotOf = (h: number): number => {
    const tag = h >>> ID_BITS;
    for (let s = h & mask; ; s = (s + 1) & mask) {
      const x = index[s]!;
      if (x === 0) return -1;
      if (x >>> ID_BITS !== tag) continue;
      const id = (x & ID_MASK) - 1;
      const buf = chunkOf(id);
      let off = offsetOf(id);
      let kl = buf[off++]!;
      if (kl >= 128) {
        kl = readVarint(buf, off - 1);
        off = varEnd;
      }
      if (kl !== keyLen) continue;
      let i = 0;
      while (i < keyLen && buf[off + i] === scratch[i]) i++;
      if (i === keyLen) return s;
    }
  };

  const idAt = (s: number): number => (index[s]! & ID_MASK) - 1;

  const find = (key: string): number => {
    const s = slotOf(encode(key));
    return s < 0 ? -1 : idAt(s);
  };

  /** Puts `id` with hash h into index `arr` (mask `mk`): the first empty slot of its run. */
  const insertInto = (arr: Uint32Array, mk: number, h: number, id: number) => {
    let s = h & mk;
    while (arr[s] !== 0) s = (s + 1) & mk;
    arr[s] = (((h >>> ID_BITS) << ID_BITS) | (id + 1)) >>> 0;
  };

  /** The slot of `arr` holding `id` (hash h), or -1. */
  const slotById = (arr: Uint32Array, mk: number, h: number, id: number): number => {
    for (let s = h & mk; ; s = (s + 1) & mk) {
      const x = arr[s]!;
      if (x === 0) return -1;
      if ((x & ID_MASK) === id + 1) return s;
    }
  };

  /** Empties slot s of `arr`, pulling later entries of its probe run back (no tombstones). */
  const removeAt = (arr: Uint32Array, mk: number, s: number) => {
    for (let j = (s + 1) & mk; arr[j] !== 0; j = (j + 1) & mk) {
      const home = hashOf((arr[j]! & ID_MASK) - 1) & mk;
      const between = s <= j ? s < home && home <= j : s < home || home <= j;
      if (between) continue;
      arr[s] = arr[j]!;
      s = j;
    }
    arr[s] = 0;
  };

  // The index grows into one twice its size a GROW_STEP of entries per change, not in one
  // go: at ten million entries one rehash held the event loop for a quarter of a second.
  // Until the copy is through, the old index answers. The copy goes by id, not by slot: ids
  // lie in the order their bytes were written, so the keys it hashes again are read front
  // to back instead of one cache miss each. The new index holds the live entries of ids
  // below `copied`, and those of ids from `growFrom` (the ids the copy will not reach);
  // a change to any of those is made in both indexes, a change to an id in between only in
  // the old one: the copy takes it there as it is when it gets to it.
  let next: typeof index | undefined;
  let nextMask = 0;
  let copied = 0;
  let growFrom = 0;

  /** Whether entry `id` is in the new index while one is being grown. */
  const inNext = (id: number) => next !== undefined && (id < copied || id >= growFrom);

  const growStep = (ids: number) => {
    if (next === undefined) return;
    const end = Math.min(growFrom, copied + ids);
    for (let id = copied; id < end; id++) if ((flagsOf(id) & LIVE) !== 0) insertInto(next, nextMask, hashOf(id), id);
    copied = end;
    if (copied < growFrom) return;
    index = next;
    mask = nextMask;
    next = undefined;
  };

  /** The number of index slots that holds `entries` at most 60% full. */
  const slotsFor = (entries: number): number => {
    let slots = 1024;
    while (entries * 5 > slots * 3) slots *= 2;
    return slots;
  };

  /** Puts every live entry into a new index of `slots` slots, by id (see growStep). */
  const rebuildIndex = (slots: number) => {
    growStep(growFrom); // a growth under way finishes first
    const arr = new Uint32Array(slots);
    for (let id = 0; id < topId; id++) if ((flagsOf(id) & LIVE) !== 0) insertInto(arr, slots - 1, hashOf(id), id);
    index = arr;
    mask = slots - 1;
  };

  const reserve = (entries: number) => {
    const want = Math.min(Math.max(0, Math.floor(entries)), MAX_IDS);
    if (slotsFor(want) > mask + 1) rebuildIndex(slotsFor(want));
  };

  // A quarter of what reserve() made is a guess four times too high: the index is then
  // rebuilt at its size. (The pages of places and flags come as ids do, not reserved.)
  const fit = () => {
    if (next === undefined && slotsFor(size) * 4 <= mask + 1) rebuildIndex(slotsFor(size));
  };

  /** Called before an entry is added: starts growing at 60% full; past 80% finishes at once. */
  const growIfFull = () => {
    if (next === undefined && (size + 1) * 5 > (mask + 1) * 3) {
      next = new Uint32Array(index.length * 2);
      nextMask = next.length - 1;
      copied = 0;
      growFrom = topId;
    }
    if (next !== undefined && (size + 1) * 5 > (mask + 1) * 4) growStep(growFrom);
  };

  // Where a running export (a snapshot write) has got to: ids below it are behind it. A
  // freed id behind it is not given out meanwhile — an entry put there would be missing
  // from the snapshot although it was in the table before and after — so such an entry
  // takes a fresh id, which the export still reaches. 0 when no export runs.
  let exportedUpTo = 0;

  /** Room for ids below `n` in the pages of places and flags. */
  const ensureIds = (n: number) => {
    while (placePages.length * ID_PAGE < n) {
      placePages.push(new Uint32Array(ID_PAGE));
      flagPages.push(new Uint8Array(ID_PAGE));
    }
  };

  const newId = (): number => {
    const top = freeIds.length - 1;
    if (top >= 0 && freeIds[top]! >= exportedUpTo) return freeIds.pop()!;
    if (topId >= MAX_IDS) throw new RangeError(`a table holds at most ${MAX_IDS} entries`);
    ensureIds(topId + 1);
    return topId++;
  };

  const newChunk = (bytes: number, single: boolean): number => {
    const c = freeChunks.length > 0 ? freeChunks[freeChunks.length - 1]! : chunks.length;
    if (c >= MAX_CHUNKS) throw new RangeError(`a table holds at most ${MAX_CHUNKS} chunks of entries`);
    freeChunks.pop();
    chunks[c] = Buffer.allocUnsafeSlow(bytes);
    chunkUsed[c] = 0;
    chunkGarbage[c] = 0;
    chunkSingle[c] = single;
    if (!single) sharedBytes += bytes;
    return c;
  };

  const freeChunk = (c: number) => {
    if (!chunkSingle[c]) sharedBytes -= chunks[c]!.length;
    garbage -= chunkGarbage[c]!;
    chunks[c] = undefined;
    chunkUsed[c] = 0;
    chunkGarbage[c] = 0;
    freeChunks.push(c);
  };

  /** Room for `bytes` at the end of a chunk: its place (chunk << CHUNK_BITS | offset). */
  const roomFor = (bytes: number): number => {
    if (bytes > BIG) {
      const c = newChunk(bytes, true);
      chunkUsed[c] = bytes;
      return (c << CHUNK_BITS) >>> 0;
    }
    if (tail < 0 || chunkUsed[tail]! + bytes > CHUNK_BYTES) tail = newChunk(CHUNK_BYTES, false);
    const off = chunkUsed[tail]!;
    chunkUsed[tail] = off + bytes;
    return ((tail << CHUNK_BITS) | off) >>> 0;
  };

  /** Turns an entry's bytes into garbage; the id is reused or rewritten by the caller. */
  const release = (id: number) => {
    const c = placeOf(id) >>> CHUNK_BITS;
    const bytes = entryBytes(id);
    setFlags(id, 0); // not live: a compaction must not move it
    if (chunkSingle[c]) return freeChunk(c);
    chunkGarbage[c]! += bytes;
    garbage += bytes;
  };

  // Finding a chunk's entries means a scan of every id, so compaction waits until garbage
  // is an eighth of the shared chunks (or 4 MiB) and then frees the chunks with the most
  // garbage whose live entries fit in MOVE_BUDGET: with garbage spread evenly by random
  // updates, freeing 1 MB means moving 7. The scan goes STEP_IDS ids per change, not all at
  // once: at ten million entries one whole scan would hold the event loop (and the change
  // that set it off) for tens of milliseconds. Meanwhile no entry lands in a picked chunk
  // (new bytes go to the tail, never picked), so once the scan is through they are empty.
  let picked: Uint8Array | undefined;
  let scanned = 0; // ids below this have been moved out of the picked chunks

  const pickChunks = (): Uint8Array => {
    const candidates: number[] = [];
    chunks.forEach((b, c) => {
      if (b !== undefined && c !== tail && !chunkSingle[c] && chunkGarbage[c]! > 0) candidates.push(c);
    });
    candidates.sort((a, b) => chunkGarbage[b]! - chunkGarbage[a]!);
    const out = new Uint8Array(chunks.length);
    let moving = 0;
    for (const c of candidates) {
      const live = chunkUsed[c]! - chunkGarbage[c]!;
      if (moving > 0 && moving + live > MOVE_BUDGET) break;
      out[c] = 1;
      moving += live;
    }
    return out;
  };

  const maybeCompact = () => {
    if (picked === undefined) {
      if (garbage < MIN_GARBAGE || garbage * 8 < sharedBytes) return;
      picked = pickChunks();
      scanned = 0;
    }
    const end = Math.min(topId, scanned + STEP_IDS);
    for (let id = scanned; id < end; id++) {
      if ((flagsOf(id) & LIVE) === 0 || picked[placeOf(id) >>> CHUNK_BITS] !== 1) continue;
      const from = chunkOf(id);
      const off = offsetOf(id);
      const bytes = entryEnd(from, off) - off;
      const to = roomFor(bytes);
      from.copy(chunks[to >>> CHUNK_BITS]!, to & OFFSET_MASK, off, off + bytes);
      setPlace(id, to);
    }
    scanned = end;
    if (scanned < topId) return;
    picked.forEach((p, c) => {
      if (p === 1) freeChunk(c);
    });
    picked = undefined;
  };

  /** Stores the key encode() left in scratch (hash h; slot s, or -1 when it is new). */
  const store = (h: number, s: number, value: string | null, num: number, flags: number) => {
    const enc = valueEncoding(flags);
    const vl = value === null ? 0 : Buffer.byteLength(value, enc);
    const code = numbers ? numCode(num) : 0;
    const vl1 = value === null ? 0 : vl + 1;
    const bytes = varintBytes(keyLen) + keyLen + varintBytes(vl1) + (numbers ? numBytes(code) : 0) + vl;
    // Room first: should the table be full, it throws before anything has changed.
    const place = roomFor(bytes);
    if (s < 0) growIfFull(); // before the id: a fresh one is then one the copy does not reach
    const id = s >= 0 ? idAt(s) : newId();
    if (s >= 0) release(id);
    else {
      insertInto(index, mask, h, id);
      if (inNext(id)) insertInto(next!, nextMask, h, id);
      size++;
    }
    const buf = chunks[place >>> CHUNK_BITS]!;
    let at = writeVarint(buf, place & OFFSET_MASK, keyLen);
    // By hand: Buffer.copy's own overhead is more than an address's few bytes take.
    if (keyLen <= 64) for (let i = 0; i < keyLen; i++) buf[at + i] = scratch[i]!;
    else scratch.copy(buf, at, 0, keyLen);
    at = writeVarint(buf, at + keyLen, vl1);
    if (numbers) {
      at = writeVarint(buf, at, code);
      if (code === F64) at = buf.writeDoubleLE(num, at);
    }
    if (value !== null) buf.write(value, at, vl, enc);
    setPlace(id, place);
    setFlags(id, (flags & USER_FLAGS) | LIVE);
    growStep(growBy);
    maybeCompact();
  };

  const put = (key: string, value: string | null, num: number, flags: number) => {
    const h = encode(key);
    store(h, slotOf(h), value, num, flags);
  };

  const putIfAbsent = (key: string, value: string | null, num: number, flags: number): number => {
    const h = encode(key);
    const s = slotOf(h);
    if (s >= 0) return idAt(s);
    store(h, -1, value, num, flags);
    return -1;
  };

  const del = (key: string): boolean => {
    const h = encode(key);
    const s = slotOf(h);
    if (s < 0) return false;
    const id = idAt(s);
    removeAt(index, mask, s);
    if (inNext(id)) {
      const ns = slotById(next!, nextMask, h, id);
      if (ns >= 0) removeAt(next!, nextMask, ns);
    }
    // After the index: removeAt reads the keys of the entries it moves, and the freed chunk
    // of a big entry may be given to the next one.
    release(id);
    freeIds.push(id);
    size--;
    growStep(growBy);
    maybeCompact();
    return true;
  };

  const keyOf = (id: number): string => {
    const buf = chunkOf(id);
    const kl = readVarint(buf, offsetOf(id));
    return buf.toString('utf8', varEnd, varEnd + kl);
  };

  /** Where entry `id`'s value starts (varEnd after the call), and its length + 1 (0: null). */
  const valueAt = (id: number): number => {
    const buf = chunkOf(id);
    const kl = readVarint(buf, offsetOf(id));
    const vl1 = readVarint(buf, varEnd + kl);
    if (numbers) readNum(buf, varEnd);
    return vl1;
  };

  const exportRecords = (fromId: number, heads: Buffer, out: Buffer, budget = Number.POSITIVE_INFINITY) => {
    let pos = 0;
    let count = 0;
    const dv = new DataView(heads.buffer, heads.byteOffset, heads.byteLength);
    // Entries added one after another lie one after another: they are copied as one run.
    let runChunk: Buffer | undefined;
    let runStart = 0;
    let runEnd = 0;
    let runTo = 0;
    const copyRun = () => {
      runChunk?.copy(out, runTo, runStart, runEnd);
    };
    const stop = (next: number, full: boolean, need: number) => {
      copyRun();
      exportedUpTo = Math.max(next, 0); // next is -1 once the export is done
      return { next, count, headBytes: count * RECORD_HEAD, bytes: pos, need, full };
    };
    for (let id = fromId; id < topId; id++) {
      if ((flagsOf(id) & LIVE) === 0) continue;
      const buf = chunkOf(id);
      const off = offsetOf(id);
      const bytes = entryEnd(buf, off) - off;
      if (pos + bytes > out.length || (count + 1) * RECORD_HEAD > heads.length) return stop(id, true, count === 0 ? bytes : 0);
      if (pos >= budget) return stop(id, false, 0);
      const h = count * RECORD_HEAD;
      dv.setUint32(h, hashOf(id), true);
      dv.setUint8(h + 4, flagsOf(id) & USER_FLAGS);
      if (buf !== runChunk || off !== runEnd) {
        copyRun();
        runChunk = buf;
        runStart = off;
        runTo = pos;
      }
      runEnd = off + bytes;
      pos += bytes;
      count++;
    }
    return stop(-1, false, 0);
  };

  /** Whether entries `a` and `b` have the same key. */
  const sameKey = (a: number, b: number): boolean => {
    const bufA = chunkOf(a);
    const kl = readVarint(bufA, offsetOf(a));
    const startA = varEnd;
    const bufB = chunkOf(b);
    if (readVarint(bufB, offsetOf(b)) !== kl) return false;
    return bufA.compare(bufB, varEnd, varEnd + kl, startA, startA + kl) === 0;
  };

  // Long because the loader's three steps (adopt a chunk, then order the stored hashes and
  // fill the index in one pass) share the arrays sized here; apart they would pass them all.
  const load = (hint: number): TableLoader => {
    if (topId !== 0 || chunks.length !== 0) throw new Error('a byte table loads only when empty');
    let hashes = new Uint32Array(Math.max(hint, 1024));
    // Sized once from the hint, so that a load does not regrow them step by step.
    ensureIds(hint);
    const chunk = (heads: Buffer, count: number, buf: Buffer) => {
      if (heads.length < count * RECORD_HEAD) throw new RangeError('truncated record heads');
      // An entry's offset has CHUNK_BITS: a bigger frame is one big entry's own.
      if (buf.length > CHUNK_BYTES && count > 1) throw new RangeError('a frame bigger than a chunk with more than one record');
      const c = chunks.length;
      if (c >= MAX_CHUNKS) throw new RangeError(`a table holds at most ${MAX_CHUNKS} chunks of entries`);
      const single = count === 1 && buf.length > BIG;
      chunks[c] = buf;
      chunkUsed[c] = buf.length; // full: new entries go to a chunk of their own
      chunkGarbage[c] = 0;
      chunkSingle[c] = single;
      if (!single) sharedBytes += buf.length;
      let pos = 0;
      for (let i = 0; i < count; i++) {
        const at = i * RECORD_HEAD;
        const end = entryEnd(buf, pos);
        if (end > buf.length) throw new RangeError('record past the end of its chunk');
        const id = newId();
        if (id >= hashes.length) {
          const h = new Uint32Array(hashes.length * 2);
          h.set(hashes);
          hashes = h;
        }
        hashes[id] = heads.readUInt32LE(at);
        setPlace(id, ((c << CHUNK_BITS) | pos) >>> 0);
        setFlags(id, (heads[at + 4]! & USER_FLAGS) | LIVE);
        // One key per chunk hashed again: stored hashes of another hash function (a change
        // here without a new snapshot format) would make every key unfindable.
        if (i === 0 && hashes[id] !== hashOf(id)) throw new RangeError("stored key hashes are not this table's");
        pos = end;
      }
      if (pos !== buf.length) throw new RangeError('chunk bytes without a record');
    };
    const finish = () => {
      const n = topId;
      let slots = mask + 1;
      while (n * 5 > slots * 3) slots *= 2;
      if (slots !== mask + 1) {
        index = new Uint32Array(slots);
        mask = slots - 1;
      }
      // Ids by the top bits of their home slot (a stable counting sort, so that of two
      // entries of one key the later still comes later): each bucket's slots are a few KiB.
      const shift = Math.max(0, Math.log2(slots) - 12);
      const starts = new Uint32Array((slots >>> shift) + 1);
      for (let id = 0; id < n; id++) starts[((hashes[id]! & mask) >>> shift) + 1]!++;
      for (let b = 1; b < starts.length; b++) starts[b]! += starts[b - 1]!;
      // Hash and id side by side, so that the insertion below reads them in order too.
      const order = new Uint32Array(2 * n);
      for (let id = 0; id < n; id++) {
        const h = hashes[id]!;
        const at = 2 * starts[(h & mask) >>> shift]!++;
        order[at] = h;
        order[at + 1] = id;
      }
      hashes = new Uint32Array(0);
      for (let k = 0; k < 2 * n; k += 2) {
        const h = order[k]!;
        const id = order[k + 1]!;
        const tag = h >>> ID_BITS;
        let s = h & mask;
        while (index[s] !== 0 && !(index[s]! >>> ID_BITS === tag && sameKey(idAt(s), id))) s = (s + 1) & mask;
        if (index[s] !== 0) {
          // The same key again: the later entry wins.
          const old = idAt(s);
          release(old);
          freeIds.push(old);
        } else size++;
        index[s] = ((tag << ID_BITS) | (id + 1)) >>> 0;
      }
    };
    return { chunk, finish };
  };

  return {
    get size() {
      return size;
    },
    numbers,
    reserve,
    fit,
    recordHead: RECORD_HEAD,
    exportRecords,
    load,
    find,
    put,
    putIfAbsent,
    delete: del,
    value(id) {
      const vl1 = valueAt(id);
      if (vl1 === 0) return null;
      const at = varEnd;
      return chunkOf(id).toString(valueEncoding(flagsOf(id)), at, at + vl1 - 1);
    },
    num(id) {
      if (!numbers) return 0;
      const buf = chunkOf(id);
      const kl = readVarint(buf, offsetOf(id));
      readVarint(buf, varEnd + kl);
      return readNum(buf, varEnd);
    },
    flags: (id) => flagsOf(id) & USER_FLAGS,
    *keys() {
      // By id, so that entries changing during a slow consumer's iteration do not derail it.
      for (let id = 0; id < topId; id++) if ((flagsOf(id) & LIVE) !== 0) yield keyOf(id);
    },
    memory() {
      let chunkBytes = 0;
      let garbage = 0;
      let unused = 0;
      let n = 0;
      chunks.forEach((b, c) => {
        if (b === undefined) return;
        n++;
        chunkBytes += b.length;
        garbage += chunkGarbage[c]!;
        unused += b.length - chunkUsed[c]!;
      });
      return { chunkBytes, liveBytes: chunkBytes - garbage - unused, chunks: n, indexSlots: mask + 1 };
    },
  };
}
