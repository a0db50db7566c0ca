// The mail directory: domains, alias domains, mailboxes and aliases held in memory, and
// the answers every protocol gives from them. Pure: no I/O, no clock, no globals. The sync
// fills and patches it; socketmap, auth, checkpassword and the Dovecot lookup read it.

import { domainOf, fold, splitExtension, withExtension } from './address.js';
import type { AppPassword, SendLimits } from './account.js';
import { bindMaps, type MapName } from './maps.js';
import { createRouteTable, routeLookups, type DomainSendLimits, type RouteTable } from './routes.js';
import { createSenders } from './senders.js';
import { createDomainIds, type DomainIds } from './domain-ids.js';
import { createAliasTable, createMailboxTable, MAINTENANCE, RECIPIENT, type AliasTable, type MailboxRecord, type MailboxTable } from './tables.js';

export type { AliasTable, MailboxRecord, MailboxTable } from './tables.js';
export type { DomainSendLimits, RouteTable } from './routes.js';
export { mapNames, type MapName } from './maps.js';

export interface AliasDomainRecord {
  target: string;
  active: boolean;
}

export interface MasterUserRecord {
  password: string | null;
  active: boolean;
}

export interface DirectoryData {
  domains: Map<string, boolean>;
  aliasDomains: Map<string, AliasDomainRecord>;
  mailboxes: MailboxTable;
  /** Address (or `@domain`) → its active destinations, comma-joined, as Postfix wants them. */
  aliases: AliasTable;
  /** The routing maps' entries, keyed `<source>:<name>` (routes.ts). */
  routes: RouteTable;
  /** Master users by name: they log in as any mailbox through Dovecot. */
  masterUsers: Map<string, MasterUserRecord>;
  /** The ids the addresses in `mailboxes` and `aliases` are stored with (packed-address.ts). */
  domainIds: DomainIds;
}

/**
 * The kinds of directory entry, each a table of DirectoryData: the one list that the sync's
 * queries, the change log's CHECK and the change triggers are built from. A kind added here
 * needs its query in every profile (src/sync/profile.ts), which the compiler asks for.
 */
export const changeKinds = ['domain', 'alias_domain', 'mailbox', 'alias', 'master_user', 'route'] as const;

export type ChangeKind = (typeof changeKinds)[number];

/**
 * What `mailboxes` and `aliases` answer for a mailbox in maintenance: not a value but a
 * request for TEMP (socketmap tells Postfix to defer). NUL can be in no real answer.
 */
export const MAINTENANCE_ANSWER = '\u0000maintenance';

/** A mailbox as a login sees it. */
export interface Account {
  address: string;
  password: string | null;
  quotaBytes: number;
  disabledServices: readonly string[];
  maintenance: boolean;
  appPasswords: readonly AppPassword[];
  /** Its own sending limits; null where its domain's apply. */
  sendLimits: SendLimits;
}

export type ChangeListener = (kind: ChangeKind, key: string | null) => void;

export type UserLookup =
  | ({ status: 'ok' } & Account)
  /** Inactive mailbox, domain or alias domain; the account so that its password can still be checked. */
  | ({ status: 'disabled' } & Account)
  | { status: 'unknown' };

export function emptyData(): DirectoryData {
  const domainIds = createDomainIds();
  return {
    domains: new Map(),
    aliasDomains: new Map(),
    mailboxes: createMailboxTable(domainIds),
    aliases: createAliasTable(domainIds),
    routes: createRouteTable(),
    masterUsers: new Map(),
    domainIds,
  };
}

export interface DirectoryOptions {
  /** Characters that start an address extension, like Postfix's recipient_delimiter. */
  recipientDelimiter: string;
}

export interface Directory {
  /** True once a full load has completed; before that every answer is "unknown". */
  readonly loaded: boolean;
  lookup(map: MapName, key: string): string | undefined;
  domain(key: string): string | undefined;
  mailbox(key: string): string | undefined;
  alias(key: string): string | undefined;
  senders(key: string): string | undefined;
  /**
   * The mailbox an address delivers to by itself (its extension stripped), without aliases:
   * its address, MAINTENANCE_ANSWER, or undefined when it is no recipient mailbox here.
   */
  recipientMailbox(key: string): string | undefined;
  /** A domain's sending limits (the policy service's). */
  domainSendLimits(domain: string): DomainSendLimits;
  user(login: string): UserLookup;
  masterUser(name: string): MasterUserRecord | undefined;
  /** Every mailbox address, for Dovecot's user iteration. */
  users(): IterableIterator<string>;
  counts(): Record<ChangeKind, number>;
  /** The tables as they are now (the on-disk snapshot reads them; nothing may change them). */
  data(): DirectoryData;

  replaceAll(data: DirectoryData): void;
  setDomain(name: string, active: boolean | undefined): void;
  setAliasDomain(name: string, record: AliasDomainRecord | undefined): void;
  setMailbox(address: string, record: MailboxRecord | undefined): void;
  setAlias(address: string, destinations: string | undefined): void;
  /** A routing entry (`relay_domain:example.net` → its transport), or its removal. */
  setRoute(key: string, value: string | undefined): void;
  setMasterUser(name: string, record: MasterUserRecord | undefined): void;
  onChange(listener: ChangeListener): () => void;
  setRecipientDelimiter(delimiters: string): void;
}

// Long because it is a closure holding the module's private state; the functions inside
// it are short and each does one thing.
export function createDirectory(options: DirectoryOptions): Directory {
  let data = emptyData();
  let loaded = false;
  let delimiters = options.recipientDelimiter;
  const listeners = new Set<ChangeListener>();

  const emit = (kind: ChangeKind, key: string | null) => {
    for (const l of listeners) l(kind, key);
  };

  /** The target of `domain` when it is an active alias domain of an active domain. */
  const aliasDomainTarget = (domain: string): string | undefined => {
    const ad = data.aliasDomains.get(domain);
    return ad?.active && data.domains.get(ad.target) === true ? ad.target : undefined;
  };

  /** An active domain, or an active alias domain whose target is active. */
  const servesDomain = (domain: string): boolean => data.domains.get(domain) === true || aliasDomainTarget(domain) !== undefined;

  const activeMailbox = (address: string): boolean => data.mailboxes.isActive(address) && data.domains.get(domainOf(address)) === true;

  /** 0: no recipient here (absent, inactive, or `receive` disabled); else RECIPIENT or MAINTENANCE. */
  const delivery = (address: string): number => {
    const d = data.mailboxes.delivery(address);
    return d !== 0 && data.domains.get(domainOf(address)) === true ? d : 0;
  };
  /** An active mailbox with `receive` disabled: the address is no recipient at all. */
  const refusesMail = (address: string): boolean => activeMailbox(address) && data.mailboxes.delivery(address) === 0;

  const domain = (key: string): string | undefined => {
    const d = fold(key);
    return servesDomain(d) ? d : undefined;
  };

  const recipientMailbox = (key: string): string | undefined => {
    const a = fold(key);
    let found: string | undefined;
    let d = delivery(a);
    if (d !== 0) found = a;
    else if (!activeMailbox(a)) {
      const split = splitExtension(a, delimiters);
      if (split) {
        d = delivery(split.base);
        if (d !== 0) found = split.base;
      }
    }
    if (found === undefined) return undefined;
    return d === MAINTENANCE ? MAINTENANCE_ANSWER : found;
  };

  const mailbox = (key: string): string | undefined => {
    const found = recipientMailbox(key);
    if (found === undefined || found === MAINTENANCE_ANSWER) return found;
    const at = found.lastIndexOf('@');
    return `${found.slice(at + 1)}/${found.slice(0, at)}/`;
  };

  const aliasTargets = (address: string): string | undefined => {
    const dom = domainOf(address);
    if (!servesDomain(dom)) return undefined;
    return data.aliases.get(address);
  };

  // The search order of the contract: exact → extension stripped (extension propagated,
  // as Postfix's propagate_unmatched_extensions does) → a mailbox answers with itself →
  // alias domain rewritten to its target → the @domain catch-all.
  const resolveAlias = (a: string, depth: number): string | undefined => {
    const at = a.lastIndexOf('@');
    if (at < 0) return undefined; // bare domains: never turn them into alias domains
    const split = splitExtension(a, delimiters);
    // `receive` disabled: no alias of the address itself, no self-answer, no catch-all.
    if (at > 0 && (refusesMail(a) || (split && !activeMailbox(a) && refusesMail(split.base)))) return undefined;
    const exact = aliasTargets(a);
    if (exact !== undefined) return exact;
    if (split) {
      const stripped = aliasTargets(split.base);
      if (stripped !== undefined) {
        return stripped
          .split(',')
          .map((t) => (t.startsWith('@') ? t : withExtension(t, split.extension)))
          .join(',');
      }
    }
    if (at > 0) {
      const d = delivery(a) || (split ? delivery(split.base) : 0);
      if (d === MAINTENANCE) return MAINTENANCE_ANSWER;
      if (d === RECIPIENT) return a;
    }
    const dom = a.slice(at + 1);
    const target = aliasDomainTarget(dom);
    if (at > 0 && depth < 4 && target !== undefined) {
      const rewritten = `${a.slice(0, at)}@${target}`;
      if (resolveAlias(rewritten, depth + 1) !== undefined) return rewritten;
    }
    return aliasTargets(`@${dom}`);
  };

  const alias = (key: string): string | undefined => resolveAlias(fold(key), 0);

  // Logins allowed to send as an address (senders.ts).
  const senders = createSenders({
    delimiters: () => delimiters,
    activeMailbox,
    aliasOf: aliasTargets,
    aliasDomainTarget,
    unserved: (d) => (data.domains.has(d) || data.aliasDomains.has(d)) && !servesDomain(d),
    grants: (address) => data.routes.lookup('send_as', address),
  });

  const account = (address: string, mb: MailboxRecord): Account => ({
    address,
    password: mb.password,
    quotaBytes: mb.quotaBytes,
    disabledServices: mb.disabledServices ?? [],
    maintenance: mb.maintenance === true,
    appPasswords: mb.appPasswords ?? [],
    sendLimits: mb.sendLimits ?? { hour: null, day: null },
  });

  const user = (login: string): UserLookup => {
    let a = fold(login);
    const at = a.lastIndexOf('@');
    if (at <= 0) return { status: 'unknown' };
    let mb = data.mailboxes.get(a);
    if (mb === undefined) {
      // A login in an alias domain resolves to the mailbox of the target domain.
      const ad = data.aliasDomains.get(a.slice(at + 1));
      if (ad === undefined) return { status: 'unknown' };
      const target = `${a.slice(0, at)}@${ad.target}`;
      mb = data.mailboxes.get(target);
      if (mb === undefined) return { status: 'unknown' };
      a = target;
      if (!ad.active) return { status: 'disabled', ...account(a, mb) };
    }
    if (!mb.active || data.domains.get(domainOf(a)) !== true) return { status: 'disabled', ...account(a, mb) };
    return { status: 'ok', ...account(a, mb) };
  };

  const routes = routeLookups(
    () => data.routes,
    () => delimiters,
  );

  const maps = bindMaps({ domain, mailbox, alias, senders, routes });
  const lookup = (map: MapName, key: string): string | undefined => maps[map](key);

  return {
    get loaded() {
      return loaded;
    },
    lookup,
    domain,
    mailbox,
    alias,
    senders,
    recipientMailbox,
    domainSendLimits: (domain) => routes.domainSendLimits(fold(domain)),
    user,
    masterUser: (name) => data.masterUsers.get(name),
    users: () => data.mailboxes.keys(),
    counts: () => ({
      domain: data.domains.size,
      alias_domain: data.aliasDomains.size,
      mailbox: data.mailboxes.size,
      alias: data.aliases.size,
      route: data.routes.size,
      master_user: data.masterUsers.size,
    }),
    data: () => data,
    replaceAll(next) {
      data = next;
      loaded = true;
      emit('domain', null);
      emit('alias_domain', null);
      emit('mailbox', null);
      emit('alias', null);
      emit('route', null);
      emit('master_user', null);
    },
    setDomain(name, active) {
      const k = fold(name);
      if (active === undefined) data.domains.delete(k);
      else data.domains.set(k, active);
      emit('domain', k);
    },
    setAliasDomain(name, record) {
      const k = fold(name);
      if (record === undefined) data.aliasDomains.delete(k);
      else data.aliasDomains.set(k, { target: fold(record.target), active: record.active });
      emit('alias_domain', k);
    },
    setMailbox(address, record) {
      const k = fold(address);
      if (record === undefined) data.mailboxes.delete(k);
      else data.mailboxes.set(k, record);
      emit('mailbox', k);
    },
    setAlias(address, destinations) {
      const k = fold(address);
      if (destinations === undefined) data.aliases.delete(k);
      else data.aliases.set(k, destinations);
      emit('alias', k);
    },
    setRoute(key, value) {
      const k = fold(key);
      if (value === undefined) data.routes.delete(k);
      else data.routes.set(k, value);
      emit('route', k);
    },
    setMasterUser(name, record) {
      if (record === undefined) data.masterUsers.delete(name);
      else data.masterUsers.set(name, record);
      emit('master_user', name);
    },
    onChange(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    setRecipientDelimiter(d) {
      delimiters = d;
    },
  };
}
