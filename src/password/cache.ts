// The verified-credential cache: after a successful login, an HMAC of (address, stored
// hash, password) under a key that exists only in this process's memory. A phone that
// reconnects with the same password is then answered in microseconds without a hash.
// Nothing stored here is a password or usable outside this process; binding the stored
// hash into the tag means a password change can never be satisfied by an old entry, even
// before the change event has dropped it. Bounded: least recently used entries go first.

import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { domainOf } from '../directory/address.js';

export interface CredentialCache {
  /** True when this password was verified for this address and this stored hash. */
  matches(address: string, stored: string, password: string): boolean;
  /**
   * Which of `candidates` (the mailbox password and its app passwords) this password was
   * verified for, or -1: one HMAC whatever their number, the entry naming the stored hash.
   */
  matchesAny(address: string, candidates: readonly string[], password: string): number;
  remember(address: string, stored: string, password: string): void;
  forget(address: string): void;
  /** Drops every entry of the domain (the domain was changed, deactivated or removed). */
  forgetDomain(domain: string): void;
  clear(): void;
  readonly size: number;
}

export function createCredentialCache(maxEntries: number): CredentialCache {
  const key = randomBytes(32);
  const entries = new Map<string, { tag: Buffer; stored: string }>();

  const tag = (address: string, stored: string, password: string): Buffer =>
    createHmac('sha256', key)
      // Length-prefixed, so no choice of the three parts can collide with another.
      .update(`${address.length}:${address}\n${stored.length}:${stored}\n`)
      .update(password, 'utf8')
      .digest();

  return {
    matches(address, stored, password) {
      const want = entries.get(address);
      if (want === undefined) return false;
      if (!timingSafeEqual(want.tag, tag(address, stored, password))) return false;
      entries.delete(address); // most recently used goes last
      entries.set(address, want);
      return true;
    },
    matchesAny(address, candidates, password) {
      const want = entries.get(address);
      if (want === undefined) return -1;
      const i = candidates.indexOf(want.stored);
      if (i < 0 || !timingSafeEqual(want.tag, tag(address, want.stored, password))) return -1;
      entries.delete(address);
      entries.set(address, want);
      return i;
    },
    remember(address, stored, password) {
      if (maxEntries <= 0) return;
      entries.delete(address);
      entries.set(address, { tag: tag(address, stored, password), stored });
      while (entries.size > maxEntries) entries.delete(entries.keys().next().value!);
    },
    forget(address) {
      entries.delete(address);
    },
    forgetDomain(domain) {
      for (const address of entries.keys()) if (domainOf(address) === domain) entries.delete(address);
    },
    clear() {
      entries.clear();
    },
    get size() {
      return entries.size;
    },
  };
}

/**
 * A short tag of a password for the brute-force limiter, which wants to tell "the same
 * wrong password again" (a phone with an old password) from "many different passwords"
 * (an attack) without ever holding a password. Keyed per process, so it is useless elsewhere.
 */
export function createPasswordTagger(): (password: string) => string {
  const key = randomBytes(32);
  return (password) => createHmac('sha256', key).update(password, 'utf8').digest().subarray(0, 12).toString('base64url');
}
