// The Dovecot LMTP listener that Postfix delivers to, printed by both `mailmapd
// dovecot-config` modes (the syntax is the same in 2.3 and 2.4). It belongs with the
// `virtual_transport` line of `mailmapd postfix-config`: Postfix's own virtual(8) agent
// refuses socketmap tables, so with mailmapd every mailbox is delivered through LMTP.

import type { Config } from '../config.js';
import { mailStoreSection } from './mail-store-config.js';

/** Debian's Postfix queue directory: the root its chrooted smtpd and lmtp client see. */
export const postfixQueueDirectory = '/var/spool/postfix/';

/** The LMTP socket, relative to the queue directory. */
const lmtpSocket = 'private/dovecot-lmtp';

/** Postfix's side of the socket, as its chrooted lmtp client names it. */
export const postfixLmtpTransport = `lmtp:unix:${lmtpSocket}`;

/** The same socket as Dovecot names it. */
export const dovecotLmtpSocket = `${postfixQueueDirectory}${lmtpSocket}`;

export function dovecotLmtpSection(config: Config): string[] {
  const delimiter = config.recipient_delimiter;
  return [
    '# ---- Dovecot 2.3 and 2.4: deliveries from Postfix, conf.d/20-lmtp.conf (needs dovecot-lmtpd) ----',
    `# Postfix hands every message to Dovecot's LMTP (virtual_transport = ${postfixLmtpTransport},`,
    '# printed by `mailmapd postfix-config`); Dovecot finds the mailbox through the userdb above.',
    "# The socket is in Postfix's queue directory, where its chrooted lmtp client can reach it.",
    'service lmtp {',
    `  unix_listener ${dovecotLmtpSocket} {`,
    '    mode = 0600',
    '    user = postfix',
    '    group = postfix',
    '  }',
    '}',
    delimiter === ''
      ? '# mailmapd has no recipient_delimiter: Dovecot needs none either.'
      : `# user${delimiter[0]}tag@example.org is delivered to user@example.org, as mailmapd and Postfix resolve it.`,
    `recipient_delimiter = ${delimiter}`,
    '',
    ...mailStoreSection(config),
  ];
}
