// The directory's domains interned as small numbers, so that the big tables (tables.ts)
// store an address as its local part and its domain's number (packed-address.ts) instead
// of the domain's bytes again in every key and value: a million mailboxes over a thousand
// domains repeat each domain a thousand times, in the mailbox, in its alias's key and in
// the alias's destination.
//
// Ids are never taken back while the data lives: an id must mean the same domain for as
// long as any entry may hold it, and finding every holder would mean a scan of the tables.
// A full load starts a new table (emptyData), so a domain that went away costs its few
// bytes only until then.

export interface DomainIds {
  readonly size: number;
  /** The id of `domain`, given it a new one when it has none. */
  intern(domain: string): number;
  /** The id of `domain`, or -1: a lookup of an address in a domain no entry names. */
  find(domain: string): number;
  /** The domain of an id `intern` gave. */
  name(id: number): string;
  /** [domain, id] pairs: the on-disk snapshot's JSON section. */
  entries(): IterableIterator<[string, number]>;
  /** Restores one pair of entries() (the snapshot reader); an id may come only once. */
  set(domain: string, id: number): DomainIds;
}

export function createDomainIds(): DomainIds {
  const ids = new Map<string, number>();
  const names: string[] = [];
  const self: DomainIds = {
    get size() {
      return names.length;
    },
    intern(domain) {
      let id = ids.get(domain);
      if (id === undefined) {
        id = names.length;
        names.push(domain);
        ids.set(domain, id);
      }
      return id;
    },
    find: (domain) => ids.get(domain) ?? -1,
    name(id) {
      const d = names[id];
      if (d === undefined) throw new RangeError(`no domain has id ${id}`);
      return d;
    },
    *entries() {
      for (let id = 0; id < names.length; id++) yield [names[id]!, id];
    },
    set(domain, id) {
      if (!Number.isInteger(id) || id < 0 || names[id] !== undefined || ids.has(domain)) throw new RangeError(`domain id ${id} (${domain}) given twice`);
      // A snapshot lists ids in order; a gap would be an id nothing gave out.
      names[id] = domain;
      ids.set(domain, id);
      return self;
    },
  };
  return self;
}
