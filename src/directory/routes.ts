// The routing maps' answers: per-domain transports, relay domains and their recipients,
// sender-dependent relay hosts and their credentials, BCC copies by sender and by recipient;
// and the send-as grants the `senders` map reads (directory.ts). Pure, like the rest of the
// directory.
//
// Every routing entry is one string key naming its source and its subject, e.g.
// `relay_domain:example.net` → its transport (or '' for none), so that the sync carries all
// five maps as one kind. Postfix sends a socketmap only the full key (it skips pattern
// tables for its partial-key searches), so the fallbacks Postfix would do for a hash table
// are done here: address, then address without its extension, then `@domain`.

import { atIndex, splitExtension } from './address.js';

/** The sources a routing key starts with, each followed by `:` and a folded name or address. */
// `send_limits` is no Postfix map: a domain's sending limits (`hour,day,total`), carried here
// because they come from the domains table like its transport (domainSendLimits below).
const routeSources = [
  'domain_transport',
  'relay_domain',
  'relay_recipient',
  'sender_relayhost',
  'sender_credentials',
  'sender_bcc',
  'recipient_bcc',
  'send_as',
  'send_limits',
] as const;
export type RouteSource = (typeof routeSources)[number];

/**
 * Whether a routing key's value is a comma-joined list built from several rows (a send-as
 * grant: `send_as:<address>` → the granted mailboxes) rather than one row's value.
 */
export function isListRoute(key: string): boolean {
  return key.startsWith('send_as:');
}

export interface RouteTable {
  readonly size: number;
  get(key: string): string | undefined;
  /** The value of `name` in one source: get(`${source}:${name}`) without building that key. */
  lookup(source: RouteSource, name: string): string | undefined;
  set(key: string, value: string): RouteTable;
  /** set() when the key has no value (and undefined); else its value, unchanged (a load's list rows, as the alias table's). */
  setIfAbsent(key: string, value: string): string | undefined;
  delete(key: string): boolean;
  keys(): IterableIterator<string>;
  entries(): IterableIterator<[string, string]>;
  /** Whether any relay recipient of `domain` is listed (none listed: every address is valid). */
  listsRecipients(domain: string): boolean;
}

const RECIPIENT = 'relay_recipient:';

/** The domain a relay-recipient key counts for: `relay_recipient:user@d` and `…:@d` → `d`. */
function recipientDomain(key: string): string | undefined {
  if (!key.startsWith(RECIPIENT)) return undefined;
  const at = atIndex(key);
  return at < 0 ? undefined : key.slice(at + 1);
}

export function createRouteTable(): RouteTable {
  // One map per source, so a lookup hashes just the name, never a concatenated key.
  const bySource = new Map<string, Map<string, string>>();
  let size = 0;
  // Relay recipients counted per domain, so "this domain lists none" is one map lookup.
  const listed = new Map<string, number>();
  const count = (key: string, by: number) => {
    const d = recipientDomain(key);
    if (d === undefined) return;
    const n = (listed.get(d) ?? 0) + by;
    if (n > 0) listed.set(d, n);
    else listed.delete(d);
  };
  /** [source, name] of `source:name`; a key without `:` is a name of the source ''. */
  const split = (key: string): [string, string] => {
    const c = key.indexOf(':');
    return c < 0 ? ['', key] : [key.slice(0, c), key.slice(c + 1)];
  };
  function* all(): IterableIterator<[string, string]> {
    for (const [source, m] of bySource) for (const [name, value] of m) yield [source === '' ? name : `${source}:${name}`, value];
  }
  const table: RouteTable = {
    get size() {
      return size;
    },
    get(key) {
      const [source, name] = split(key);
      return bySource.get(source)?.get(name);
    },
    lookup: (source, name) => bySource.get(source)?.get(name),
    set(key, value) {
      const [source, name] = split(key);
      let m = bySource.get(source);
      if (m === undefined) bySource.set(source, (m = new Map()));
      if (!m.has(name)) {
        size++;
        count(key, 1);
      }
      m.set(name, value);
      return table;
    },
    setIfAbsent(key, value) {
      const had = table.get(key);
      if (had === undefined) table.set(key, value);
      return had;
    },
    delete(key) {
      const [source, name] = split(key);
      if (!bySource.get(source)?.delete(name)) return false;
      size--;
      count(key, -1);
      return true;
    },
    *keys() {
      for (const [k] of all()) yield k;
    },
    entries: all,
    listsRecipients: (domain) => listed.has(domain),
  };
  return table;
}

/** A domain's sending limits; null: not set (the config's, or none for the total). */
export interface DomainSendLimits {
  mailboxHour: number | null;
  mailboxDay: number | null;
  /** All its mailboxes together, per day. */
  totalDay: number | null;
}

const NO_DOMAIN_LIMITS: DomainSendLimits = { mailboxHour: null, mailboxDay: null, totalDay: null };

/** `hour,day,total` as the profiles write it, each part empty for NULL; anything else is NULL. */
export function parseDomainSendLimits(value: string | undefined): DomainSendLimits {
  if (value === undefined) return NO_DOMAIN_LIMITS;
  const part = (s: string | undefined): number | null => (s !== undefined && /^\d{1,10}$/.test(s.trim()) ? Number(s.trim()) : null);
  const [hour, day, total] = value.split(',');
  return { mailboxHour: part(hour), mailboxDay: part(day), totalDay: part(total) };
}

export interface RouteLookups {
  transport(key: string): string | undefined;
  relayDomain(key: string): string | undefined;
  relayRecipient(key: string): string | undefined;
  senderRelayhost(key: string): string | undefined;
  senderCredentials(key: string): string | undefined;
  senderBcc(key: string): string | undefined;
  recipientBcc(key: string): string | undefined;
  /** The sending limits of a (folded) domain. */
  domainSendLimits(domain: string): DomainSendLimits;
}

/**
 * Lookups over `routes()` (a function, because a full reload replaces the table). Keys
 * arrive folded. `delimiters` gives the current recipient_delimiter.
 */
export function routeLookups(routes: () => RouteTable, delimiters: () => string): RouteLookups {
  const entry = (source: RouteSource, name: string) => routes().lookup(source, name);

  /** A key's domain: the part after the last `@`, or the whole key when it is a domain. */
  const domainPart = (key: string): string => {
    const at = atIndex(key);
    return at < 0 ? key : key.slice(at + 1);
  };

  /** address → address without extension → @domain, as Postfix searches its hash tables. */
  const byAddress = (source: RouteSource, address: string): string | undefined => {
    const at = atIndex(address);
    if (at < 0 || at === address.length - 1) return undefined;
    const exact = at > 0 ? entry(source, address) : undefined;
    if (exact !== undefined) return exact;
    const split = splitExtension(address, delimiters());
    if (split) {
      const stripped = entry(source, split.base);
      if (stripped !== undefined) return stripped;
    }
    return entry(source, address.slice(at));
  };

  const nonEmpty = (v: string | undefined) => (v === undefined || v === '' ? undefined : v);

  return {
    transport(key) {
      const d = domainPart(key);
      if (d === '') return undefined;
      return nonEmpty(entry('domain_transport', d)) ?? nonEmpty(entry('relay_domain', d));
    },
    relayDomain(key) {
      if (key === '' || key.includes('@')) return undefined;
      return entry('relay_domain', key) !== undefined ? key : undefined;
    },
    relayRecipient(key) {
      const at = atIndex(key);
      if (at <= 0 || at === key.length - 1) return undefined;
      const d = key.slice(at + 1);
      if (entry('relay_domain', d) === undefined) return undefined;
      if (!routes().listsRecipients(d)) return key;
      return byAddress('relay_recipient', key) !== undefined ? key : undefined;
    },
    senderRelayhost: (key) => nonEmpty(byAddress('sender_relayhost', key)),
    senderCredentials: (key) => nonEmpty(byAddress('sender_credentials', key)),
    senderBcc: (key) => nonEmpty(byAddress('sender_bcc', key)),
    recipientBcc: (key) => nonEmpty(byAddress('recipient_bcc', key)),
    domainSendLimits: (domain) => parseDomainSendLimits(entry('send_limits', domain)),
  };
}
