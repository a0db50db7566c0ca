// The OpenID provider's signing keys, as the token check needs them: the discovery document
// (`<issuer>/.well-known/openid-configuration`) names the JWKS; the JWKS is fetched at start
// and again when a token names a key we do not hold — at most once per `minRefreshMs`, so a
// flood of tokens with made-up key ids costs the provider one request per interval. A failed
// fetch keeps the last keys: logins with known keys go on while the provider is away.

import type { JSONWebKeySet } from 'jose';
import { errorMessage, type Logger } from '../log.js';
import { checkIssuerUrl } from './issuer-url.js';

export { checkIssuerUrl };

export interface KeySource {
  /** The keys last fetched; undefined until a fetch has succeeded. */
  current(): JSONWebKeySet | undefined;
  /** Fetches the keys again unless that was tried less than the minimum interval ago; true when new keys arrived. */
  refresh(): Promise<boolean>;
}

export interface KeySourceOptions {
  issuer: string;
  logger: Logger;
  /** Injected for tests; the global fetch otherwise. */
  fetch?: typeof fetch;
  now?: () => number;
  minRefreshMs?: number;
  /** Per HTTP request. */
  timeoutMs?: number;
}

/** A discovery document or JWKS larger than this is refused: a provider's is a few KiB. */
const MAX_DOCUMENT_BYTES = 256 * 1024;

async function fetchJson(get: typeof fetch, url: string, timeoutMs: number): Promise<unknown> {
  const res = await get(url, { signal: AbortSignal.timeout(timeoutMs), redirect: 'error', headers: { accept: 'application/json' } });
  if (!res.ok) throw new Error(`${url} answered HTTP ${res.status}`);
  const body = await res.arrayBuffer();
  if (body.byteLength > MAX_DOCUMENT_BYTES) throw new Error(`${url} answered more than ${MAX_DOCUMENT_BYTES} bytes`);
  return JSON.parse(Buffer.from(body).toString('utf8'));
}

/** The JWKS address the discovery document names, after checking it speaks for our issuer. */
async function discover(get: typeof fetch, issuer: string, timeoutMs: number): Promise<string> {
  const base = issuer.replace(/\/+$/, '');
  const doc = (await fetchJson(get, `${base}/.well-known/openid-configuration`, timeoutMs)) as { issuer?: unknown; jwks_uri?: unknown };
  // OpenID Connect Discovery 1.0 §4.3: the document's issuer must be the one asked about.
  if (doc.issuer !== issuer) throw new Error(`the discovery document names issuer ${JSON.stringify(String(doc.issuer).slice(0, 200))}, not ${issuer}`);
  if (typeof doc.jwks_uri !== 'string') throw new Error('the discovery document has no jwks_uri');
  checkIssuerUrl(doc.jwks_uri);
  return doc.jwks_uri;
}

export function createKeySource(opts: KeySourceOptions): KeySource {
  const get = opts.fetch ?? fetch;
  const now = opts.now ?? Date.now;
  const minRefreshMs = opts.minRefreshMs ?? 10_000;
  const timeoutMs = opts.timeoutMs ?? 5_000;
  let keys: JSONWebKeySet | undefined;
  let jwksUri: string | undefined;
  let lastTry = Number.NEGATIVE_INFINITY;
  let inFlight: Promise<boolean> | undefined;

  const load = async (): Promise<boolean> => {
    try {
      jwksUri ??= await discover(get, opts.issuer, timeoutMs);
      const set = (await fetchJson(get, jwksUri, timeoutMs)) as JSONWebKeySet;
      if (!Array.isArray(set?.keys)) throw new Error('the JWKS has no keys array');
      const before = JSON.stringify(keys?.keys.map((k) => k.kid));
      keys = { keys: set.keys.filter((k) => k !== null && typeof k === 'object') };
      if (JSON.stringify(keys.keys.map((k) => k.kid)) !== before) opts.logger.info('oauth2 keys loaded', { issuer: opts.issuer, keys: keys.keys.length });
      return true;
    } catch (err) {
      // The discovery document is asked again next time: the provider may have moved its keys.
      jwksUri = undefined;
      opts.logger.warn('oauth2 keys could not be fetched; the last keys stay in use', { issuer: opts.issuer, error: errorMessage(err).slice(0, 300) });
      return false;
    }
  };

  return {
    current: () => keys,
    refresh() {
      if (inFlight) return inFlight;
      if (now() - lastTry < minRefreshMs) return Promise.resolve(false);
      lastTry = now();
      inFlight = load().finally(() => {
        inFlight = undefined;
      });
      return inFlight;
    },
  };
}
