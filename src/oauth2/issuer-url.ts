// Which OpenID issuer (and key) addresses the daemon trusts: read by the config's parser and
// by the key source, so it imports nothing.

/**
 * `https:` anywhere; `http:` only to a loopback host — a token check that trusts keys fetched
 * in clear over a network would accept tokens signed by whoever sits on the path.
 */
export function checkIssuerUrl(issuer: string): URL {
  let url: URL;
  try {
    url = new URL(issuer);
  } catch {
    throw new Error(`oauth2_issuer is not a URL: ${JSON.stringify(issuer.slice(0, 200))}`);
  }
  if (url.protocol === 'https:') return url;
  const host = url.hostname.replace(/^\[|\]$/g, '');
  if (url.protocol === 'http:' && (host === 'localhost' || host === '::1' || /^127\./.test(host))) return url;
  throw new Error('oauth2_issuer must be https: (http: only on loopback)');
}
