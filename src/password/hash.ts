// New password hashes, `{SCHEME}data` as `doveadm pw -s SCHEME` prints them. Used by the
// admin CLI directly and by the hash workers for the daemon.

import { findScheme } from './schemes.js';
import { BadHashError, splitSchemeName, type Encoding } from './scheme.js';
import type { Scheme } from './types.js';

export class UnknownSchemeError extends Error {}

/** The scheme implementation and encoding for a name like `SHA512.HEX`; throws UnknownSchemeError. */
export function resolveHashScheme(scheme: string): { impl: Scheme; encoding: Encoding | undefined } {
  let split: ReturnType<typeof splitSchemeName>;
  try {
    split = splitSchemeName(scheme);
  } catch (err) {
    throw new UnknownSchemeError(err instanceof BadHashError ? err.message : `unknown password scheme ${scheme}`);
  }
  const impl = findScheme(split.scheme);
  if (impl === undefined) throw new UnknownSchemeError(`unknown password scheme ${JSON.stringify(scheme.slice(0, 32))}`);
  if (split.encoding !== undefined && impl.binary !== true) throw new UnknownSchemeError(`${impl.name} has no .HEX/.B64 form`);
  return { impl, encoding: split.encoding };
}

export async function hashPassword(password: string, scheme: string): Promise<string> {
  const { impl, encoding } = resolveHashScheme(scheme);
  if (password.includes('\0')) throw new Error('a password cannot contain NUL bytes');
  const data = await impl.hash(Buffer.from(password, 'utf8'), encoding);
  const suffix = encoding === 'hex' ? '.HEX' : encoding === 'b64' ? '.B64' : '';
  return `{${impl.name}${suffix}}${data}`;
}
