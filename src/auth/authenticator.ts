// The one login decision every door shares (auth-client socket, checkpassword, the Dovecot
// Lua endpoint): limiter → directory → verified-credential cache → hash workers. The
// directory's change events drop cache entries the instant a password, active flag or
// domain changes, so an old password stops working at once.

import type { Directory } from '../directory/directory.js';
import { userdbFields, type UserdbSettings } from '../directory/userdb.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics.js';
import { createCredentialCache, createPasswordTagger } from '../password/cache.js';
import type { HashPool } from '../password/pool.js';
import type { Limiter } from '../policy/limiter.js';
import type { AuthOutcome, Authenticator, LookupOutcome } from './types.js';


/** The part of the policy limiter a login needs: refuse before checking, report after. */
export type LoginLimiter = Pick<Limiter, 'check' | 'report'>;

export interface AuthenticatorDeps {
  directory: Directory;
  pool: HashPool;
  logger: Logger;
  metrics: Metrics;
  userdb: UserdbSettings;
  /** Verified-credential cache entries; 0 disables the cache. */
  cacheSize: number;
  limiter?: LoginLimiter;
}

export interface AuthenticatorHandle extends Authenticator {
  /** Stops listening to the directory (tests, shutdown). */
  close(): void;
  /** Entries in the verified-credential cache. */
  readonly cacheSize: number;
}

export function createAuthenticator(deps: AuthenticatorDeps): AuthenticatorHandle {
  const { directory, pool, logger, metrics, limiter } = deps;
  const cache = createCredentialCache(deps.cacheSize);
  const tagOf = createPasswordTagger();

  const unsubscribe = directory.onChange((kind, key) => {
    if (kind === 'alias') return; // aliases are not logins
    if (key === null) cache.clear(); // a full reload: anything may have changed
    else if (kind === 'mailbox') cache.forget(key);
    else if (kind === 'domain') cache.forgetDomain(key);
    // An alias domain change is rare and its old target unknown here: drop everything.
    else cache.clear();
  });

  const check = async (login: string, password: string, attempt: number): Promise<AuthOutcome> => {
    const user = directory.user(login);
    if (user.status === 'unknown') return { result: 'fail', why: 'unknown' };
    if (user.status === 'disabled') return { result: 'disabled', address: user.address };
    const { address, password: stored, quotaBytes } = user;
    if (stored === null || stored === '') return { result: 'fail', why: 'no_password' };
    const ok = (): AuthOutcome => ({ result: 'ok', fields: userdbFields(deps.userdb, address, quotaBytes) });

    if (cache.matches(address, stored, password)) {
      metrics.cacheHits.inc();
      return ok();
    }
    metrics.cacheMisses.inc();

    const out = await pool.check(password, stored);
    // The directory may have changed while the worker hashed: answer for what is true now.
    const now = directory.user(login);
    if (now.status !== 'ok' || now.address !== address || now.password !== stored) {
      return attempt < 1 ? check(login, password, attempt + 1) : { result: 'temp', why: 'mailbox changed during login' };
    }
    switch (out.result) {
      case 'ok':
        cache.remember(address, stored, password);
        return ok();
      case 'mismatch':
        return { result: 'fail', why: 'mismatch' };
      case 'bad_hash':
        logger.warn('stored password cannot be checked', { user: address, scheme: out.scheme, reason: out.reason });
        return { result: 'fail', why: 'bad_hash' };
      case 'busy':
        return { result: 'temp', why: 'password hashing overloaded' };
    }
  };

  return {
    async authenticate(login, password, ctx) {
      if (!directory.loaded) return { result: 'temp', why: 'directory not loaded yet' };
      const refused = limiter?.check(login, ctx);
      if (refused !== undefined) return { result: 'refused', retryAfterSeconds: refused.retryAfterSeconds };
      const outcome = await check(login, password, 0);
      if (limiter !== undefined && outcome.result !== 'temp') limiter.report(login, ctx, outcome.result === 'ok', tagOf(password));
      return outcome;
    },
    lookup(login): LookupOutcome {
      if (!directory.loaded) return { result: 'temp', why: 'directory not loaded yet' };
      const user = directory.user(login);
      if (user.status === 'unknown') return { result: 'unknown' };
      if (user.status === 'disabled') return { result: 'disabled', address: user.address };
      return { result: 'ok', fields: userdbFields(deps.userdb, user.address, user.quotaBytes) };
    },
    close: unsubscribe,
    get cacheSize() {
      return cache.size;
    },
  };
}
