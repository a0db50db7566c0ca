// The one login decision every door shares (auth-client socket, checkpassword, the Dovecot
// Lua endpoint): limiter → directory → verified-credential cache → hash workers. The
// directory's change events drop cache entries the instant a password, active flag or
// domain changes, so an old password stops working at once.

import { serviceOf } from '../directory/account.js';
import { fold } from '../directory/address.js';
import type { Account, Directory } from '../directory/directory.js';
import { userdbFields, type UserdbFields, type UserdbSettings } from '../directory/userdb.js';
import type { Logger } from '../log.js';
import { limitRepeats } from '../log-limit.js';
import type { Metrics } from '../metrics.js';
import { createCredentialCache, createPasswordTagger } from '../password/cache.js';
import type { HashPool } from '../password/pool.js';
import type { TokenVerifier } from '../oauth2/verify.js';
import { looksLikeJwt } from '../oauth2/verify.js';
import type { Limiter } from '../policy/limiter.js';
import { loginCredentials, masterKey, sameCredentials, type Credential } from './credentials.js';
import type { AuthContext, AuthOutcome, Authenticator, LookupOutcome } from './types.js';

/** Services where a client authenticates with SMTP AUTH: Postfix's smtp, Dovecot's submission. */
const SMTP_AUTH_SERVICES = new Set(['smtp', 'submission']);

/** The part of the policy limiter a login needs: count the attempt before checking, settle after. */
export type LoginLimiter = Pick<Limiter, 'reserve'>;

export interface AuthenticatorDeps {
  directory: Directory;
  pool: HashPool;
  logger: Logger;
  metrics: Metrics;
  userdb: UserdbSettings;
  /** Verified-credential cache entries; 0 disables the cache. */
  cacheSize: number;
  limiter?: LoginLimiter;
  /**
   * auth_max_staleness: logins get a temporary failure once the directory has not been
   * refreshed for longer than this (a password change or deactivation may be missing from
   * it). 0 or absent: decide on whatever copy is held. Userdb lookups are never refused.
   */
  maxStalenessMs?: number;
  /** Date.now() of the last successful refresh from the database. */
  lastRefresh?: () => number;
  /** The clock lastRefresh is compared with (tests inject one); default Date.now. */
  now?: () => number;
  /**
   * OAuth2 bearer tokens (`oauth2_issuer` set): checked where the auth socket's bearer
   * mechanisms send one, and where a Dovecot door's password has the shape of a JWT.
   */
  tokens?: TokenVerifier;
  /**
   * A hash of the configured scheme that no password matches: an unknown login is checked
   * against it, so that it costs what a known one does and its answer's timing does not
   * tell which addresses exist. Absent: unknown logins are answered at once.
   */
  decoy?: string;
  /** Told of every successful login (the last-login write-back); must not block. */
  onLogin?: (address: string, ctx: AuthContext) => void;
}

export interface AuthenticatorHandle extends Authenticator {
  /** Stops listening to the directory (tests, shutdown). */
  close(): void;
  /** Entries in the verified-credential cache. */
  readonly cacheSize: number;
}

// Long because it is one closure over the login path's shared state (the credential cache,
// the hash pool, the directory listener); each step inside is a short function.
export function createAuthenticator(deps: AuthenticatorDeps): AuthenticatorHandle {
  const { directory, pool, logger, metrics, limiter } = deps;
  const cache = createCredentialCache(deps.cacheSize);
  const staleLog = limitRepeats(logger);
  const tagOf = createPasswordTagger();

  const unsubscribe = directory.onChange((kind, key) => {
    if (kind === 'alias') return; // aliases are not logins
    if (key === null)
      cache.clear(); // a full reload: anything may have changed
    else if (kind === 'mailbox') cache.forget(key);
    else if (kind === 'master_user') cache.forget(masterKey(key));
    else if (kind === 'domain') cache.forgetDomain(key);
    // An alias domain change is rare and its old target unknown here: drop everything.
    else cache.clear();
  });

  // An address that cannot give a home inside its domain (written around the schema's
  // checks, or by a panel) is answered TEMP: Dovecot defers rather than bounces, and the
  // log says which mailbox to fix.
  const homeOf = (address: string, quotaBytes: number): { result: 'ok'; fields: UserdbFields } | { result: 'temp'; why: string } => {
    const fields = userdbFields(deps.userdb, address, quotaBytes);
    if (fields !== undefined) return { result: 'ok', fields };
    logger.warn('mailbox address cannot give a home inside its domain; refused', { user: address });
    return { result: 'temp', why: 'mailbox address unsafe as a home path' };
  };

  /** The credentials a login may present, cheap hashes first: see credentials.ts. */
  const credentialsOf = (user: Account, service: string, master: string | undefined): Credential[] | undefined => {
    if (master === undefined) return loginCredentials(user, service);
    // The contract: a master login never over SMTP AUTH, whichever door asks (the Lua
    // endpoint passes the service Dovecot names). Answered like an unknown user.
    if (SMTP_AUTH_SERVICES.has(service)) return undefined;
    const m = directory.masterUser(fold(master));
    if (m === undefined || !m.active || m.password === null) return undefined;
    return [{ stored: m.password, name: `master ${fold(master)}` }];
  };

  /** Milliseconds the directory is past auth_max_staleness, or undefined when fresh enough. */
  const staleFor = (): number | undefined => {
    const max = deps.maxStalenessMs ?? 0;
    if (max <= 0 || deps.lastRefresh === undefined) return undefined;
    const age = (deps.now ?? Date.now)() - deps.lastRefresh();
    return age > max ? age : undefined;
  };

  const check = async (login: string, password: string, service: string, master: string | undefined, attempt: number): Promise<AuthOutcome> => {
    const user = directory.user(login);
    const creds = user.status === 'unknown' ? undefined : credentialsOf(user, service, master);
    if (user.status === 'unknown' || creds === undefined) {
      if (deps.decoy !== undefined) await pool.checkAny(password, [deps.decoy]);
      return { result: 'fail', why: 'unknown' };
    }
    if (creds.length === 0) return { result: 'fail', why: 'no_password' };
    const stored = creds.map((c) => c.stored);
    const key = master === undefined ? user.address : masterKey(fold(master));

    let matched = cache.matchesAny(key, stored, password);
    if (matched >= 0) metrics.cacheHits.inc();
    else {
      metrics.cacheMisses.inc();
      const out = await pool.checkAny(password, stored);
      if (out.result === 'busy') return { result: 'temp', why: 'password hashing overloaded' };
      for (const bad of out.bad)
        logger.warn('stored password cannot be checked', { user: user.address, credential: creds[bad.index]!.name, scheme: bad.scheme, reason: bad.reason });
      // The directory may have changed while the worker hashed: answer for what is true now.
      const now = directory.user(login);
      const nowCreds = now.status === 'unknown' ? undefined : credentialsOf(now, service, master);
      if (now.status === 'unknown' || now.address !== user.address || nowCreds === undefined || !sameCredentials(nowCreds, creds)) {
        return attempt < 1 ? check(login, password, service, master, attempt + 1) : { result: 'temp', why: 'mailbox changed during login' };
      }
      matched = out.index;
      if (matched >= 0) cache.remember(key, stored[matched]!, password);
      else if (out.bad.length === stored.length) return { result: 'fail', why: 'bad_hash' };
    }
    if (matched < 0) return { result: 'fail', why: 'mismatch' };
    const refused = admit(user, service);
    if (refused !== undefined) return refused;
    if (master !== undefined) logger.info('master login', { user: user.address, master: fold(master), service });
    else if (creds[matched]!.name !== undefined) logger.debug('app password login', { user: user.address, app_password: creds[matched]!.name, service });
    return homeOf(user.address, user.quotaBytes);
  };

  /**
   * The account's state, told only once the credential is proven: a wrong password always
   * gets the same plain failure, whatever the mailbox's state.
   */
  const admit = (user: Exclude<ReturnType<Directory['user']>, { status: 'unknown' }>, service: string): AuthOutcome | undefined => {
    if (user.status === 'disabled') return { result: 'disabled', address: user.address };
    if (user.maintenance) return { result: 'temp', why: 'mailbox in maintenance' };
    if (user.disabledServices.includes(service)) return { result: 'fail', why: 'service_disabled' };
    return undefined;
  };

  /**
   * A bearer token: valid (verify.ts), naming a mailbox — the one the client logged in as,
   * when it named one — that may use the service. Resolved on every login, so a mailbox
   * removed or disabled after the token was issued is refused at once.
   */
  const checkToken = async (login: string, token: string, service: string): Promise<AuthOutcome> => {
    const verified = await deps.tokens!.verify(token);
    if (!verified.ok) return { result: 'fail', why: 'bad_token' };
    const user = directory.user(verified.name);
    if (user.status === 'unknown') return { result: 'fail', why: 'unknown' };
    if (login !== '') {
      const named = directory.user(login);
      if (named.status === 'unknown' || named.address !== user.address) return { result: 'fail', why: 'bad_token' };
    }
    const refused = admit(user, service);
    if (refused !== undefined) return refused;
    return homeOf(user.address, user.quotaBytes);
  };

  /** The limiter's key for a token login: the login given, else the name the token claims (unverified: it only picks the count). */
  const tokenLimitKey = (login: string, token: string): string => {
    if (login !== '') return login;
    try {
      const claims = JSON.parse(Buffer.from(token.split('.')[1] ?? '', 'base64url').toString('utf8')) as Record<string, unknown>;
      const name = Object.values(claims).find((v) => typeof v === 'string' && v.includes('@'));
      return typeof name === 'string' ? name.slice(0, 320) : '';
    } catch {
      return '';
    }
  };

  const decide = async (login: string, password: string, ctx: AuthContext): Promise<AuthOutcome> => {
    if (!directory.loaded) return { result: 'temp', why: 'directory not loaded yet' };
    const stale = staleFor();
    if (stale !== undefined) {
      metrics.authStale.inc();
      staleLog.warn('login refused with a temporary failure: the directory is older than auth_max_staleness', {
        age_seconds: Math.round(stale / 1000),
        limit_seconds: Math.round((deps.maxStalenessMs ?? 0) / 1000),
      });
      return { result: 'temp', why: `directory not refreshed from the database for ${Math.round(stale / 1000)} s (auth_max_staleness)` };
    }
    const bearer = deps.tokens !== undefined && ctx.master === undefined && (ctx.bearer === true || looksLikeJwt(password));
    if (ctx.bearer === true && !bearer) return { result: 'fail', why: 'bad_token' };
    // Counted before the password is checked, so that guesses in flight cannot all pass
    // the bound; a master login's guesses are counted against the master user (the limiter
    // keys it apart from a plain login of the same name), a plain one against the mailbox
    // it resolves to.
    const limitKey = bearer ? tokenLimitKey(login, password) : login;
    const master = !bearer && ctx.master !== undefined ? fold(ctx.master) : undefined;
    const reserved = limiter?.reserve(limitKey, { remoteIp: ctx.remoteIp, master }, tagOf(password));
    if (reserved !== undefined && 'refused' in reserved) return { result: 'refused', retryAfterSeconds: reserved.refused.retryAfterSeconds };
    let outcome: AuthOutcome | undefined;
    try {
      outcome = bearer ? await checkToken(login, password, ctx.service) : await check(login, password, ctx.service, ctx.master, 0);
      return outcome;
    } finally {
      // The right password for a service the mailbox may not use is no guess: not counted.
      const counted = outcome !== undefined && outcome.result !== 'temp' && !(outcome.result === 'fail' && outcome.why === 'service_disabled');
      reserved?.attempt.settle(!counted ? 'uncounted' : outcome?.result === 'ok' ? 'success' : 'failure');
    }
  };

  return {
    async authenticate(login, password, given) {
      const service = serviceOf(given.service);
      const ctx: AuthContext = { ...given, service };
      const outcome = await decide(login, password, ctx);
      metrics.logins.inc({ service, result: outcome.result });
      if (outcome.result === 'ok') deps.onLogin?.(outcome.fields.user, ctx);
      return outcome;
    },
    lookup(login, service): LookupOutcome {
      if (!directory.loaded) return { result: 'temp', why: 'directory not loaded yet' };
      const user = directory.user(login);
      if (user.status === 'unknown') return { result: 'unknown' };
      if (user.status === 'disabled') return { result: 'disabled', address: user.address };
      if (service !== undefined && user.disabledServices.includes(serviceOf(service))) return { result: 'disabled', address: user.address };
      // A mailbox being moved: nothing may open it (LMTP, doveadm) until it is back.
      if (user.maintenance) return { result: 'temp', why: 'mailbox in maintenance' };
      return homeOf(user.address, user.quotaBytes);
    },
    close: unsubscribe,
    get cacheSize() {
      return cache.size;
    },
  };
}
