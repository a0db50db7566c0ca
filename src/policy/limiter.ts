// The brute-force limiter: failed logins counted per remote address, per address prefix
// (/24, /64) and per login over a sliding window. Growing delays first, then refusals.
// The same wrong password retried from the same place (a phone with an old password)
// counts once, so one stale device cannot lock its owner out. Pure apart from the clock,
// which is injected; memory is bounded in entries and bytes by evicting the least
// recently seen entries.
//
// The remote address is whatever the client says it is (Dovecot's rip=, the Lua door's
// rip), and allow-listed addresses include the webmail on localhost. So the per-login
// bound holds whatever address is claimed, allow-listed or not: only the per-address and
// per-prefix counters skip the allow list. What keeps the owner in while others guess is
// the address: one where this login succeeded within policy_known_source_ttl is "known"
// for it and is judged only by its own failures for that login (policy_reject_after),
// never by failures from elsewhere.
//
// Three ways around the per-login bound are closed here (issue 29): an attempt is counted
// when it is reserved, before its password is verified, so guesses in flight cannot all
// pass the check (reserve, then settle); a login is keyed by the mailbox it resolves to
// (`canonical`), so alias domains share one count; and a master login is keyed in its own
// namespace, so a plain login of the same bare name cannot lock the master user out.
//
// With `shared` (shared-state.ts), the per-login failures and the known sources are also
// every other host's: their failures, read back from the database, count with ours.

import { createHash } from 'node:crypto';
import { BlockList, isIP } from 'node:net';
import type { Config } from '../config.js';
import type { Metrics } from '../metrics.js';
import { createBoundedTable, type BoundedTable } from './bounded-table.js';
import { BUCKET_S, bucketOf, shareKey, type SharedState } from './shared-state.js';

export interface LimiterSettings {
  windowMs: number;
  delayAfter: number;
  rejectAfter: number;
  prefixRejectAfter: number;
  loginRejectAfter: number;
  maxDelayMs: number;
  allowList: string[];
  maxEntries: number;
  /** How long an address where a login succeeded stays known for that login. */
  knownSourceMs: number;
  /** Bytes all tables may hold together (keys and times). */
  maxBytes: number;
}

export type Decision =
  | { action: 'allow' }
  | { action: 'delay'; seconds: number; reason: 'address' }
  | { action: 'reject'; retryAfterSeconds: number; reason: 'address' | 'prefix' | 'login' };

/** Where an attempt comes from and, for a Dovecot master login, the master user it uses. */
export interface AttemptContext {
  remoteIp?: string;
  master?: string;
}

/** A reserved attempt: counted as a failure until settled. */
export interface Attempt {
  /** 'uncounted': no evidence either way (a temporary failure, a service the mailbox may not use). */
  settle(result: 'success' | 'failure' | 'uncounted'): void;
}

export interface Limiter {
  /** The full decision, for the Dovecot policy endpoint. */
  decide(login: string, remoteIp: string | undefined): Decision;
  /** The authenticator's question: refuse before checking any password? */
  check(login: string, ctx: AttemptContext): { retryAfterSeconds: number } | undefined;
  report(login: string, ctx: AttemptContext, success: boolean, passwordTag: string): void;
  /**
   * Check and count in one step, before the password is verified: either refused, or an
   * attempt counted as a failure (in every table a failure counts in) until settled.
   */
  reserve(login: string, ctx: AttemptContext, passwordTag: string): { refused: { retryAfterSeconds: number } } | { attempt: Attempt };
  size(): { address: number; prefix: number; login: number; repeat: number; source: number; known: number };
  /** Bytes held by all tables, as counted for maxBytes. */
  bytes(): number;
}

type Kind = 'address' | 'prefix' | 'login' | 'repeat' | 'source' | 'known';
const kinds: readonly Kind[] = ['address', 'prefix', 'login', 'repeat', 'source', 'known'];

export function settingsFrom(config: Config): LimiterSettings {
  return {
    windowMs: config.policy_window,
    delayAfter: config.policy_delay_after,
    rejectAfter: config.policy_reject_after,
    prefixRejectAfter: config.policy_prefix_reject_after,
    loginRejectAfter: config.policy_login_reject_after,
    maxDelayMs: config.policy_max_delay,
    allowList: config.policy_allow_list,
    maxEntries: config.policy_max_entries,
    knownSourceMs: config.policy_known_source_ttl,
    maxBytes: config.policy_max_memory,
  };
}

function allowList(entries: string[]): BlockList {
  const list = new BlockList();
  for (const e of entries) {
    const [addr, bits] = e.split('/') as [string, string | undefined];
    const family = isIP(addr) === 6 ? 'ipv6' : 'ipv4';
    if (isIP(addr) === 0) throw new Error(`policy_allow_list: not an address: ${e}`);
    if (bits === undefined) list.addAddress(addr, family);
    else list.addSubnet(addr, Number(bits), family);
  }
  return list;
}

/** IPv4-mapped IPv6 counts as IPv4; anything unparsable has no prefix. */
function normalise(ip: string): { ip: string; family: 4 | 6 } | undefined {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip);
  const a = mapped ? mapped[1]! : ip;
  const f = isIP(a);
  return f === 0 ? undefined : { ip: a.toLowerCase(), family: f as 4 | 6 };
}

function prefixOf(ip: string, family: 4 | 6): string {
  if (family === 4) return `${ip.split('.').slice(0, 3).join('.')}.0/24`;
  const [head, tail = ''] = ip.split('::') as [string, string | undefined];
  const h = head === '' ? [] : head.split(':');
  const t = tail === '' ? [] : tail.split(':');
  const groups = ip.includes('::') ? [...h, ...Array(8 - h.length - t.length).fill('0'), ...t] : h;
  return `${groups
    .slice(0, 4)
    .map((g) => g.replace(/^0+(?=.)/, ''))
    .join(':')}::/64`;
}

/** Logins are keys: a long one is kept as its digest, so each entry's size is bounded. */
function boundedKey(login: string): string {
  const l = login.toLowerCase();
  return l.length <= 128 ? l : `#${createHash('sha256').update(l).digest('base64')}`;
}

/** The kinds a failure counts in, and so an attempt in flight is reserved in. */
type Counted = 'login' | 'source' | 'address' | 'prefix';

// Long because it is a closure holding the module's private state; the functions inside
// it are short and each does one thing.
/**
 * `canonical` maps a login to the mailbox it resolves to (alias domains, case), so that every
 * spelling of one mailbox shares one count; a login it does not know is counted as typed.
 */
export function createLimiter(
  settings: LimiterSettings,
  metrics?: Metrics,
  now: () => number = Date.now,
  canonical: (login: string) => string = (login) => login,
  shared?: SharedState,
): Limiter {
  const allowed = allowList(settings.allowList);
  const perKind = Math.max(1, Math.floor(settings.maxEntries / kinds.length));
  const bytesPerKind = Math.max(4096, Math.floor(settings.maxBytes / kinds.length));
  const threshold: Record<Kind, number> = {
    address: settings.rejectAfter,
    prefix: settings.prefixRejectAfter,
    login: settings.loginRejectAfter,
    source: settings.rejectAfter,
    repeat: Infinity,
    known: Infinity,
  };
  const tables = Object.fromEntries(kinds.map((k) => [k, createBoundedTable(perKind, bytesPerKind, (t) => t.length >= threshold[k])])) as Record<
    Kind,
    BoundedTable
  >;
  const windowOf = (kind: Kind) => (kind === 'known' ? settings.knownSourceMs : settings.windowMs);
  // Attempts reserved and not yet settled, per counted key: they count as failures.
  const pending = Object.fromEntries((['login', 'source', 'address', 'prefix'] as const).map((k) => [k, new Map<string, number>()])) as Record<
    Counted,
    Map<string, number>
  >;
  const inFlight = (kind: Counted, key: string) => pending[kind].get(key) ?? 0;
  const hold = (kind: Counted, key: string, delta: number) => {
    const n = inFlight(kind, key) + delta;
    if (n > 0) pending[kind].set(key, n);
    else pending[kind].delete(key);
  };
  /** The key of a login: plain ones by the mailbox they resolve to, master ones apart (`m:`). */
  const keyOf = (login: string, master?: string): string => (master === undefined ? `l:${boundedKey(canonical(login))}` : `m:${boundedKey(master)}`);

  const recent = (kind: Kind, key: string): readonly number[] => tables[kind].recent(key, now() - windowOf(kind));
  /** Other hosts' failures for a shared key, each at its bucket's end, at most `cap` a bucket. */
  const othersOf = (key: string, cap: number): number[] => {
    const out: number[] = [];
    for (const [at, n] of shared?.failures.othersByBucket(key, bucketOf(now() - settings.windowMs)) ?? []) {
      const t = Math.min(now(), (at + BUCKET_S) * 1000);
      for (let i = 0; i < Math.min(n, cap); i++) out.push(t);
    }
    return out;
  };
  /** Failure times in the window: ours, and for the shared kinds every other host's, oldest first. */
  const failures = (kind: Counted, key: string, limit: number): readonly number[] => {
    const t = recent(kind, key);
    if (shared === undefined || (kind !== 'login' && kind !== 'source')) return t;
    // A source key is `login\0address` already; a login's shared key has an empty source.
    const others = othersOf(kind === 'login' ? shareKey(key, '') : key, limit);
    return others.length === 0 ? t : [...t, ...others].sort((a, b) => a - b);
  };
  /** An address where the login succeeded recently, here or (shared) on any host. */
  const isKnown = (sourceKey: string): boolean =>
    recent('known', sourceKey).length > 0 || (shared?.sources.seen(sourceKey) ?? Number.NEGATIVE_INFINITY) > now() - settings.knownSourceMs;
  /** Seconds to wait when failures recorded plus attempts in flight reach `limit`, else undefined. */
  const over = (kind: Counted, key: string, limit: number): number | undefined => {
    const t = failures(kind, key, limit);
    if (t.length >= limit) return retryAfter(t, limit);
    // Reached only with attempts in flight, which settle within a login's time.
    return t.length + inFlight(kind, key) >= limit ? 1 : undefined;
  };
  const add = (kind: Kind, key: string, cap: number) => {
    tables[kind].add(key, now(), now() - windowOf(kind), cap);
    metrics?.policyEntries.set({ kind }, tables[kind].size);
  };

  const retryAfter = (t: readonly number[], threshold: number): number => {
    // Refused until enough failures have left the window to fall below the threshold.
    const expiring = t[t.length - threshold];
    return Math.max(1, Math.ceil(((expiring ?? now()) + settings.windowMs - now()) / 1000));
  };

  const isAllowed = (addr: { ip: string; family: 4 | 6 } | undefined) => addr !== undefined && allowed.check(addr.ip, addr.family === 4 ? 'ipv4' : 'ipv6');

  const decideFor = (l: string, addr: { ip: string; family: 4 | 6 } | undefined): Decision => {
    const sourceKey = addr === undefined ? undefined : shareKey(l, addr.ip);
    if (sourceKey !== undefined && isKnown(sourceKey)) {
      // The owner's own address: only its own failures for this login count.
      const mine = over('source', sourceKey, settings.rejectAfter);
      return mine === undefined ? { action: 'allow' } : { action: 'reject', retryAfterSeconds: mine, reason: 'address' };
    }
    const byLogin = over('login', l, settings.loginRejectAfter);
    if (byLogin !== undefined) return { action: 'reject', retryAfterSeconds: byLogin, reason: 'login' };
    if (!addr || isAllowed(addr)) return { action: 'allow' };
    const byAddrRetry = over('address', addr.ip, settings.rejectAfter);
    if (byAddrRetry !== undefined) return { action: 'reject', retryAfterSeconds: byAddrRetry, reason: 'address' };
    const byPrefix = over('prefix', prefixOf(addr.ip, addr.family), settings.prefixRejectAfter);
    if (byPrefix !== undefined) return { action: 'reject', retryAfterSeconds: byPrefix, reason: 'prefix' };
    const byAddr = recent('address', addr.ip);
    if (byAddr.length >= settings.delayAfter) {
      // Doubling from one second, capped: a person mistyping twice waits a moment, a script crawls.
      const seconds = Math.min(settings.maxDelayMs / 1000, 2 ** (byAddr.length - settings.delayAfter));
      return { action: 'delay', seconds: Math.max(1, Math.floor(seconds)), reason: 'address' };
    }
    return { action: 'allow' };
  };

  /** The counted keys a failure of login key `l` from `addr` lands in. */
  const countedKeys = (l: string, addr: { ip: string; family: 4 | 6 } | undefined): [Counted, string, number][] => {
    const keys: [Counted, string, number][] = [['login', l, settings.loginRejectAfter + 1]];
    if (addr) keys.push(['source', shareKey(l, addr.ip), settings.rejectAfter + 1]);
    if (addr && !isAllowed(addr)) {
      keys.push(['address', addr.ip, settings.rejectAfter + 1]);
      keys.push(['prefix', prefixOf(addr.ip, addr.family), settings.prefixRejectAfter + 1]);
    }
    return keys;
  };
  /** The same wrong password from the same place again: refreshed, true, and not counted again. */
  const repeated = (l: string, addr: { ip: string } | undefined, passwordTag: string): boolean => {
    if (passwordTag === '') return false;
    const repeatKey = `${l}\0${addr?.ip ?? ''}\0${passwordTag}`;
    const seen = recent('repeat', repeatKey).length > 0;
    add('repeat', repeatKey, 1); // refresh: the same stale password keeps counting once
    return seen;
  };
  /** A failure counted: handed to the write-back, per login, and per source when the source is known. */
  const share = (l: string, addr: { ip: string } | undefined) => {
    if (shared === undefined) return;
    const at = bucketOf(now());
    if (!shared.failures.add(shareKey(l, ''), at, 1)) metrics?.policySharedDropped.inc({ kind: 'failures' });
    if (addr && isKnown(shareKey(l, addr.ip)) && !shared.failures.add(shareKey(l, addr.ip), at, 1)) metrics?.policySharedDropped.inc({ kind: 'failures' });
  };
  const record = (l: string, addr: { ip: string; family: 4 | 6 } | undefined, success: boolean, passwordTag: string) => {
    if (success) {
      if (addr) add('known', shareKey(l, addr.ip), 1);
      if (addr) shared?.sources.succeeded(shareKey(l, addr.ip), now());
      return;
    }
    if (repeated(l, addr, passwordTag)) return;
    for (const [kind, key, cap] of countedKeys(l, addr)) add(kind, key, cap);
    share(l, addr);
  };

  return {
    decide: (login, remoteIp) => decideFor(keyOf(login), remoteIp ? normalise(remoteIp) : undefined),
    check(login, ctx) {
      const d = decideFor(keyOf(login, ctx.master), ctx.remoteIp ? normalise(ctx.remoteIp) : undefined);
      return d.action === 'reject' ? { retryAfterSeconds: d.retryAfterSeconds } : undefined;
    },
    report(login, ctx, success, passwordTag) {
      record(keyOf(login, ctx.master), ctx.remoteIp ? normalise(ctx.remoteIp) : undefined, success, passwordTag);
    },
    reserve(login, ctx, passwordTag) {
      const l = keyOf(login, ctx.master);
      const addr = ctx.remoteIp ? normalise(ctx.remoteIp) : undefined;
      const d = decideFor(l, addr);
      if (d.action === 'reject') return { refused: { retryAfterSeconds: d.retryAfterSeconds } };
      const held = countedKeys(l, addr);
      for (const [kind, key] of held) hold(kind, key, 1);
      let settled = false;
      return {
        attempt: {
          settle(result) {
            if (settled) return;
            settled = true;
            for (const [kind, key] of held) hold(kind, key, -1);
            if (result !== 'uncounted') record(l, addr, result === 'success', passwordTag);
          },
        },
      };
    },
    size: () => ({
      address: tables.address.size,
      prefix: tables.prefix.size,
      login: tables.login.size,
      repeat: tables.repeat.size,
      source: tables.source.size,
      known: tables.known.size,
    }),
    bytes: () => kinds.reduce((n, k) => n + tables[k].bytes, 0),
  };
}

export const testing = { prefixOf, normalise };
