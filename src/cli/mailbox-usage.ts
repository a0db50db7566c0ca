// What `mailmapd mailbox list` and `mailbox show` add from the written-back tables: the
// last login (when, through which service, from where) and the usage Dovecot last reported.
// A database migrated before those tables existed shows neither rather than failing.

import type pg from 'pg';

export interface WrittenBack {
  lastLoginAt: Date | null;
  service: string | null;
  remoteIp: string | null;
  bytes: string | null;
  messages: string | null;
  updated: Date | null;
}

/** The written-back values of the given mailboxes (absent: none recorded). */
export async function writtenBack(c: pg.ClientBase, addresses: string[]): Promise<Map<string, WrittenBack>> {
  const out = new Map<string, WrittenBack>();
  const exists = await c.query<{ e: boolean }>(
    `SELECT to_regclass('mailmapd.last_logins') IS NOT NULL AND to_regclass('mailmapd.quota_usage') IS NOT NULL AS e`,
  );
  if (exists.rows[0]?.e !== true || addresses.length === 0) return out;
  const r = await c.query<{
    address: string;
    at: Date | null;
    service: string | null;
    ip: string | null;
    bytes: string | null;
    messages: string | null;
    updated: Date | null;
  }>(
    `SELECT a.address, l.at, l.service, host(l.remote_ip) AS ip, q.bytes, q.messages, q.updated
       FROM unnest($1::text[]) AS a(address)
       LEFT JOIN mailmapd.last_logins l ON l.address = a.address
       LEFT JOIN mailmapd.quota_usage q ON q.address = a.address
      WHERE l.address IS NOT NULL OR q.address IS NOT NULL`,
    [addresses],
  );
  for (const row of r.rows) {
    out.set(row.address, { lastLoginAt: row.at, service: row.service, remoteIp: row.ip, bytes: row.bytes, messages: row.messages, updated: row.updated });
  }
  return out;
}

const iso = (d: Date) => d.toISOString().replace(/\.\d{3}Z$/, 'Z');

/** ` last_login=… service=… from=… bytes=… messages=…` for a `mailbox list` line; '' when nothing is known. */
export function listSuffix(w: WrittenBack | undefined): string {
  if (!w) return '';
  let s = '';
  if (w.lastLoginAt) s += ` last_login=${iso(w.lastLoginAt)} service=${w.service}${w.remoteIp ? ` from=${w.remoteIp}` : ''}`;
  if (w.updated) s += `${w.bytes !== null ? ` bytes=${w.bytes}` : ''}${w.messages !== null ? ` messages=${w.messages}` : ''}`;
  return s;
}

/** The lines of `mailbox show`. */
export function showLines(row: { address: string; quota_bytes: string; active: boolean }, w: WrittenBack | undefined): string[] {
  const quota = Number(row.quota_bytes);
  return [
    `address:    ${row.address}`,
    `active:     ${row.active ? 'yes' : 'no'}`,
    `quota:      ${quota > 0 ? `${quota} bytes` : 'none'}`,
    `last login: ${w?.lastLoginAt ? `${iso(w.lastLoginAt)} via ${w.service}${w.remoteIp ? ` from ${w.remoteIp}` : ''}` : 'none recorded'}`,
    `usage:      ${
      w?.updated
        ? `${w.bytes ?? '?'} bytes, ${w.messages ?? '?'} messages${quota > 0 && w.bytes !== null ? ` (${((Number(w.bytes) / quota) * 100).toFixed(1)}% of the quota)` : ''}, reported ${iso(w.updated)}`
        : 'not reported (Dovecot quota-clone to dict_listen)'
    }`,
  ];
}
