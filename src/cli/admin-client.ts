// How the admin verbs reach the database: one connection per step, and the database's
// errors translated into one plain line for the person at the keyboard (errors.ts codes).

import type pg from 'pg';
import { NotFoundError, TempError, UsageError } from '../errors.js';
import { withClient } from '../db/client.js';
import { sqlstate } from '../db/sqlstate.js';

/** What an admin verb needs: the database, a hasher for new passwords, and its output. */
export interface AdminDeps {
  url: string;
  hash(password: string): Promise<string>;
  out(line: string): void;
}

/** One connection per step, with database errors translated for a person. */
export function withAdminClient<T>(url: string, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  return withClient(url, 'mailmapd-cli', async (c) => {
    try {
      return await fn(c);
    } catch (err) {
      throw translate(err);
    }
  });
}

/** Database errors a person caused become usage errors with a plain sentence. */
function translate(err: unknown): Error {
  if (err instanceof UsageError || err instanceof TempError || err instanceof NotFoundError) return err;
  const e = err as { code?: string; message?: string; constraint?: string; detail?: string };
  switch (e.code) {
    case sqlstate.uniqueViolation: {
      // detail: Key (name)=(example.org) already exists.
      const m = /\)=\((.*)\) already exists/.exec(e.detail ?? '');
      return new UsageError(m ? `${m[1]} already exists` : 'already exists');
    }
    case sqlstate.foreignKeyViolation:
      return new UsageError(e.constraint?.includes('domain') ? 'the domain does not exist, or still has mailboxes' : 'a referenced entry does not exist');
    case sqlstate.checkViolation:
      // A domain limit's message names the domain and the limit (migration 6).
      if (e.constraint === 'mailmapd_domain_limit') return new UsageError(e.message ?? 'over a domain limit');
      return new UsageError(`rejected by the schema's checks (${e.constraint ?? 'check'})`);
    case sqlstate.undefinedTable:
      return new UsageError('the mailmapd schema is missing: run `mailmapd migrate` first');
    case sqlstate.adminShutdown:
    case sqlstate.cannotConnectNow:
    case sqlstate.connectionFailure:
    case sqlstate.unableToConnect:
      return new TempError(`database unavailable: ${e.message}`);
    default:
      return new Error(e.message ?? String(err));
  }
}
