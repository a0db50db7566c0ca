// The tests' OpenID provider (openid-provider.mjs, panva's oidc-provider in a child process):
// started on a loopback port with keys the test makes, restarted with other keys (a key
// rotation at the provider), stopped (the provider down). Tokens come from its token
// endpoint; tokens with claims a provider would never issue (expired, wrong audience…) are
// signed here with the provider's own private keys.

import { type ChildProcess, spawn } from 'node:child_process';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { importJWK, type JWK, SignJWT } from 'jose';
import { freePort } from './daemon.js';

export type Alg = 'RS256' | 'PS256' | 'ES256' | 'EdDSA';

export function makeKeys(tag: string): JWK[] {
  const jwk = (pair: ReturnType<typeof generateKeyPairSync>, alg: Alg): JWK => ({
    ...(pair.privateKey.export({ format: 'jwk' }) as JWK),
    kid: `${alg.toLowerCase()}-${tag}`,
    alg,
    use: 'sig',
  });
  return [
    jwk(generateKeyPairSync('rsa', { modulusLength: 2048 }), 'RS256'),
    jwk(generateKeyPairSync('rsa', { modulusLength: 2048 }), 'PS256'),
    jwk(generateKeyPairSync('ec', { namedCurve: 'P-256' }), 'ES256'),
    jwk(generateKeyPairSync('ed25519'), 'EdDSA'),
  ];
}

export interface OpenIdProvider {
  issuer: string;
  /** A token from the provider's token endpoint naming `email`. */
  token(email: string, alg?: Alg): Promise<string>;
  /** A token signed with one of the provider's keys (or `keys` given) with these claims. */
  forge(claims: Record<string, unknown>, opts?: { alg?: Alg; keys?: JWK[] }): Promise<string>;
  /** Starts the provider again on the same port with these keys. */
  restart(keys: JWK[]): Promise<void>;
  stop(): Promise<void>;
  keys(): JWK[];
}

const script = fileURLToPath(new URL('./openid-provider.mjs', import.meta.url));

export async function startOpenIdProvider(initial: JWK[]): Promise<OpenIdProvider> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'mailmapd-openid-'));
  const issuer = `http://127.0.0.1:${port}`;
  let keys = initial;
  let child: ChildProcess | undefined;
  let log = '';

  const start = async () => {
    const file = join(dir, `keys-${randomBytes(4).toString('hex')}.json`);
    writeFileSync(file, JSON.stringify({ keys }));
    child = spawn(process.execPath, [script, String(port), file], { stdio: ['ignore', 'pipe', 'pipe'] });
    child.stderr!.on('data', (d) => (log += d));
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`the OpenID provider did not start:\n${log}`)), 30_000);
      child!.stdout!.once('data', () => {
        clearTimeout(timer);
        resolve();
      });
      child!.once('exit', (code) => reject(new Error(`the OpenID provider exited (${code}):\n${log}`)));
    });
  };
  const stop = async () => {
    if (child === undefined || child.exitCode !== null || child.signalCode !== null) return;
    const gone = new Promise((r) => child!.once('exit', r));
    child.kill('SIGTERM');
    await gone;
  };
  await start();

  return {
    issuer,
    async token(email, alg = 'RS256') {
      const res = await fetch(`${issuer}/token`, {
        method: 'POST',
        headers: {
          authorization: `Basic ${Buffer.from('mail-client:mail-client-secret').toString('base64')}`,
          'content-type': 'application/x-www-form-urlencoded',
        },
        body: new URLSearchParams({ grant_type: 'client_credentials', resource: `urn:mail:${alg}`, scope: 'mail', login_hint: email }),
      });
      const body = (await res.json()) as { access_token?: string };
      if (body.access_token === undefined) throw new Error(`no token from the provider: ${JSON.stringify(body)}\n${log}`);
      return body.access_token;
    },
    async forge(claims, opts = {}) {
      const alg = opts.alg ?? 'RS256';
      const jwk = (opts.keys ?? keys).find((k) => k.alg === alg)!;
      const now = Math.floor(Date.now() / 1000);
      return new SignJWT({ iss: issuer, aud: 'mail', iat: now, exp: now + 600, ...claims })
        .setProtectedHeader({ alg, kid: jwk.kid!, typ: 'at+jwt' })
        .sign(await importJWK(jwk, alg));
    },
    async restart(next) {
      await stop();
      keys = next;
      await start();
    },
    async stop() {
      await stop();
    },
    keys: () => keys,
  };
}

/** Removes the provider's temporary files once the process is gone (best effort). */
export function cleanupOpenId(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}
