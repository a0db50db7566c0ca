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

import { createHash } from 'node:crypto';
import { BlockList, isIP } from 'node:net';
import type { Config } from '../config.js';
import type { Metrics } from '../metrics.js';
import { createBoundedTable, type BoundedTable } from './bounded-table.js';

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

export interface Limiter {
  /** The full decision, for the Dovecot policy endpoint. */
  decide(login: string, remoteIp: string | undefined): Decision;
  /** The authenticator's question: refuse before checking any password? */
  check(login: string, ctx: { remoteIp?: string }): { retryAfterSeconds: number } | undefined;
  report(login: string, ctx: { remoteIp?: string }, success: boolean, passwordTag: string): void;
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
function loginKey(login: string): string {
  const l = login.toLowerCase();
  return l.length <= 128 ? l : `#${createHash('sha256').update(l).digest('base64')}`;
}

// Long because it is a closure holding the module's private state; the functions inside
// it are short and each does one thing.
export function createLimiter(settings: LimiterSettings, metrics?: Metrics, now: () => number = Date.now): Limiter {
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

  const recent = (kind: Kind, key: string): readonly number[] => tables[kind].recent(key, now() - windowOf(kind));
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

  const decide = (login: string, remoteIp: string | undefined): Decision => {
    const addr = remoteIp ? normalise(remoteIp) : undefined;
    const l = loginKey(login);
    if (addr && recent('known', `${l}\0${addr.ip}`).length > 0) {
      // The owner's own address: only its own failures for this login count.
      const mine = recent('source', `${l}\0${addr.ip}`);
      if (mine.length >= settings.rejectAfter) return { action: 'reject', retryAfterSeconds: retryAfter(mine, settings.rejectAfter), reason: 'address' };
      return { action: 'allow' };
    }
    const byLogin = recent('login', l);
    if (byLogin.length >= settings.loginRejectAfter)
      return { action: 'reject', retryAfterSeconds: retryAfter(byLogin, settings.loginRejectAfter), reason: 'login' };
    if (!addr || isAllowed(addr)) return { action: 'allow' };
    const byAddr = recent('address', addr.ip);
    if (byAddr.length >= settings.rejectAfter) return { action: 'reject', retryAfterSeconds: retryAfter(byAddr, settings.rejectAfter), reason: 'address' };
    const byPrefix = recent('prefix', prefixOf(addr.ip, addr.family));
    if (byPrefix.length >= settings.prefixRejectAfter) {
      return { action: 'reject', retryAfterSeconds: retryAfter(byPrefix, settings.prefixRejectAfter), reason: 'prefix' };
    }
    if (byAddr.length >= settings.delayAfter) {
      // Doubling from one second, capped: a person mistyping twice waits a moment, a script crawls.
      const seconds = Math.min(settings.maxDelayMs / 1000, 2 ** (byAddr.length - settings.delayAfter));
      return { action: 'delay', seconds: Math.max(1, Math.floor(seconds)), reason: 'address' };
    }
    return { action: 'allow' };
  };

  return {
    decide,
    check(login, ctx) {
      const d = decide(login, ctx.remoteIp);
      return d.action === 'reject' ? { retryAfterSeconds: d.retryAfterSeconds } : undefined;
    },
    report(login, ctx, success, passwordTag) {
      const addr = ctx.remoteIp ? normalise(ctx.remoteIp) : undefined;
      const l = loginKey(login);
      if (success) {
        if (addr) add('known', `${l}\0${addr.ip}`, 1);
        return;
      }
      const repeatKey = `${l}\0${addr?.ip ?? ''}\0${passwordTag}`;
      if (passwordTag !== '' && recent('repeat', repeatKey).length > 0) {
        add('repeat', repeatKey, 1); // refresh: the same stale password keeps counting once
        return;
      }
      if (passwordTag !== '') add('repeat', repeatKey, 1);
      add('login', l, settings.loginRejectAfter + 1);
      if (addr) add('source', `${l}\0${addr.ip}`, settings.rejectAfter + 1);
      if (addr && !isAllowed(addr)) {
        add('address', addr.ip, settings.rejectAfter + 1);
        add('prefix', prefixOf(addr.ip, addr.family), settings.prefixRejectAfter + 1);
      }
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
