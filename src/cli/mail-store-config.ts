// The mail store that Dovecot's LMTP writes to: a user with mail_uid/mail_gid and the
// directory above mail_home, owned by it. Without them every delivery is deferred with
// "451 4.2.0 Internal error occurred" and only Dovecot's log says why, so `mailmapd
// dovecot-config` prints the commands that make them, for the configured values.

import type { Config } from '../config.js';

/** The fixed directory mail_home starts with: /var/vmail for /var/vmail/%d/%n. */
export function mailStoreRoot(mailHome: string): string {
  const fixed = mailHome.split(/[%~]/)[0]!;
  const dir = fixed.endsWith('/') ? fixed.slice(0, -1) : fixed.slice(0, Math.max(fixed.lastIndexOf('/'), 0));
  return dir === '' ? '/' : dir;
}

/** Shell commands (as root) that create the mail user, its group and the store. */
function mailStoreCommands(config: Config): string[] {
  const root = mailStoreRoot(config.mail_home);
  return [
    `getent group ${config.mail_gid} >/dev/null || groupadd --system --gid ${config.mail_gid} vmail`,
    `getent passwd ${config.mail_uid} >/dev/null || useradd --system --uid ${config.mail_uid} --gid ${config.mail_gid} --no-create-home --home-dir ${root} --shell /usr/sbin/nologin vmail`,
    `install -d -o ${config.mail_uid} -g ${config.mail_gid} -m 0750 ${root}`,
  ];
}

export function mailStoreSection(config: Config): string[] {
  return [
    '# ---- The mail store: make it before the first delivery (as root) ----',
    `# Dovecot's LMTP creates each mailbox under mail_home = ${config.mail_home} as uid ${config.mail_uid},`,
    `# gid ${config.mail_gid} (mail_home, mail_uid, mail_gid in mailmapd.conf, answered by its userdb).`,
    '# Without a user with those ids and a directory it owns, every delivery is deferred with',
    '# "451 4.2.0 Internal error occurred"; Dovecot\'s log (journalctl -u dovecot) then says',
    '# "mkdir(...) failed: Permission denied (euid=...)".',
    ...mailStoreCommands(config).map((c) => `#   ${c}`),
    "# Where mail goes inside each home: Debian's /etc/dovecot/conf.d/10-mail.conf sets",
    '# mail_location = mbox:~/mail:INBOX=/var/mail/%u; for these users set it there (2.3) to',
    '#   mail_location = maildir:~/Maildir',
    '# and on 2.4 (same file): mail_driver = maildir and mail_path = ~/Maildir.',
    '',
  ];
}
