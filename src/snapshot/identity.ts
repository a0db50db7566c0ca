// Which database a directory came from, as PostgreSQL says: the cluster's system
// identifier and the database's name and oid. A database dropped and restored under the
// same name gets a new oid; another cluster, another system identifier.

import { connectClient } from '../db/client.js';
import type { DatabaseIdentity } from './format.js';

export async function queryIdentity(url: string, timeoutMs = 5000): Promise<DatabaseIdentity> {
  const c = await connectClient(url, 'mailmapd', timeoutMs, timeoutMs);
  try {
    const r = await c.query<{ sysid: string; db: string; oid: string }>(
      `SELECT (SELECT system_identifier::text FROM pg_control_system()) AS sysid, current_database() AS db,
              (SELECT oid::text FROM pg_database WHERE datname = current_database()) AS oid`,
    );
    const row = r.rows[0]!;
    return { systemIdentifier: row.sysid, database: row.db, databaseOid: row.oid };
  } finally {
    await c.end().catch(() => {});
  }
}

export function sameIdentity(a: DatabaseIdentity | null | undefined, b: DatabaseIdentity): boolean {
  return !!a && a.systemIdentifier === b.systemIdentifier && a.database === b.database && a.databaseOid === b.databaseOid;
}
