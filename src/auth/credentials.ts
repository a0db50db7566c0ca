// The credentials a login may present for a mailbox: its password and its active app
// passwords that allow the login's service, in the order they are checked.
//
// Cheap salted digests first: app passwords made by `app-password add` are 128-bit random
// strings stored as {SSHA256}, which a fast hash protects as well as a slow one protects a
// human password (nobody can search 2^128), and checking thirty of them costs microseconds.
// Then the mailbox password, then app passwords a panel wrote with a slow scheme, each
// costing one slow hash on a wrong password — bounded by the limiter's count of failures
// per login and the hash queue, and skipped for a known device by the credential cache.

import { appPasswordAllows } from '../directory/account.js';
import type { Account } from '../directory/directory.js';
import { findScheme } from '../password/schemes.js';

export interface Credential {
  stored: string;
  /** The app password's or master user's name; undefined for the mailbox password. */
  name?: string;
}

/** Whether a stored `{SCHEME}…` names a cheap scheme (Scheme.cheap), by any of its names. */
function isCheap(stored: string): boolean {
  const m = /^\{([A-Za-z0-9-]+?)(?:\.(?:B64|BASE64|HEX))?\}/i.exec(stored);
  return m !== null && findScheme(m[1]!)?.cheap === true;
}

export function loginCredentials(user: Account, service: string): Credential[] {
  const cheap: Credential[] = [];
  const slow: Credential[] = [];
  for (const app of user.appPasswords) {
    if (!appPasswordAllows(app.services, service)) continue;
    (isCheap(app.password) ? cheap : slow).push({ stored: app.password, name: app.name });
  }
  // `password` denied: the organisation requires tokens (or app passwords) for this mailbox.
  if (user.password !== null && user.password !== '' && !user.disabledServices.includes('password')) cheap.push({ stored: user.password });
  return [...cheap, ...slow];
}

export function sameCredentials(a: readonly Credential[], b: readonly Credential[]): boolean {
  return a.length === b.length && a.every((c, i) => c.stored === b[i]!.stored);
}

/** The credential cache's key for a master user: no address holds a NUL. */
export const masterKey = (name: string): string => `\u0000master:${name}`;
