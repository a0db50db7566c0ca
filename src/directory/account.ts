// What a mailbox carries beyond its password and quota: the services it may not use,
// maintenance, and its active app passwords — and how that is packed into the mailbox
// table's one value string without costing the mailboxes that use none of it anything.

export interface AppPassword {
  /** For logs and `app-password list`; never a secret. */
  name: string;
  /** `{SCHEME}hash` */
  password: string;
  /** Services it may be used for; empty: every service the mailbox may use. */
  services: readonly string[];
}

export interface AccountExtras {
  disabledServices: readonly string[];
  appPasswords: readonly AppPassword[];
}

// PostgreSQL text never holds NUL, so no stored password hash starts with one: a value
// starting with NUL is the packed form, anything else is the plain password.
const PACKED = '\u0000';

/** The table value for a password and extras: the plain password when there are none. */
export function packValue(password: string | null, extras: AccountExtras): string | null {
  if (extras.disabledServices.length === 0 && extras.appPasswords.length === 0) return password;
  return PACKED + JSON.stringify([password, extras.disabledServices, extras.appPasswords.map((a) => [a.name, a.password, a.services])]);
}

export function unpackValue(value: string | null): { password: string | null } & AccountExtras {
  if (value === null || !value.startsWith(PACKED)) return { password: value, disabledServices: [], appPasswords: [] };
  const [password, disabled, apps] = JSON.parse(value.slice(1)) as [string | null, string[], Array<[string, string, string[]]>];
  return {
    password,
    disabledServices: disabled,
    appPasswords: apps.map(([name, pw, services]) => ({ name, password: pw, services })),
  };
}

/**
 * The bounded service name of a login, for the disabled-service decision, the limiter and
 * metrics labels: what Dovecot calls its protocols and Postfix sends (`smtp`), else `other`.
 */
export function serviceOf(raw: string | undefined): string {
  switch ((raw ?? '').toLowerCase()) {
    case 'imap':
      return 'imap';
    case 'pop3':
      return 'pop3';
    case 'smtp':
      return 'smtp';
    case 'submission':
      return 'submission';
    case 'sieve':
    case 'managesieve':
      return 'sieve';
    case 'lmtp':
      return 'lmtp';
    case 'doveadm':
      return 'doveadm';
    default:
      return 'other';
  }
}

/** Whether an app password with these services may be used for a login to `service`. */
export function appPasswordAllows(services: readonly string[], service: string): boolean {
  return services.length === 0 || services.includes(service);
}
