// A real OpenID provider for the OAuth2 tests: panva's oidc-provider (the certified Node
// implementation) in a child process on loopback, with discovery and a JWKS. It issues JWT
// access tokens by the client-credentials grant for a `resource` whose audience is `mail`;
// the mailbox the token names comes from the request's `login_hint` as the `email` claim (a
// stand-in for a user's login at the provider, which a test cannot click through).
// Each resource picks the signing algorithm: urn:mail:RS256, urn:mail:PS256, urn:mail:ES256,
// urn:mail:EdDSA.
//
// argv: port, then a JSON file holding { keys: [private JWKs] }. Prints "ready" on stdout.

import { readFileSync } from 'node:fs';
import Provider from 'oidc-provider';

const port = Number(process.argv[2]);
const { keys } = JSON.parse(readFileSync(process.argv[3], 'utf8'));
const issuer = `http://127.0.0.1:${port}`;

const provider = new Provider(issuer, {
  clients: [{ client_id: 'mail-client', client_secret: 'mail-client-secret', grant_types: ['client_credentials'], redirect_uris: [], response_types: [] }],
  jwks: { keys },
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => 'urn:mail:RS256',
      getResourceServerInfo: (_ctx, resource) => {
        const alg = /^urn:mail:(RS256|PS256|ES256|EdDSA)$/.exec(resource)?.[1];
        if (alg === undefined) throw new Provider.errors.InvalidTarget();
        return { scope: 'mail', audience: 'mail', accessTokenFormat: 'jwt', accessTokenTTL: 600, jwt: { sign: { alg } } };
      },
    },
  },
  enabledJWA: { idTokenSigningAlgValues: ['RS256', 'PS256', 'ES256', 'EdDSA'], requestObjectSigningAlgValues: ['RS256'] },
  extraTokenClaims: (ctx) => {
    // The token endpoint's parameter list has no room for extras: read the posted form itself.
    const hint = ctx.oidc.body?.login_hint;
    return typeof hint === 'string' && hint !== '' ? { email: hint } : undefined;
  },
});
provider.on('server_error', (_ctx, err) => process.stderr.write(`provider error: ${err.stack}\n`));
provider.listen(port, '127.0.0.1', () => process.stdout.write('ready\n'));
