// The userdb fields Dovecot wants for a mailbox: home from the mail_home template, the
// uid/gid the mail store belongs to, and the quota rule from quota_bytes.

import { domainOf, localOf } from './address.js';

export interface UserdbSettings {
  mailHome: string;
  mailUid: number;
  mailGid: number;
}

export interface UserdbFields {
  user: string;
  home: string;
  uid: number;
  gid: number;
  /** `*:bytes=N`, or undefined when the mailbox has no limit. */
  quotaRule: string | undefined;
}

/** Expands `%u` (address), `%n` (local part), `%d` (domain) and `%%`, like Dovecot's variables. */
function expandHome(template: string, address: string): string {
  return template.replace(/%([%und])/g, (_, c: string) => {
    switch (c) {
      case 'u':
        return address;
      case 'n':
        return localOf(address);
      case 'd':
        return domainOf(address);
      default:
        return '%';
    }
  });
}

/**
 * Whether a local part or domain can stand as one directory name in a home path: Dovecot
 * creates the home, so `../x` or `a/b` would put one mailbox's mail inside another's or
 * outside the mail store. A leading dot also rules out `.` and `..`.
 */
export function isSafePathPart(part: string): boolean {
  return part !== '' && !part.startsWith('.') && !part.includes('..') && !part.includes('/') && !part.includes('\0');
}

/** The userdb fields, or undefined when the address cannot give a home inside its domain. */
export function userdbFields(settings: UserdbSettings, address: string, quotaBytes: number): UserdbFields | undefined {
  if (!isSafePathPart(localOf(address)) || !isSafePathPart(domainOf(address))) return undefined;
  return {
    user: address,
    home: expandHome(settings.mailHome, address),
    uid: settings.mailUid,
    gid: settings.mailGid,
    quotaRule: quotaBytes > 0 ? `*:bytes=${quotaBytes}` : undefined,
  };
}
