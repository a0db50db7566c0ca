// The form in which the big tables (tables.ts) hold addresses, in their keys and in alias
// values: the local part, NUL, then the domain's id (domain-ids.ts) in base-64 digits.
// `user123@d45.test` becomes `user123\0` plus two bytes instead of 18 bytes.
//
// Why this is unambiguous: PostgreSQL text never holds NUL, so the NUL before the id is the
// only one; the digits (0x40–0x7f) are neither NUL nor the comma that separates an alias's
// destinations, so a packed list is still split at its commas. A key without `@` is kept as
// it is (it has no NUL, so it never equals a packed one).

import type { DomainIds } from './domain-ids.js';

const SEP = '\u0000';
const DIGIT0 = 0x40;

/** The id in base 64, most significant digit first, never empty. */
function digits(id: number): string {
  let s = String.fromCharCode(DIGIT0 + (id & 63));
  for (let n = Math.floor(id / 64); n > 0; n = Math.floor(n / 64)) s = String.fromCharCode(DIGIT0 + (n & 63)) + s;
  return s;
}

/**
 * The packed form of `address`, interning its domain (for what is stored). An address
 * with NUL would make the form ambiguous; PostgreSQL text never holds one.
 */
export function packAddress(address: string, ids: DomainIds): string {
  if (address.includes(SEP)) throw new RangeError('an address with NUL cannot be stored');
  const at = address.lastIndexOf('@');
  if (at < 0) return address;
  return address.slice(0, at) + SEP + digits(ids.intern(address.slice(at + 1)));
}

/**
 * As packAddress, for a lookup: undefined when no entry can have the address — its domain
 * is named by none (nothing is interned), or it holds NUL: a requested `x\0A` would
 * otherwise be the packed form of `x@` the domain of id 1, and answer for it.
 */
export function packFound(address: string, ids: DomainIds): string | undefined {
  if (address.includes(SEP)) return undefined;
  const at = address.lastIndexOf('@');
  if (at < 0) return address;
  const id = ids.find(address.slice(at + 1));
  return id < 0 ? undefined : address.slice(0, at) + SEP + digits(id);
}

/** The address a packed form stands for. */
export function unpackAddress(packed: string, ids: DomainIds): string {
  const sep = packed.lastIndexOf(SEP);
  if (sep < 0) return packed;
  let id = 0;
  for (let i = sep + 1; i < packed.length; i++) id = id * 64 + (packed.charCodeAt(i) - DIGIT0);
  return `${packed.slice(0, sep)}@${ids.name(id)}`;
}

/** A comma-joined list of addresses (an alias's destinations), each packed. */
export function packList(list: string, ids: DomainIds): string {
  if (list.indexOf(',') < 0) return packAddress(list, ids);
  return list
    .split(',')
    .map((a) => packAddress(a, ids))
    .join(',');
}

export function unpackList(packed: string, ids: DomainIds): string {
  if (packed.indexOf(',') < 0) return unpackAddress(packed, ids);
  return packed
    .split(',')
    .map((a) => unpackAddress(a, ids))
    .join(',');
}
