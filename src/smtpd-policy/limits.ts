// Whose sending is limited, and by what: the login Postfix authenticated (`sasl_username`)
// resolved as a login is (case, alias domains) to its mailbox, and that mailbox's limits —
// its own, else its domain's defaults, else the config's. 0 anywhere means "no limit".

import type { Directory } from '../directory/directory.js';

/** The config's defaults (send_limit_hour, send_limit_day, send_max_recipients). */
export interface LimitDefaults {
  hour: number;
  day: number;
  maxRecipients: number;
}

export interface Sender {
  /** The mailbox's canonical address: the key its counts are kept under. */
  mailbox: string;
  /** Its domain's total's key: `@domain`. */
  domainKey: string;
  /** Recipients per hour and per day for the mailbox; 0: none. */
  hour: number;
  day: number;
  /** The domain's total per day; 0: none. */
  domainDay: number;
  maxRecipients: number;
}

/** The sender a login sends as, or undefined when it is no mailbox here (nothing to limit). */
export function senderOf(directory: Directory, defaults: LimitDefaults, login: string): Sender | undefined {
  const u = directory.user(login);
  if (u.status === 'unknown') return undefined;
  const domain = u.address.slice(u.address.lastIndexOf('@') + 1);
  const d = directory.domainSendLimits(domain);
  return {
    mailbox: u.address,
    domainKey: `@${domain}`,
    hour: u.sendLimits.hour ?? d.mailboxHour ?? defaults.hour,
    day: u.sendLimits.day ?? d.mailboxDay ?? defaults.day,
    domainDay: d.totalDay ?? 0,
    maxRecipients: defaults.maxRecipients,
  };
}
