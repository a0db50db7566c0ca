// Bearer-token logins against password logins, through the shared login decision every door
// calls (auth/authenticator.ts), in one run: a token seen for the first time (signature and
// claims verified: RS256 and ES256), the same token again (the verified-token cache), and
// PLAIN with an app password and with the mailbox password, both as the credential cache
// answers them after the first login. The provider's keys are held in memory: what is timed
// is the daemon's work per login, not the provider's. Target: a cached token login costs no
// more than a cached password login.
// Runnable alone: node bench/oauth2.mjs

import { generateKeyPairSync } from 'node:crypto';
import { importJWK, SignJWT } from 'jose';
import { load } from './lib.mjs';

const ROUNDS = 5;
const ROUND_MS = 300;

export async function run(log) {
  const { createAuthenticator } = await load('auth/authenticator.js');
  const { createDirectory, emptyData } = await load('directory/directory.js');
  const { createLogger } = await load('log.js');
  const { createMetrics } = await load('metrics.js');
  const { createHashPool } = await load('password/pool.js');
  const { hashPassword } = await load('password/hash.js');
  const { generateAppPassword } = await load('cli/app-password.js');
  const { createTokenVerifier } = await load('oauth2/verify.js');

  const issuer = 'https://id.bench.test/realms/mail';
  const jwk = (pair, kid, alg) => ({ ...pair.privateKey.export({ format: 'jwk' }), kid, alg });
  const rsa = jwk(generateKeyPairSync('rsa', { modulusLength: 2048 }), 'r', 'RS256');
  const ec = jwk(generateKeyPairSync('ec', { namedCurve: 'P-256' }), 'e', 'ES256');
  const pub = (k) => Object.fromEntries(Object.entries(k).filter(([n]) => !['d', 'p', 'q', 'dp', 'dq', 'qi'].includes(n)));
  const keys = { keys: [pub(rsa), pub(ec)] };
  const keySource = { current: () => keys, refresh: async () => false };
  const signers = { RS256: await importJWK(rsa, 'RS256'), ES256: await importJWK(ec, 'ES256') };
  let serial = 0;
  const token = (alg) =>
    new SignJWT({ iss: issuer, aud: 'mail', email: 'alice@bench.test', jti: String(serial++) })
      .setProtectedHeader({ alg, kid: alg === 'RS256' ? 'r' : 'e' })
      .setIssuedAt()
      .setExpirationTime('10m')
      .sign(signers[alg]);

  const app = generateAppPassword();
  const directory = createDirectory({ recipientDelimiter: '+' });
  const data = emptyData();
  data.domains.set('bench.test', true);
  data.mailboxes.set('alice@bench.test', {
    password: await hashPassword('secret', 'SHA512-CRYPT'),
    quotaBytes: 0,
    active: true,
    appPasswords: [{ name: 'phone', password: await hashPassword(app, 'SSHA256'), services: [] }],
  });
  directory.replaceAll(data);
  const metrics = createMetrics(false);
  const logger = createLogger('error', () => {});
  const pool = createHashPool({ workers: 1, queueLimit: 100, defaultScheme: 'CRYPT', metrics, logger });
  const tokens = createTokenVerifier({ issuer, audience: 'mail', usernameClaim: 'email', keys: keySource });
  const auth = createAuthenticator({
    directory,
    pool,
    logger,
    metrics,
    tokens,
    userdb: { mailHome: '/var/vmail/%d/%n', mailUid: 5000, mailGid: 5000 },
    cacheSize: 10_000,
  });
  const plainCtx = { service: 'smtp' };
  const bearerCtx = { service: 'smtp', bearer: true };

  // Fresh tokens are made ahead (signing is the provider's cost, not ours).
  const fresh = { RS256: [], ES256: [] };
  for (const alg of ['RS256', 'ES256']) for (let i = 0; i < 3000; i++) fresh[alg].push(await token(alg));
  const cachedToken = await token('RS256');

  const cases = [
    { label: 'token, first sight (RS256)', next: () => [fresh.RS256.pop(), bearerCtx] },
    { label: 'token, first sight (ES256)', next: () => [fresh.ES256.pop(), bearerCtx] },
    { label: 'token, cached', next: () => [cachedToken, bearerCtx] },
    { label: 'app password, cached', next: () => [app, plainCtx] },
    { label: 'mailbox password, cached', next: () => [`secret`, plainCtx] },
  ];
  const measure = async (c, ms) => {
    let n = 0;
    const t0 = performance.now();
    while (performance.now() - t0 < ms) {
      const [pw, ctx] = c.next();
      if (pw === undefined) break;
      const out = await auth.authenticate('alice@bench.test', pw, ctx);
      if (out.result !== 'ok') throw new Error(`${c.label}: ${out.result} ${out.why ?? ''}`);
      n++;
    }
    return ((performance.now() - t0) * 1000) / n;
  };
  for (const c of cases) await measure(c, 30); // warm: the password caches fill here
  for (let r = 0; r < ROUNDS; r++) for (const c of cases) c.best = Math.min(c.best ?? Infinity, await measure(c, ROUND_MS));
  const base = cases.find((c) => c.label === 'app password, cached').best;
  log('login                          | µs per login | logins/s | × cached app password');
  for (const c of cases)
    log(`${c.label.padEnd(31)}| ${c.best.toFixed(1).padStart(12)} | ${(1e6 / c.best).toFixed(0).padStart(8)} | ${(c.best / base).toFixed(2)}×`);
  const cached = cases.find((c) => c.label === 'token, cached').best;
  log(`target: a cached token login costs no more than a cached password login: ${(cached / base).toFixed(2)}× → ${cached <= base * 1.05 ? 'met' : 'NOT met'}`);
  auth.close();
  await pool.close();
}

if (import.meta.url === `file://${process.argv[1]}`) await run(console.log);
