// `mailmapd hash [--scheme S]`: like `doveadm pw -s S`, prints `{SCHEME}hash` for a
// password read from stdin or a prompt (never argv). Default scheme: password_scheme.

import type { Config } from '../config.js';
import { hashPassword, resolveHashScheme, UnknownSchemeError } from '../password/hash.js';
import { schemeNames } from '../password/schemes.js';
import { UsageError } from '../errors.js';
import { readNewPassword } from './password-input.js';

const usage = 'usage: mailmapd hash [--scheme SCHEME]   (password on stdin or at the prompt)';

function parseArgs(args: string[]): { scheme?: string } {
  let scheme: string | undefined;
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === '-s' || a === '--scheme') {
      scheme = args[++i];
      if (scheme === undefined || scheme === '') throw new UsageError(`${a} needs a scheme name\n${usage}`);
    } else if (a.startsWith('--scheme=')) scheme = a.slice(9);
    else throw new UsageError(`unexpected argument "${a}"\n${usage}`);
  }
  return scheme === undefined ? {} : { scheme };
}

export async function hashCommand(args: string[], config: Config, out: (s: string) => void): Promise<number> {
  let scheme: string;
  try {
    scheme = parseArgs(args).scheme ?? config.password_scheme;
  } catch (err) {
    process.stderr.write(`mailmapd hash: ${(err as Error).message}\n`);
    return 2;
  }
  // Refuse an unknown scheme before asking for a password.
  try {
    resolveHashScheme(scheme);
  } catch (err) {
    if (err instanceof UnknownSchemeError) {
      process.stderr.write(`mailmapd hash: ${err.message}; known: ${schemeNames.join(' ')}\n`);
      return 2;
    }
    throw err;
  }
  const password = await readNewPassword();
  out(await hashPassword(password, scheme));
  return 0;
}
