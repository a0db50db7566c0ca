// One table of the limiter: key → failure (or success) times, oldest first, bounded in
// entries and in bytes. Keys can be long (a login is what a client sends, up to the
// request limit), so the byte count is what keeps a flood of junk logins from growing the
// process. Map insertion order is the LRU order: a touched entry is re-inserted at the
// end. Eviction gives entries that are at their threshold (a login being guessed) a
// second chance, so that a flood of fresh junk keys cannot simply push a guessed login's
// count out of memory and reset it.

/** Rough bytes one entry costs: the Map slot and array headers, the key, the times. */
const entryOverhead = 96;
const bytesOf = (key: string, times: number[]) => entryOverhead + key.length * 2 + times.length * 8;
/** How many entries at their threshold eviction moves to the back before evicting anyway. */
const secondChances = 16;

export interface BoundedTable {
  /** The times after cutoff (pruning older ones); [] when none. */
  recent(key: string, cutoff: number): readonly number[];
  /** Appends `at`, keeping the newest `cap` times; returns them. */
  add(key: string, at: number, cutoff: number, cap: number): readonly number[];
  readonly size: number;
  readonly bytes: number;
}

/** sticky(times): the entry is at a threshold and should outlive fresher entries. */
export function createBoundedTable(maxEntries: number, maxBytes: number, sticky: (times: readonly number[]) => boolean): BoundedTable {
  const map = new Map<string, number[]>();
  let bytes = 0;

  const remove = (key: string, t: number[]) => {
    map.delete(key);
    bytes -= bytesOf(key, t);
  };

  const prune = (t: number[], cutoff: number) => {
    let i = 0;
    while (i < t.length && t[i]! <= cutoff) i++;
    if (i === 0) return;
    bytes -= i * 8;
    t.splice(0, i);
  };

  const evict = () => {
    let chances = secondChances;
    while (map.size > maxEntries || (bytes > maxBytes && map.size > 1)) {
      const [key, t] = map.entries().next().value as [string, number[]];
      map.delete(key);
      if (chances > 0 && sticky(t)) {
        chances--;
        map.set(key, t);
        continue;
      }
      bytes -= bytesOf(key, t);
    }
  };

  return {
    recent(key, cutoff) {
      const t = map.get(key);
      if (!t) return [];
      prune(t, cutoff);
      if (t.length === 0) remove(key, t);
      return t;
    },
    add(key, at, cutoff, cap) {
      let t = map.get(key);
      if (t) {
        map.delete(key);
        prune(t, cutoff);
      } else {
        t = [];
        bytes += bytesOf(key, t);
      }
      t.push(at);
      bytes += 8;
      if (t.length > cap) {
        bytes -= (t.length - cap) * 8;
        t.splice(0, t.length - cap);
      }
      map.set(key, t);
      evict();
      return t;
    },
    get size() {
      return map.size;
    },
    get bytes() {
      return bytes;
    },
  };
}
