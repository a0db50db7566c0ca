// The query for a kind a schema does not have (DinoMail has no alias domains, the Django
// app no aliases): no rows, but the right columns and types, so the sync and
// `mailmapd check` treat it like any other query.

import type { ChangeKind } from '../../directory/directory.js';

const columns: Record<ChangeKind, string> = {
  domain: 'NULL::text AS name, NULL::boolean AS active',
  alias_domain: 'NULL::text AS name, NULL::text AS target, NULL::boolean AS active',
  mailbox: 'NULL::text AS address, NULL::text AS password, NULL::bigint AS quota_bytes, NULL::boolean AS active',
  alias: 'NULL::text AS address, NULL::text AS destination, NULL::boolean AS active',
  route: 'NULL::text AS key, NULL::text AS value',
};

export function emptyQuery(kind: ChangeKind): string {
  return `SELECT ${columns[kind]} WHERE false`;
}
