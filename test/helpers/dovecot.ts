// Where the interop tests find their Dovecots: the host's 2.3, and 2.4 in the Debian 13 root
// scripts/dovecot24-root.sh makes (`.ci/run` makes it).

import { existsSync } from 'node:fs';

export const dovecot24Root = process.env.MAILMAPD_DOVECOT24_ROOT ?? '/var/cache/mailmapd/dovecot24';

/** Whether dovecot-auth-lua is installed under `root` ('' for the host). */
export function hasLuaModule(root: string): boolean {
  return [`${root}/usr/lib/dovecot/modules/auth/libauthdb_lua.so`, `${root}/usr/lib/x86_64-linux-gnu/dovecot/libauthdb_lua.so`].some((f) => existsSync(f));
}
