// A string-keyed hash table whose keys and values live as UTF-8 bytes in large buffers
// outside the JavaScript heap, for the directory's two big tables (mailboxes, aliases).
//
// Why not a Map: a million mailboxes as Map entries are four million heap objects — the
// key string, a record object, the password-hash string, the Map's slot — about 300 bytes
// each with their headers, and a garbage collector that must trace them all. Here an entry
// is its bytes in a 1 MiB chunk, four numbers of metadata, and a slot in an index array:
// with 1M mailboxes + 1M aliases (bench/) the process holds 361 MB RSS where Maps held
// 535 MB (JS heap 7 MB where Maps needed 368), and a lookup touches three cache lines, as a Map's does, but no string header.
//
// Layout:
// - chunks: Buffers of CHUNK bytes (an entry bigger than BIG gets a chunk of its own);
//   an entry is its key's bytes followed by its value's.
// - meta: per entry id, [chunk, offset, keyLen | flags << 24, valLen or NULL_LEN].
// - index: open addressing with linear probing, pairs [hash, id + 1] (0 = empty slot),
//   at most 60% full; deletion shifts later slots back (no tombstones to accumulate).
// Replaced and deleted bytes are garbage; compaction (maybeCompact) copies the live entries
// of the chunks with the most garbage to the tail chunk and frees them, so memory follows
// the live data.

const CHUNK = 1 << 20;
const BIG = 256 * 1024;
const NULL_LEN = 0xffffffff;
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
const MAX_KEY_BYTES = (1 << 24) - 1;
const MIN_GARBAGE = 4 << 20;
const MOVE_BUDGET = 8 << 20;
/** Index slots a change's share of the index's growth copies (see growStep). */
const GROW_STEP = 64;
/** Ids a change's share of a compaction looks at (see maybeCompact). */
const STEP_IDS = 16 * 1024;

export interface ByteTable {
  readonly size: number;
  /** The entry id of `key`, or -1. Ids are stable while the entry lives. */
  find(key: string): number;
  /** Adds or replaces `key`'s entry. */
  put(key: string, value: string | null, num: number, flags: number): void;
  delete(key: string): boolean;
  value(id: number): string | null;
  num(id: number): number;
  flags(id: number): number;
  keys(): IterableIterator<string>;
  /** Bytes held in chunks and, of them, still live (for tests). */
  memory(): { chunkBytes: number; liveBytes: number; chunks: number };
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
 * A batch of raw entries: per entry a head [keyLen | flags << 24, valueLen or NULL_LEN, the
 * key's hash] as u32 LE and, when the table keeps numbers, the number as f64 LE; the keys'
 * and values' bytes back to back in a separate buffer, laid out as a chunk, so a reader can
 * adopt it. The hash is there so that loading a snapshot builds the index without hashing
 * two million keys again (the largest part of a restart's time before it was stored).
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
/** `growStep`: index slots copied per change while the index grows (GROW_STEP; tests make it slow). */
export function createByteTable(options: { numbers?: boolean; growStep?: number } = {}): ByteTable {
  const growBy = options.growStep ?? GROW_STEP;
  const chunks: (Buffer | undefined)[] = [];
  const chunkUsed: number[] = [];
  const chunkGarbage: number[] = [];
  /** Chunks made for one big entry: freed with it, never compacted. */
  const chunkSingle: boolean[] = [];
  const freeChunks: number[] = [];
  let tail = -1;
  let sharedBytes = 0; // bytes of the chunks entries share
  let garbage = 0; // bytes in them of replaced and deleted entries

  let meta = new Uint32Array(4 * 1024);
  let nums = options.numbers ? new Float64Array(1024) : undefined;
  let topId = 0; // ids below this have been used
  const freeIds: number[] = [];
  let size = 0;

  let index = new Uint32Array(2 * 1024);
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

  /** Index slot of the key in scratch[0, keyLen) with hash h, or -1. */
  const slotOf = (h: number): number => {
    for (let s = h & mask; ; s = (s + 1) & mask) {
      const idPlus = index[2 * s + 1]!;
      if (idPlus === 0) return -1;
      if (index[2 * s] !== h) continue;
      const m = 4 * (idPlus - 1);
      if ((meta[m + 2]! & MAX_KEY_BYTES) !== keyLen) continue;
      const buf = chunks[meta[m]!]!;
      const off = meta[m + 1]!;
      let i = 0;
      while (i < keyLen && buf[off + i] === scratch[i]) i++;
      if (i === keyLen) return s;
    }
  };

  const find = (key: string): number => {
    const s = slotOf(encode(key));
    return s < 0 ? -1 : index[2 * s + 1]! - 1;
  };

  /** Puts id+1 `idPlus` with hash h into index `arr` (mask `mk`): the first empty slot of its run. */
  const insertInto = (arr: Uint32Array, mk: number, h: number, idPlus: number) => {
    let s = h & mk;
    while (arr[2 * s + 1] !== 0) s = (s + 1) & mk;
    arr[2 * s] = h;
    arr[2 * s + 1] = idPlus;
  };

  const insertSlot = (h: number, id: number) => insertInto(index, mask, h, id + 1);

  /** The slot of `arr` holding idPlus (hash h), or -1. */
  const slotById = (arr: Uint32Array, mk: number, h: number, idPlus: number): number => {
    for (let s = h & mk; ; s = (s + 1) & mk) {
      const v = arr[2 * s + 1]!;
      if (v === 0) return -1;
      if (v === idPlus) return s;
    }
  };

  /** Empties slot s of `arr`, pulling later entries of its probe run back (no tombstones); `moved(from, to)` sees each pull. */
  const removeAt = (arr: Uint32Array, mk: number, s: number, moved?: (from: number, to: number) => void) => {
    for (let j = (s + 1) & mk; arr[2 * j + 1] !== 0; j = (j + 1) & mk) {
      const home = arr[2 * j]! & mk;
      const between = s <= j ? s < home && home <= j : s < home || home <= j;
      if (between) continue;
      arr[2 * s] = arr[2 * j]!;
      arr[2 * s + 1] = arr[2 * j + 1]!;
      moved?.(j, s);
      s = j;
    }
    arr[2 * s] = 0;
    arr[2 * s + 1] = 0;
  };

  // The index grows into one twice its size a GROW_STEP of slots per change, not in one go:
  // at ten million entries one rehash held the event loop for a quarter of a second. Until
  // the copy is through, the old index answers and every change is made in both; the new
  // one holds every entry of the slots the copy has passed (`copied`), and any other entry
  // put meanwhile.
  let next: typeof index | undefined;
  let nextMask = 0;
  let copied = 0;

  const ensureInNext = (h: number, idPlus: number) => {
    if (slotById(next!, nextMask, h, idPlus) < 0) insertInto(next!, nextMask, h, idPlus);
  };

  const growStep = (slots: number) => {
    if (next === undefined) return;
    const end = Math.min(mask + 1, copied + slots);
    for (let s = copied; s < end; s++) if (index[2 * s + 1] !== 0) ensureInNext(index[2 * s]!, index[2 * s + 1]!);
    copied = end;
    if (copied <= mask) return;
    index = next;
    mask = nextMask;
    next = undefined;
  };

  /** Called before an entry is added: starts growing at 60% full; past 80% finishes at once. */
  const growIfFull = () => {
    if (next === undefined && (size + 1) * 5 > (mask + 1) * 3) {
      next = new Uint32Array(index.length * 2);
      nextMask = index.length - 1;
      copied = 0;
    }
    if (next !== undefined && (size + 1) * 5 > (mask + 1) * 4) growStep(mask + 1);
  };

  // Where a running export (a snapshot write) has got to: ids below it are behind it. A
  // freed id behind it is not given out meanwhile — an entry put there would be missing
  // from the snapshot although it was in the table before and after — so such an entry
  // takes a fresh id, which the export still reaches. 0 when no export runs.
  let exportedUpTo = 0;

  const newId = (): number => {
    const top = freeIds.length - 1;
    if (top >= 0 && freeIds[top]! >= exportedUpTo) return freeIds.pop()!;
    if (4 * (topId + 1) > meta.length) {
      const m = new Uint32Array(meta.length * 2);
      m.set(meta);
      meta = m;
      if (nums) {
        const n = new Float64Array(nums.length * 2);
        n.set(nums);
        nums = n;
      }
    }
    return topId++;
  };

  const newChunk = (bytes: number, single: boolean): number => {
    const buf = Buffer.allocUnsafeSlow(bytes);
    const c = freeChunks.pop() ?? chunks.length;
    chunks[c] = buf;
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

  const entryBytes = (id: number): number => {
    const vl = meta[4 * id + 3]!;
    return (meta[4 * id + 2]! & MAX_KEY_BYTES) + (vl === NULL_LEN ? 0 : vl);
  };

  /** Room for `bytes` at the end of a chunk: [chunk, offset]. */
  const reserve = (bytes: number): [number, number] => {
    if (bytes > BIG) {
      const c = newChunk(bytes, true);
      chunkUsed[c] = bytes;
      return [c, 0];
    }
    if (tail < 0 || chunkUsed[tail]! + bytes > CHUNK) tail = newChunk(CHUNK, false);
    const off = chunkUsed[tail]!;
    chunkUsed[tail] = off + bytes;
    return [tail, off];
  };

  /** Turns an entry's bytes into garbage; the id is reused or rewritten by the caller. */
  const release = (id: number) => {
    const c = meta[4 * id]!;
    const bytes = entryBytes(id);
    meta[4 * id + 2] = 0; // not live: a compaction must not move it
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
      const m = 4 * id;
      if (picked[meta[m]!] !== 1 || ((meta[m + 2]! >>> 24) & LIVE) === 0) continue;
      const bytes = entryBytes(id);
      const [to, off] = reserve(bytes);
      chunks[meta[m]!]!.copy(chunks[to]!, off, meta[m + 1]!, meta[m + 1]! + bytes);
      meta[m] = to;
      meta[m + 1] = off;
    }
    scanned = end;
    if (scanned < topId) return;
    picked.forEach((p, c) => {
      if (p === 1) freeChunk(c);
    });
    picked = undefined;
  };

  const put = (key: string, value: string | null, num: number, flags: number) => {
    const h = encode(key);
    if (keyLen > MAX_KEY_BYTES) throw new RangeError(`key of ${keyLen} bytes is too long`);
    const enc = valueEncoding(flags);
    const vl = value === null ? 0 : Buffer.byteLength(value, enc);
    const s = slotOf(h);
    let id: number;
    if (s >= 0) {
      id = index[2 * s + 1]! - 1;
      release(id);
    } else {
      id = newId();
      growIfFull();
      insertSlot(h, id);
      if (next !== undefined) insertInto(next, nextMask, h, id + 1);
      size++;
    }
    const [c, off] = reserve(keyLen + vl);
    const buf = chunks[c]!;
    scratch.copy(buf, off, 0, keyLen);
    if (value !== null) buf.write(value, off + keyLen, vl, enc);
    const m = 4 * id;
    meta[m] = c;
    meta[m + 1] = off;
    meta[m + 2] = (keyLen | (((flags & USER_FLAGS) | LIVE) << 24)) >>> 0;
    meta[m + 3] = value === null ? NULL_LEN : vl;
    if (nums) nums[id] = num;
    growStep(growBy);
    maybeCompact();
  };

  const del = (key: string): boolean => {
    const s = slotOf(encode(key));
    if (s < 0) return false;
    const id = index[2 * s + 1]! - 1;
    release(id);
    freeIds.push(id);
    size--;
    if (next === undefined) removeAt(index, mask, s);
    else {
      const ns = slotById(next, nextMask, index[2 * s]!, id + 1);
      if (ns >= 0) removeAt(next, nextMask, ns);
      // An entry pulled back past the copy's position would be passed over: copy it now.
      removeAt(index, mask, s, (from, to) => {
        if (from >= copied && to < copied) ensureInNext(index[2 * to]!, index[2 * to + 1]!);
      });
    }
    growStep(growBy);
    maybeCompact();
    return true;
  };

  const keyOf = (id: number): string => {
    const m = 4 * id;
    const off = meta[m + 1]!;
    return chunks[meta[m]!]!.toString('utf8', off, off + (meta[m + 2]! & MAX_KEY_BYTES));
  };

  const recordHead = nums ? 20 : 12;

  const exportRecords = (fromId: number, heads: Buffer, out: Buffer, budget = Number.POSITIVE_INFINITY) => {
    let pos = 0;
    let count = 0;
    const dv = new DataView(heads.buffer, heads.byteOffset, heads.byteLength);
    // Entries added one after another lie one after another: they are copied as one run.
    let runChunk = -1;
    let runStart = 0;
    let runEnd = 0;
    let runTo = 0;
    const copyRun = () => {
      if (runChunk >= 0) chunks[runChunk]!.copy(out, runTo, runStart, runEnd);
    };
    const stop = (next: number, full: boolean, need: number) => {
      copyRun();
      exportedUpTo = Math.max(next, 0); // next is -1 once the export is done
      return { next, count, headBytes: count * recordHead, bytes: pos, need, full };
    };
    for (let id = fromId; id < topId; id++) {
      const m = 4 * id;
      const kf = meta[m + 2]!;
      if (((kf >>> 24) & LIVE) === 0) continue;
      const bytes = entryBytes(id);
      if (pos + bytes > out.length || (count + 1) * recordHead > heads.length) return stop(id, true, count === 0 ? bytes : 0);
      if (pos >= budget) return stop(id, false, 0);
      const c = meta[m]!;
      const off = meta[m + 1]!;
      const h = count * recordHead;
      dv.setUint32(h, (kf & ~(LIVE << 24)) >>> 0, true);
      dv.setUint32(h + 4, meta[m + 3]!, true);
      dv.setUint32(h + 8, hashBytes(chunks[c]!, off, kf & MAX_KEY_BYTES), true);
      if (nums) dv.setFloat64(h + 12, nums[id]!, true);
      if (c !== runChunk || off !== runEnd) {
        copyRun();
        runChunk = c;
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
    const kl = meta[4 * a + 2]! & MAX_KEY_BYTES;
    if ((meta[4 * b + 2]! & MAX_KEY_BYTES) !== kl) return false;
    const offA = meta[4 * a + 1]!;
    const offB = meta[4 * b + 1]!;
    return chunks[meta[4 * a]!]!.compare(chunks[meta[4 * b]!]!, offB, offB + kl, offA, offA + kl) === 0;
  };

  // Long because the loader's three steps (adopt a chunk, then order the stored hashes and
  // fill the index in one pass) share the arrays sized here; apart they would pass them all.
  const load = (hint: number): TableLoader => {
    if (topId !== 0 || chunks.length !== 0) throw new Error('a byte table loads only when empty');
    let hashes = new Uint32Array(Math.max(hint, 1024));
    // Sized once from the hint, so that a load does not regrow them step by step.
    if (4 * hint > meta.length) {
      meta = new Uint32Array(4 * hint);
      if (nums) nums = new Float64Array(hint);
    }
    const chunk = (heads: Buffer, count: number, buf: Buffer) => {
      if (heads.length < count * recordHead) throw new RangeError('truncated record heads');
      const c = chunks.length;
      chunks[c] = buf;
      chunkUsed[c] = buf.length; // full: new entries go to a chunk of their own
      chunkGarbage[c] = 0;
      chunkSingle[c] = false;
      sharedBytes += buf.length;
      // A DataView reads the little-endian heads at any alignment, and quicker than Buffer's readers.
      const dv = new DataView(heads.buffer, heads.byteOffset, heads.byteLength);
      let pos = 0;
      for (let i = 0; i < count; i++) {
        const at = i * recordHead;
        const kf = dv.getUint32(at, true);
        const vlRaw = dv.getUint32(at + 4, true);
        const kl = kf & MAX_KEY_BYTES;
        const vl = vlRaw === NULL_LEN ? 0 : vlRaw;
        if (pos + kl + vl > buf.length) throw new RangeError('record past the end of its chunk');
        const id = newId();
        if (id >= hashes.length) {
          const h = new Uint32Array(hashes.length * 2);
          h.set(hashes);
          hashes = h;
        }
        hashes[id] = dv.getUint32(at + 8, true);
        // One key per chunk hashed again: stored hashes of another hash function (a change
        // here without a new snapshot format) would make every key unfindable.
        if (i === 0 && hashes[id] !== hashBytes(buf, pos, kl)) throw new RangeError("stored key hashes are not this table's");
        const m = 4 * id;
        meta[m] = c;
        meta[m + 1] = pos;
        meta[m + 2] = (kl | ((((kf >>> 24) & USER_FLAGS) | LIVE) << 24)) >>> 0;
        meta[m + 3] = vlRaw;
        if (nums) nums[id] = dv.getFloat64(at + 12, true);
        pos += kl + vl;
      }
      if (pos !== buf.length) throw new RangeError('chunk bytes without a record');
    };
    const finish = () => {
      const n = topId;
      let slots = mask + 1;
      while (n * 5 > slots * 3) slots *= 2;
      if (slots !== mask + 1) {
        index = new Uint32Array(2 * slots);
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
      for (let k = 0; k < 2 * n; k += 2) {
        const h = order[k]!;
        const id = order[k + 1]!;
        let s = h & mask;
        while (index[2 * s + 1] !== 0 && !(index[2 * s] === h && sameKey(index[2 * s + 1]! - 1, id))) s = (s + 1) & mask;
        if (index[2 * s + 1] !== 0) {
          // The same key again: the later entry wins.
          const old = index[2 * s + 1]! - 1;
          release(old);
          freeIds.push(old);
        } else {
          index[2 * s] = h;
          size++;
        }
        index[2 * s + 1] = id + 1;
      }
    };
    return { chunk, finish };
  };

  return {
    get size() {
      return size;
    },
    numbers: nums !== undefined,
    recordHead,
    exportRecords,
    load,
    find,
    put,
    delete: del,
    value(id) {
      const m = 4 * id;
      const vl = meta[m + 3]!;
      if (vl === NULL_LEN) return null;
      const start = meta[m + 1]! + (meta[m + 2]! & MAX_KEY_BYTES);
      return chunks[meta[m]!]!.toString(valueEncoding(meta[m + 2]! >>> 24), start, start + vl);
    },
    num: (id) => (nums ? nums[id]! : 0),
    flags: (id) => (meta[4 * id + 2]! >>> 24) & USER_FLAGS,
    *keys() {
      // By id, so that entries changing during a slow consumer's iteration do not derail it.
      for (let id = 0; id < topId; id++) if ((meta[4 * id + 2]! >>> 24) & LIVE) yield keyOf(id);
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
      return { chunkBytes, liveBytes: chunkBytes - garbage - unused, chunks: n };
    },
  };
}
