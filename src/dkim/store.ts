// mailmapd.dkim_keys for the CLI: what is published (never the private key: a role without
// the column's grant can list keys and print records), adding keys, rotating, removing.
// Every change to one domain's keys holds a transaction-scoped advisory lock on the domain,
// so that two rotations at once do not both pick the same successor.

import type pg from 'pg';
import { UsageError } from '../errors.js';
import { type DkimAlgorithm, defaultSelector, dkimAlgorithms, generateDkimKey } from './keys.js';

export interface KeyInfo {
  domain: string;
  selector: string;
  algorithm: DkimAlgorithm;
  publicKey: string;
  active: boolean;
  created: Date;
  retired: Date | null;
}

const publicColumns = 'domain, selector, algorithm, public_key, active, created, retired';

function toInfo(r: Record<string, unknown>): KeyInfo {
  return {
    domain: r.domain as string,
    selector: r.selector as string,
    algorithm: r.algorithm as DkimAlgorithm,
    publicKey: r.public_key as string,
    active: r.active as boolean,
    created: r.created as Date,
    retired: (r.retired as Date | null) ?? null,
  };
}

/** The published keys of one domain, or of all (oldest first). */
export async function listKeys(c: pg.ClientBase, domain?: string): Promise<KeyInfo[]> {
  const r = await c.query(
    `SELECT ${publicColumns} FROM mailmapd.dkim_keys WHERE $1::text IS NULL OR domain = $1 ORDER BY domain, algorithm, created, selector`,
    [domain ?? null],
  );
  return r.rows.map(toInfo);
}

async function lockDomain(c: pg.ClientBase, domain: string): Promise<void> {
  await c.query(`SELECT pg_advisory_xact_lock(hashtext('mailmapd.dkim_keys'), hashtext($1))`, [domain]);
}

async function insertKey(c: pg.ClientBase, domain: string, selector: string, algorithm: DkimAlgorithm, active: boolean): Promise<KeyInfo> {
  const key = await generateDkimKey(algorithm);
  // The private key goes as a parameter: it is in no statement text the server could log.
  const r = await c.query(
    `INSERT INTO mailmapd.dkim_keys (domain, selector, algorithm, private_key, public_key, active) VALUES ($1, $2, $3, $4, $5, $6) RETURNING ${publicColumns}`,
    [domain, selector, algorithm, key.privateKey, key.publicKey, active],
  );
  return toInfo(r.rows[0]);
}

/**
 * Adds a key of each algorithm. It signs when the domain has no signing key of that
 * algorithm yet; otherwise it is published only, and `rotate` makes it sign later (once
 * DNS has it). Call inside a transaction.
 */
export async function addKeys(c: pg.ClientBase, domain: string, algorithms: readonly DkimAlgorithm[], selector?: string): Promise<KeyInfo[]> {
  await lockDomain(c, domain);
  const existing = await listKeys(c, domain);
  const taken = new Set(existing.map((k) => k.selector));
  if (selector !== undefined && taken.has(selector)) throw new UsageError(`${domain} has a key with selector ${selector} already`);
  const now = (await c.query<{ now: Date }>('SELECT now()')).rows[0]!.now;
  const added: KeyInfo[] = [];
  for (const algorithm of algorithms) {
    const sel = selector ?? defaultSelector(algorithm, now, taken);
    taken.add(sel);
    const signing = existing.some((k) => k.active && k.algorithm === algorithm);
    added.push(await insertKey(c, domain, sel, algorithm, !signing));
  }
  return added;
}

export interface Rotation {
  algorithm: DkimAlgorithm;
  signing: KeyInfo;
  /** The key that signed before: stays published. */
  retired: KeyInfo;
  /** Whether `signing` was made now (its record must be published at once). */
  generated: boolean;
}

/**
 * Makes a new key the signing one for each algorithm the domain signs with (or the one
 * given): a key published earlier and never used when there is one, else a new one. The
 * old key stays published. Call inside a transaction.
 */
export async function rotateKeys(c: pg.ClientBase, domain: string, only?: DkimAlgorithm): Promise<Rotation[]> {
  await lockDomain(c, domain);
  const keys = await listKeys(c, domain);
  const algorithms = dkimAlgorithms.filter((a) => (only === undefined || a === only) && keys.some((k) => k.active && k.algorithm === a));
  if (algorithms.length === 0) {
    throw new UsageError(`${domain} signs with no ${only ?? 'DKIM'} key: add one with \`mailmapd dkim add ${domain}\``);
  }
  const now = (await c.query<{ now: Date }>('SELECT now()')).rows[0]!.now;
  const taken = new Set(keys.map((k) => k.selector));
  const out: Rotation[] = [];
  for (const algorithm of algorithms) {
    const current = keys.find((k) => k.active && k.algorithm === algorithm)!;
    // A successor published ahead: newer than the signing key, never retired.
    const ready = keys.filter((k) => k.algorithm === algorithm && !k.active && k.retired === null && k.created >= current.created).pop();
    const next = ready ?? (await insertKey(c, domain, defaultSelector(algorithm, now, taken), algorithm, false));
    taken.add(next.selector);
    await c.query('UPDATE mailmapd.dkim_keys SET active = (selector = $2) WHERE domain = $1 AND selector IN ($2, $3)', [
      domain,
      next.selector,
      current.selector,
    ]);
    const after = await listKeys(c, domain);
    out.push({
      algorithm,
      signing: after.find((k) => k.selector === next.selector)!,
      retired: after.find((k) => k.selector === current.selector)!,
      generated: ready === undefined,
    });
  }
  return out;
}

/** Removes a key; a signing one only with `force`. */
export async function removeKey(c: pg.ClientBase, domain: string, selector: string, force: boolean): Promise<KeyInfo | undefined> {
  await lockDomain(c, domain);
  const key = (await listKeys(c, domain)).find((k) => k.selector === selector);
  if (key === undefined) return undefined;
  if (key.active && !force) {
    throw new UsageError(`${selector} still signs mail for ${domain}: \`mailmapd dkim rotate ${domain}\` first (or --force)`);
  }
  await c.query('DELETE FROM mailmapd.dkim_keys WHERE domain = $1 AND selector = $2', [domain, selector]);
  return key;
}

export type KeyState = { state: 'signing' } | { state: 'waiting' } | { state: 'retired'; removableAt: Date; removable: boolean };

/** What `dkim list` says of a key: signing, published ahead, or retired (and whether it may go). */
export function keyState(k: KeyInfo, now: Date, keepMs: number): KeyState {
  if (k.active) return { state: 'signing' };
  if (k.retired === null) return { state: 'waiting' };
  const removableAt = new Date(k.retired.getTime() + keepMs);
  return { state: 'retired', removableAt, removable: now >= removableAt };
}
