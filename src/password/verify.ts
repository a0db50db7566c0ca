// Checks one plaintext password against one stored hash. Runs inside the hash workers
// (worker.ts); never throws: a hash that cannot be checked is `bad_hash` with a reason
// that is safe to log (it names the scheme and the problem, never the hash).

import { findScheme } from './schemes.js';
import { BadHashError, parseStored } from './scheme.js';

/** Longer passwords are refused without hashing: no real password is this long, attacks are. */
export const MAX_PASSWORD_BYTES = 1024;

export interface VerifyOutcome {
  result: 'ok' | 'mismatch' | 'bad_hash';
  /** Canonical scheme name, or `unknown`: a bounded set, fit for a metrics label. */
  scheme: string;
  reason?: string;
}

export async function verifyPassword(password: string, stored: string, defaultScheme: string): Promise<VerifyOutcome> {
  let scheme = 'unknown';
  try {
    const parsed = parseStored(stored, defaultScheme);
    const impl = findScheme(parsed.scheme);
    if (impl === undefined) return { result: 'bad_hash', scheme, reason: `unknown scheme ${JSON.stringify(parsed.scheme.slice(0, 32))}` };
    scheme = impl.name;
    const pw = Buffer.from(password, 'utf8');
    if (pw.length > MAX_PASSWORD_BYTES) return { result: 'mismatch', scheme };
    return { result: (await impl.verify(pw, parsed)) ? 'ok' : 'mismatch', scheme };
  } catch (err) {
    const reason = err instanceof BadHashError ? err.message : `internal error in ${scheme} verification`;
    return { result: 'bad_hash', scheme, reason };
  }
}
