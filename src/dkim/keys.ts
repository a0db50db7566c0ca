// DKIM key pairs, made with node:crypto: RSA 2048 (RFC 6376, what every verifier knows) and
// Ed25519 (RFC 8463, which large receivers verify too; a domain signs with both so that a
// verifier without Ed25519 still finds a signature it knows). The private key is PKCS#8
// PEM, which OpenDKIM and rspamd read; the public key is what the DNS record's p= carries.
// Nothing here logs: a private key leaves this module only as the value returned.

import { createPrivateKey, createPublicKey, generateKeyPair } from 'node:crypto';
import { UsageError } from '../errors.js';

export const dkimAlgorithms = ['rsa-2048', 'ed25519'] as const;
export type DkimAlgorithm = (typeof dkimAlgorithms)[number];

export interface DkimKeyPair {
  algorithm: DkimAlgorithm;
  /** PKCS#8 PEM. */
  privateKey: string;
  /** Base64, as the DNS record's p= tag carries it. */
  publicKey: string;
}

export function checkAlgorithm(raw: string): DkimAlgorithm {
  if ((dkimAlgorithms as readonly string[]).includes(raw)) return raw as DkimAlgorithm;
  throw new UsageError(`unknown DKIM algorithm "${raw}" (rsa-2048 or ed25519)`);
}

/** p= for a public key: the SubjectPublicKeyInfo for RSA, the bare 32 bytes for Ed25519 (RFC 8463 §4.2). */
function publicKeyTag(algorithm: DkimAlgorithm, privatePem: string): string {
  const pub = createPublicKey(createPrivateKey(privatePem));
  if (algorithm === 'rsa-2048') return (pub.export({ type: 'spki', format: 'der' }) as Buffer).toString('base64');
  const x = pub.export({ format: 'jwk' }).x;
  if (typeof x !== 'string') throw new Error('Ed25519 public key without x');
  return Buffer.from(x, 'base64url').toString('base64');
}

/** PKCS#8 PEM of a new private key; generated off the event loop (RSA takes a while). */
function newPrivateKey(algorithm: DkimAlgorithm): Promise<string> {
  const enc = { privateKeyEncoding: { type: 'pkcs8', format: 'pem' }, publicKeyEncoding: { type: 'spki', format: 'pem' } } as const;
  return new Promise((resolve, reject) => {
    const done = (err: Error | null, _pub: string, priv: string) => (err ? reject(err) : resolve(priv));
    if (algorithm === 'rsa-2048') generateKeyPair('rsa', { modulusLength: 2048, ...enc }, done);
    else generateKeyPair('ed25519', enc, done);
  });
}

export async function generateDkimKey(algorithm: DkimAlgorithm): Promise<DkimKeyPair> {
  const privateKey = await newPrivateKey(algorithm);
  return { algorithm, privateKey, publicKey: publicKeyTag(algorithm, privateKey) };
}

/** The DKIM TXT record's text (RFC 6376 §3.6.1; k=ed25519 per RFC 8463). */
export function dkimRecordText(algorithm: DkimAlgorithm, publicKey: string): string {
  return `v=DKIM1; k=${algorithm === 'rsa-2048' ? 'rsa' : 'ed25519'}; p=${publicKey}`;
}

const selectorRe = /^[a-z0-9](?:[a-z0-9-]{0,62})?(?:\.[a-z0-9](?:[a-z0-9-]{0,62})?)*$/;

/** A selector is a DNS name below _domainkey and a file name part: letters, digits, -, dots between labels. */
export function isSelector(s: string): boolean {
  return s.length <= 120 && selectorRe.test(s);
}

// The same names as mailmapd.dkim_keys' CHECKs (migrations/dkim.ts): rows a panel wrote are
// checked again before they become file names.
const keyDomainRe = /^[a-z0-9_](?:[a-z0-9_-]{0,62})?(?:\.[a-z0-9_](?:[a-z0-9_-]{0,62})?)*$/;

export function isKeyDomain(s: string): boolean {
  return s.length <= 253 && keyDomainRe.test(s);
}

export function checkSelector(raw: string): string {
  const s = raw.trim().toLowerCase();
  if (!isSelector(s)) throw new UsageError(`"${raw}" is not a valid selector (letters, digits and -, dots between labels)`);
  return s;
}

/**
 * A new selector: the algorithm and the day (`rsa20261205`, `ed20261205`), a letter added
 * when the domain has that one already (a second rotation on one day).
 */
export function defaultSelector(algorithm: DkimAlgorithm, now: Date, taken: ReadonlySet<string>): string {
  const day = now.toISOString().slice(0, 10).replaceAll('-', '');
  const base = `${algorithm === 'rsa-2048' ? 'rsa' : 'ed'}${day}`;
  if (!taken.has(base)) return base;
  for (const c of 'bcdefghijklmnopqrstuvwxyz') if (!taken.has(base + c)) return base + c;
  throw new UsageError(`too many ${algorithm} keys made today; name one with --selector`);
}
