// What a mailbox carries beyond its password and quota: the services it may not use,
// maintenance, its active app passwords and its own sending limits — and how that is packed into the mailbox
// table's one value string without costing the mailboxes that use none of it anything.

export interface AppPassword {
  /** For logs and `app-password list`; never a secret. */
  name: string;
  /** `{SCHEME}hash` */
  password: string;
  /** Services it may be used for; empty: every service the mailbox may use. */
  services: readonly string[];
}

/** A mailbox's own sending limits (recipients per hour, per day); null: its domain's. */
export interface SendLimits {
  hour: number | null;
  day: number | null;
}

export interface AccountExtras {
  disabledServices: readonly string[];
  appPasswords: readonly AppPassword[];
  /** Absent: none of its own. */
  sendLimits?: SendLimits;
}

// PostgreSQL text never holds NUL, so no stored password hash starts with one: a value
// starting with NUL is the packed form, anything else is the plain password.
const PACKED = '\u0000';

/** The table value for a password and extras: the plain password when there are none. */
export function packValue(password: string | null, extras: AccountExtras): string | null {
  const limits = extras.sendLimits;
  if (extras.disabledServices.length === 0 && extras.appPasswords.length === 0 && limits === undefined) return password;
  const packed: unknown[] = [password, extras.disabledServices, extras.appPasswords.map((a) => [a.name, a.password, a.services])];
  // A fourth element only when there are limits: values packed before them read back the same.
  if (limits !== undefined) packed.push([limits.hour, limits.day]);
  return PACKED + JSON.stringify(packed);
}

export function unpackValue(value: string | null): { password: string | null } & AccountExtras {
  if (value === null || !value.startsWith(PACKED)) return { password: value, disabledServices: [], appPasswords: [] };
  const [password, disabled, apps, limits] = JSON.parse(value.slice(1)) as [
    string | null,
    string[],
    Array<[string, string, string[]]>,
    [number | null, number | null] | undefined,
  ];
  const out: { password: string | null } & AccountExtras = {
    password,
    disabledServices: disabled,
    appPasswords: apps.map(([name, pw, services]) => ({ name, password: pw, services })),
  };
  if (limits !== undefined) out.sendLimits = { hour: limits[0], day: limits[1] };
  return out;
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
