// The brute-force limiter: failed logins counted per remote address, per address prefix
// (/24, /64) and per login over a sliding window. Growing delays first, then refusals.
// The same wrong password retried from the same place (a phone with an old password)
// counts once, so one stale device cannot lock its owner out. Pure apart from the clock,
// which is injected; memory is bounded by evicting the least recently seen entries.

import { BlockList, isIP } from 'node:net';
import type { Config } from '../config.js';
import type { Metrics } from '../metrics.js';

export interface LimiterSettings {
  windowMs: number;
  delayAfter: number;
  rejectAfter: number;
  prefixRejectAfter: number;
  loginRejectAfter: number;
  maxDelayMs: number;
  allowList: string[];
  maxEntries: number;
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
  size(): { address: number; prefix: number; login: number; repeat: number };
}

type Kind = 'address' | 'prefix' | 'login' | 'repeat';

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
  return `${groups.slice(0, 4).map((g) => g.replace(/^0+(?=.)/, '')).join(':')}::/64`;
}

// Long because it is a closure holding the module's private state; the functions inside
// it are short and each does one thing.
export function createLimiter(settings: LimiterSettings, metrics?: Metrics, now: () => number = Date.now): Limiter {
  const allowed = allowList(settings.allowList);
  const perKind = Math.max(1, Math.floor(settings.maxEntries / 4));
  // Map insertion order is the LRU order: a touched entry is re-inserted at the end.
  const tables: Record<Kind, Map<string, number[]>> = { address: new Map(), prefix: new Map(), login: new Map(), repeat: new Map() };

  const recent = (kind: Kind, key: string): number[] => {
    const t = tables[kind].get(key);
    if (!t) return [];
    const cutoff = now() - settings.windowMs;
    let i = 0;
    while (i < t.length && t[i]! <= cutoff) i++;
    if (i > 0) t.splice(0, i);
    if (t.length === 0) tables[kind].delete(key);
    return t;
  };

  const add = (kind: Kind, key: string, cap: number) => {
    const table = tables[kind];
    const t = recent(kind, key);
    table.delete(key);
    t.push(now());
    if (t.length > cap) t.splice(0, t.length - cap);
    table.set(key, t);
    while (table.size > perKind) table.delete(table.keys().next().value as string);
    metrics?.policyEntries.set({ kind }, table.size);
  };

  const retryAfter = (t: number[], threshold: number): number => {
    // Refused until enough failures have left the window to fall below the threshold.
    const expiring = t[t.length - threshold];
    return Math.max(1, Math.ceil(((expiring ?? now()) + settings.windowMs - now()) / 1000));
  };

  const decide = (login: string, remoteIp: string | undefined): Decision => {
    const addr = remoteIp ? normalise(remoteIp) : undefined;
    if (addr && allowed.check(addr.ip, addr.family === 4 ? 'ipv4' : 'ipv6')) return { action: 'allow' };
    const l = login.toLowerCase();
    const byLogin = recent('login', l);
    if (byLogin.length >= settings.loginRejectAfter) return { action: 'reject', retryAfterSeconds: retryAfter(byLogin, settings.loginRejectAfter), reason: 'login' };
    if (!addr) return { action: 'allow' };
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
      if (success) return;
      const addr = ctx.remoteIp ? normalise(ctx.remoteIp) : undefined;
      if (addr && allowed.check(addr.ip, addr.family === 4 ? 'ipv4' : 'ipv6')) return;
      const l = login.toLowerCase();
      const repeatKey = `${l}\0${addr?.ip ?? ''}\0${passwordTag}`;
      if (passwordTag !== '' && recent('repeat', repeatKey).length > 0) {
        add('repeat', repeatKey, 1); // refresh: the same stale password keeps counting once
        return;
      }
      if (passwordTag !== '') add('repeat', repeatKey, 1);
      add('login', l, settings.loginRejectAfter + 1);
      if (addr) {
        add('address', addr.ip, settings.rejectAfter + 1);
        add('prefix', prefixOf(addr.ip, addr.family), settings.prefixRejectAfter + 1);
      }
    },
    size: () => ({ address: tables.address.size, prefix: tables.prefix.size, login: tables.login.size, repeat: tables.repeat.size }),
  };
}

export const testing = { prefixOf, normalise };
