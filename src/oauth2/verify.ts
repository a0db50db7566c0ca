// Is this bearer token a login, and for whom: the JWT's signature against the provider's
// keys (keys.ts), `iss`, `aud`, `exp` and `nbf` (with a small leeway for clocks that
// disagree), and the claim that names the mailbox. A verified token is remembered until it
// expires, keyed by its SHA-256, so a client that logs in again with the same token costs a
// hash and a map lookup, like a cached password. What the token names is resolved by the
// caller on every login: a mailbox removed or disabled is refused at once, cached or not.

import { createHash } from 'node:crypto';
import { createLocalJWKSet, errors, jwtVerify, type JSONWebKeySet } from 'jose';
import type { KeySource } from './keys.js';

export type TokenFailure = 'malformed' | 'expired' | 'not_yet_valid' | 'issuer' | 'audience' | 'signature' | 'unknown_key' | 'no_claim';

export type TokenCheck = { ok: true; name: string } | { ok: false; reason: TokenFailure };

export interface TokenVerifier {
  verify(token: string): Promise<TokenCheck>;
  /** Verified tokens held. */
  readonly cached: number;
}

export interface TokenVerifierOptions {
  issuer: string;
  audience: string;
  /** The claim naming the mailbox (`email`, `preferred_username`, `sub`…). */
  usernameClaim: string;
  keys: KeySource;
  now?: () => number;
  /** Seconds a clock may be off; 60 unless given. */
  leewaySeconds?: number;
  cacheSize?: number;
}

// The algorithms the contract names and their longer-hash siblings. Never `none`, never HMAC:
// an HS256 token "signed" with a public key is the classic JWT forgery.
const ALGORITHMS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA', 'Ed25519'];

/** The shape of a JWS compact serialization: three base64url parts, the first a JSON header. */
export function looksLikeJwt(s: string): boolean {
  return s.length < 16_384 && /^eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/.test(s);
}

function failureOf(err: unknown): TokenFailure {
  if (err instanceof errors.JWTExpired) return 'expired';
  if (err instanceof errors.JWTClaimValidationFailed) {
    if (err.claim === 'nbf' || err.claim === 'iat') return 'not_yet_valid';
    if (err.claim === 'iss') return 'issuer';
    if (err.claim === 'aud') return 'audience';
    return 'malformed';
  }
  if (err instanceof errors.JWKSNoMatchingKey) return 'unknown_key';
  if (err instanceof errors.JWSSignatureVerificationFailed) return 'signature';
  return 'malformed';
}

export function createTokenVerifier(opts: TokenVerifierOptions): TokenVerifier {
  const now = opts.now ?? Date.now;
  const cacheSize = opts.cacheSize ?? 100_000;
  /** SHA-256 of the token → the name it carries and when it stops being valid (ms). */
  const cache = new Map<string, { name: string; until: number }>();
  let keySet: { source: JSONWebKeySet; resolve: ReturnType<typeof createLocalJWKSet> } | undefined;

  const resolver = () => {
    const current = opts.keys.current();
    if (current === undefined) return undefined;
    if (keySet?.source !== current) keySet = { source: current, resolve: createLocalJWKSet(current) };
    return keySet.resolve;
  };

  const check = async (token: string): Promise<TokenCheck & { until?: number }> => {
    let resolve = resolver();
    if (resolve === undefined && (await opts.keys.refresh())) resolve = resolver();
    if (resolve === undefined) return { ok: false, reason: 'unknown_key' };
    const options = {
      issuer: opts.issuer,
      audience: opts.audience,
      algorithms: ALGORITHMS,
      clockTolerance: opts.leewaySeconds ?? 60,
      currentDate: new Date(now()),
      requiredClaims: ['exp'],
    };
    let payload: Record<string, unknown>;
    try {
      payload = (await jwtVerify(token, resolve, options)).payload;
    } catch (err) {
      if (!(err instanceof errors.JWKSNoMatchingKey) || !(await opts.keys.refresh())) return { ok: false, reason: failureOf(err) };
      // The provider rotated its keys: one more try with the new set.
      try {
        payload = (await jwtVerify(token, resolver()!, options)).payload;
      } catch (again) {
        return { ok: false, reason: failureOf(again) };
      }
    }
    const name = payload[opts.usernameClaim];
    if (typeof name !== 'string' || name === '') return { ok: false, reason: 'no_claim' };
    return { ok: true, name, until: (payload.exp as number) * 1000 };
  };

  return {
    async verify(token) {
      if (!looksLikeJwt(token)) return { ok: false, reason: 'malformed' };
      const id = createHash('sha256').update(token).digest('base64');
      const hit = cache.get(id);
      if (hit !== undefined && hit.until > now()) return { ok: true, name: hit.name };
      if (hit !== undefined) cache.delete(id);
      const out = await check(token);
      if (!out.ok) return { ok: false, reason: out.reason };
      if (cache.size >= cacheSize) cache.delete(cache.keys().next().value!);
      cache.set(id, { name: out.name, until: out.until! });
      return { ok: true, name: out.name };
    },
    get cached() {
      return cache.size;
    },
  };
}
