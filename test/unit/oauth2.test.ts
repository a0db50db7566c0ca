// The OAuth2 parts without a provider process: the token checks with an injected clock and
// key source, the key source's refresh bound, the SASL bearer mechanisms' parsing, and the
// PEM that Dovecot 2.4 gets from the dict (checked with node's own verifier, not jose).

import { createPublicKey, generateKeyPairSync, verify as nodeVerify } from 'node:crypto';
import { importJWK, type JSONWebKeySet, type JWK, SignJWT } from 'jose';
import { describe, expect, it } from 'vitest';
import { bearerMechanisms } from '../../src/authclient/mechanisms.js';
import { silentLogger } from '../../src/log.js';
import { dovecotKeyLookup } from '../../src/oauth2/dovecot-keys.js';
import { checkIssuerUrl, createKeySource, type KeySource } from '../../src/oauth2/keys.js';
import { createTokenVerifier, looksLikeJwt } from '../../src/oauth2/verify.js';

const issuer = 'https://id.example.org/realms/mail';
const rsa = { ...(generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'jwk' }) as JWK), kid: 'r1', alg: 'RS256', use: 'sig' };
const ec = { ...(generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'jwk' }) as JWK), kid: 'e1', alg: 'ES256' };
const publicOf = (k: JWK): JWK => {
  const { d: _d, p: _p, q: _q, dp: _dp, dq: _dq, qi: _qi, ...pub } = k;
  return pub;
};

function fixedKeys(sets: JSONWebKeySet[]): KeySource & { refreshes: number } {
  let i = 0;
  const src = {
    refreshes: 0,
    current: () => sets[i],
    async refresh() {
      src.refreshes++;
      if (i + 1 >= sets.length) return false;
      i++;
      return true;
    },
  };
  return src;
}

async function sign(claims: Record<string, unknown>, key: JWK = rsa, now = 1_800_000_000): Promise<string> {
  return new SignJWT({ iss: issuer, aud: 'mail', iat: now, exp: now + 300, email: 'alice@example.org', ...claims })
    .setProtectedHeader({ alg: key.alg!, kid: key.kid! })
    .sign(await importJWK(key, key.alg));
}

describe('token verification (injected clock and keys)', () => {
  const at = 1_800_000_000 * 1000;
  const verifier = (keys: KeySource, now = () => at) => createTokenVerifier({ issuer, audience: 'mail', usernameClaim: 'email', keys, now, leewaySeconds: 30 });

  it('accepts a good token and names the claim; tells each failure apart', async () => {
    const v = verifier(fixedKeys([{ keys: [publicOf(rsa), publicOf(ec)] }]));
    expect(await v.verify(await sign({}))).toEqual({ ok: true, name: 'alice@example.org' });
    expect(await v.verify(await sign({}, ec))).toEqual({ ok: true, name: 'alice@example.org' });
    const t = 1_800_000_000;
    const cases: [Record<string, unknown>, string][] = [
      [{ exp: t - 31 }, 'expired'],
      [{ nbf: t + 31 }, 'not_yet_valid'],
      [{ aud: 'other' }, 'audience'],
      [{ iss: 'https://evil.example' }, 'issuer'],
      [{ email: undefined }, 'no_claim'],
    ];
    for (const [claims, reason] of cases) expect(await v.verify(await sign(claims)), reason).toEqual({ ok: false, reason });
    // Within the leeway is still fine.
    expect((await v.verify(await sign({ exp: t - 29 }))).ok).toBe(true);
  });

  it('refuses a forged signature, alg none and an HMAC token made with the public key', async () => {
    const v = verifier(fixedKeys([{ keys: [publicOf(rsa)] }]));
    const good = await sign({});
    const [h, p] = good.split('.');
    const other = await sign({ email: 'mallory@example.org' });
    expect(await v.verify(`${h}.${other.split('.')[1]}.${good.split('.')[2]}`)).toEqual({ ok: false, reason: 'signature' });
    const none = `${Buffer.from(JSON.stringify({ alg: 'none', kid: 'r1' })).toString('base64url')}.${p}.`;
    expect((await v.verify(none)).ok).toBe(false);
    const hs = await new SignJWT({ iss: issuer, aud: 'mail', exp: 1_800_000_300, email: 'alice@example.org' })
      .setProtectedHeader({ alg: 'HS256', kid: 'r1' })
      .sign(new TextEncoder().encode(JSON.stringify(publicOf(rsa))));
    expect((await v.verify(hs)).ok).toBe(false);
  });

  it('an unknown key id asks the key source again once, and uses the new keys', async () => {
    const keys = fixedKeys([{ keys: [publicOf(ec)] }, { keys: [publicOf(ec), publicOf(rsa)] }]);
    const v = verifier(keys);
    expect(await v.verify(await sign({}))).toEqual({ ok: true, name: 'alice@example.org' });
    expect(keys.refreshes).toBe(1);
  });

  it('caches a verified token until it expires, by its hash', async () => {
    let now = at;
    const keys = fixedKeys([{ keys: [publicOf(rsa)] }]);
    const v = verifier(keys, () => now);
    const t = await sign({});
    expect((await v.verify(t)).ok).toBe(true);
    expect(v.cached).toBe(1);
    now = at + 400_000; // past exp and the leeway
    expect(await v.verify(t)).toEqual({ ok: false, reason: 'expired' });
    expect(v.cached).toBe(0);
  });

  it('looksLikeJwt: the shape only', () => {
    expect(looksLikeJwt('eyJhbGciOiJSUzI1NiJ9.eyJ4IjoxfQ.c2ln')).toBe(true);
    expect(looksLikeJwt('correct horse battery staple')).toBe(false);
    expect(looksLikeJwt('eyJ.a')).toBe(false);
  });
});

describe('the key source', () => {
  const discovery = { issuer, jwks_uri: `${issuer}/protocol/openid-connect/certs` };
  const fakeFetch = (answers: Record<string, unknown>, calls: string[]) =>
    (async (url: string | URL) => {
      calls.push(String(url));
      const body = answers[String(url)];
      if (body === undefined) return new Response('no', { status: 503 });
      return new Response(JSON.stringify(body), { status: 200 });
    }) as typeof fetch;

  it('fetches discovery then JWKS, refreshes at most once per interval, keeps the last keys when the provider is down', async () => {
    const calls: string[] = [];
    const answers: Record<string, unknown> = { [`${issuer}/.well-known/openid-configuration`]: discovery, [discovery.jwks_uri]: { keys: [publicOf(rsa)] } };
    let now = 0;
    const src = createKeySource({ issuer, logger: silentLogger, fetch: fakeFetch(answers, calls), now: () => now, minRefreshMs: 10_000 });
    expect(await src.refresh()).toBe(true);
    expect(src.current()?.keys.map((k) => k.kid)).toEqual(['r1']);
    now = 5_000;
    expect(await src.refresh()).toBe(false);
    expect(calls).toHaveLength(2);
    delete answers[discovery.jwks_uri];
    now = 10_001;
    expect(await src.refresh()).toBe(false);
    expect(src.current()?.keys.map((k) => k.kid)).toEqual(['r1']);
  });

  it('refuses a discovery document that speaks for another issuer', async () => {
    const calls: string[] = [];
    const answers = { [`${issuer}/.well-known/openid-configuration`]: { ...discovery, issuer: 'https://evil.example' }, [discovery.jwks_uri]: { keys: [] } };
    const src = createKeySource({ issuer, logger: silentLogger, fetch: fakeFetch(answers, calls) });
    expect(await src.refresh()).toBe(false);
    expect(src.current()).toBeUndefined();
  });

  it('http: only on loopback', () => {
    expect(() => checkIssuerUrl('http://id.example.org/')).toThrow(/https/);
    expect(() => checkIssuerUrl('http://127.0.0.1:8080/realms/x')).not.toThrow();
    expect(() => checkIssuerUrl('http://[::1]:8080/')).not.toThrow();
  });
});

describe('SASL OAUTHBEARER and XOAUTH2', () => {
  const start = (mech: 'OAUTHBEARER' | 'XOAUTH2', s: string) => bearerMechanisms[mech]!().start(Buffer.from(s));

  it('parses the token and the login, RFC 5801 escapes included', () => {
    expect(start('OAUTHBEARER', 'n,a=a=2Cb=3D@example.org,\x01host=x\x01auth=Bearer abc.def.ghi\x01\x01')).toEqual({
      kind: 'credentials',
      login: 'a,b=@example.org',
      password: 'abc.def.ghi',
      bearer: true,
    });
    expect(start('XOAUTH2', 'user=alice@example.org\x01auth=bearer tok\x01\x01')).toMatchObject({ login: 'alice@example.org', password: 'tok' });
  });

  it('refuses channel binding, a bad escape, a missing terminator and another scheme', () => {
    for (const bad of [
      'p=tls-unique,,\x01auth=Bearer t\x01\x01',
      'n,a=x=41,\x01auth=Bearer t\x01\x01',
      'n,,\x01auth=Bearer t\x01',
      'n,,\x01auth=Basic dXNlcg==\x01\x01',
    ]) {
      expect(start('OAUTHBEARER', bad).kind).toBe('fail');
    }
  });

  it('after a refusal: the JSON status as a challenge, then a failure whatever the client sends', () => {
    const m = bearerMechanisms.OAUTHBEARER!();
    m.start(Buffer.from('n,,\x01auth=Bearer t\x01\x01'));
    const challenge = m.refused!();
    expect(challenge.kind).toBe('continue');
    expect(JSON.parse(Buffer.from((challenge as { challenge: string }).challenge, 'base64').toString())).toMatchObject({ status: 'invalid_token' });
    expect(m.next(Buffer.from('\x01')).kind).toBe('fail');
  });
});

describe("Dovecot 2.4's keys from the dict", () => {
  it('answers shared/<azp>/<alg>/<kid> with a PEM that verifies the token, and nothing for unknown keys', async () => {
    const keys = fixedKeys([{ keys: [publicOf(rsa), publicOf({ ...ec, kid: 'a/b%c' })] }]);
    const lookup = dovecotKeyLookup(keys);
    const pem = lookup('shared/default/RS256/r1');
    expect(pem).toMatch(/^-----BEGIN PUBLIC KEY-----/);
    const token = await sign({});
    const [h, p, sig] = token.split('.');
    expect(nodeVerify('sha256', Buffer.from(`${h}.${p}`), createPublicKey(pem!), Buffer.from(sig!, 'base64url'))).toBe(true);
    expect(lookup('shared/mail-client/ES256/a%2fb%25c')).toMatch(/BEGIN PUBLIC KEY/);
    expect(lookup('shared/default/ES256/r1')).toBeUndefined();
    expect(lookup('shared/default/RS256/nope')).toBeUndefined();
    expect(lookup('priv/quota/storage')).toBeUndefined();
  });
});
