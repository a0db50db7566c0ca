// The hash the admin CLI stores for a new password: `password_scheme` from the config,
// hashed before the password leaves this process.

import type { Config } from '../config.js';
import { hashPassword as hashWithScheme } from '../password/hash.js';

export function hashNewPassword(password: string, config: Config): Promise<string> {
  return hashWithScheme(password, config.password_scheme);
}
