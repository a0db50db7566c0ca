// The two statements the write-back runs, each writing many rows at once from arrays (one
// round trip per batch, whatever its size). A profile whose panel keeps its own table for
// one of them (PostfixAdmin's quota2, Modoboa's admin_quota) declares its own statement
// with the same parameters; the others write the native tables of migration 5.
//
//   lastLogins: $1 text[] address, $2 timestamptz[] at, $3 text[] service, $4 text[] remote ip (NULL: none)
//   quotaUsage: $1 text[] address, $2 bigint[] bytes, $3 bigint[] messages (NULL: not reported), $4 timestamptz[] updated
//
// Several daemons may write the same mailbox: an older value never replaces a newer one.

import type { Profile } from '../sync/profile.js';

export interface WriteStatements {
  lastLogins: string;
  quotaUsage: string;
}

export const nativeStatements: WriteStatements = {
  lastLogins: `INSERT INTO mailmapd.last_logins AS t (address, at, service, remote_ip)
    SELECT a, at, s, ip::inet FROM unnest($1::text[], $2::timestamptz[], $3::text[], $4::text[]) AS u(a, at, s, ip)
    ON CONFLICT (address) DO UPDATE SET at = excluded.at, service = excluded.service, remote_ip = excluded.remote_ip
    WHERE t.at <= excluded.at`,
  quotaUsage: `INSERT INTO mailmapd.quota_usage AS t (address, bytes, messages, updated)
    SELECT a, b, m, at FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::timestamptz[]) AS u(a, b, m, at)
    ON CONFLICT (address) DO UPDATE SET bytes = coalesce(excluded.bytes, t.bytes), messages = coalesce(excluded.messages, t.messages),
      updated = excluded.updated
    WHERE t.updated <= excluded.updated`,
};

/** The profile's own statements where it has them, the native ones otherwise. */
export function statementsFor(profile: Profile): WriteStatements {
  return { ...nativeStatements, ...(profile.writes ?? {}) };
}
