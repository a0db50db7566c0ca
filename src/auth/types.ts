// The one question every login door asks (auth-client socket, checkpassword, the Dovecot
// Lua endpoint) and the answers they map to their own wire. Implemented by
// auth/authenticator.ts on top of the directory, the password service and the limiter.

import type { UserdbFields } from '../directory/userdb.js';

export interface AuthContext {
  /** Dovecot's / Postfix's service name: smtp, imap, pop3, lmtp, doveadm… */
  service: string;
  remoteIp?: string;
  localIp?: string;
  secured?: boolean;
  /** Dovecot's `no-penalty`: do not delay the answer. */
  noPenalty?: boolean;
  /**
   * A Dovecot master login: the password is this master user's, the login the mailbox to
   * log in as. Only the Dovecot doors set it, never the auth socket (SMTP AUTH).
   */
  master?: string;
  /** The password is an OAuth2 bearer token (the auth socket's OAUTHBEARER and XOAUTH2). */
  bearer?: boolean;
}

export type AuthOutcome =
  | { result: 'ok'; fields: UserdbFields }
  /** Wrong password, unknown user, or a stored hash that cannot be checked: all look alike outside. */
  | { result: 'fail'; why: 'mismatch' | 'unknown' | 'no_password' | 'bad_hash' | 'service_disabled' | 'bad_token' }
  | { result: 'disabled'; address: string }
  /** The brute-force limiter refused before any password was checked. */
  | { result: 'refused'; retryAfterSeconds: number }
  /** The answer is unknown (directory never loaded, hash workers overloaded). */
  | { result: 'temp'; why: string };

export type LookupOutcome =
  | { result: 'ok'; fields: UserdbFields }
  | { result: 'unknown' }
  | { result: 'disabled'; address: string }
  | { result: 'temp'; why: string };

export interface Authenticator {
  authenticate(login: string, password: string, ctx: AuthContext): Promise<AuthOutcome>;
  /**
   * The userdb side: no password, no hashing, answered synchronously from memory. With a
   * service (a passdb lookup after Dovecot 2.4 checked a bearer token itself), a mailbox that
   * may not use it is answered as disabled.
   */
  lookup(login: string, service?: string): LookupOutcome;
}
