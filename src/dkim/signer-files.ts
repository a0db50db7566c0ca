// What a DKIM signer reads, made from the published keys: OpenDKIM's KeyTable and one key file
// per key, and its SigningTable (refile: patterns) twice, because an OpenDKIM process signs
// with one algorithm (SignatureAlgorithm) whatever the key: `SigningTable` lists the RSA keys
// for the main instance, `SigningTable.ed25519` the Ed25519 keys for a second instance with
// `SignatureAlgorithm ed25519-sha256` (measured with Debian's 2.11: an Ed25519 key in the
// RSA instance's table tempfails every message). And rspamd's selector map, whose key path
// (`$domain.$selector.key`) names the same files. Pure: rows in, file names and contents out
// (src/dkim/dir-writer.ts writes them). Every published key has its file and KeyTable line;
// only signing keys are in the SigningTables and the selector map. So a signer that has not
// read the new tables yet (a reload that failed or has not run) still finds the file of the
// key it signs with — a retired key is still published, its signatures verify — instead of
// tempfailing every message; a file goes when its key is removed (`dkim rm`).

import { join } from 'node:path';
import { type DkimAlgorithm, isKeyDomain, isSelector } from './keys.js';

export interface SigningKey {
  domain: string;
  selector: string;
  algorithm: DkimAlgorithm;
  /** PKCS#8 PEM. */
  privateKey: string;
  /** Signs new mail; false: published only (waiting or retired). */
  active: boolean;
}

export const keyTableFile = 'KeyTable';
export const signingTableFile = 'SigningTable';
export const signingTableEd25519File = 'SigningTable.ed25519';
export const rspamdSelectorMapFile = 'dkim_selectors.map';

/** Key files end in .key; the writer removes those no key names any more. */
export const keyFileSuffix = '.key';

export function keyFileName(domain: string, selector: string): string {
  return `${domain}.${selector}${keyFileSuffix}`;
}

const header = '# Written by mailmapd from mailmapd.dkim_keys: changes here are overwritten.\n';

export interface SignerFiles {
  /** File name in dkim_dir → content. */
  files: Map<string, string>;
  /** Rows left out because their names could not be file names (written by something else than mailmapd). */
  skipped: { domain: string; selector: string }[];
}

const rank = (k: SigningKey) => (k.algorithm === 'rsa-2048' ? 0 : 1);

export function signerFiles(dir: string, keys: readonly SigningKey[]): SignerFiles {
  const usable = keys.filter((k) => isKeyDomain(k.domain) && isSelector(k.selector));
  const skipped = keys.filter((k) => !usable.includes(k)).map((k) => ({ domain: k.domain, selector: k.selector }));
  const sorted = [...usable].sort((a, b) => a.domain.localeCompare(b.domain) || rank(a) - rank(b) || a.selector.localeCompare(b.selector));
  const files = new Map<string, string>();
  const keyTable: string[] = [];
  const signingTable: string[] = [];
  const signingTableEd25519: string[] = [];
  const selectors = new Map<string, string>();
  for (const k of sorted) {
    const name = `${k.selector}._domainkey.${k.domain}`;
    const file = keyFileName(k.domain, k.selector);
    files.set(file, k.privateKey.endsWith('\n') ? k.privateKey : `${k.privateKey}\n`);
    keyTable.push(`${name} ${k.domain}:${k.selector}:${join(dir, file)}\n`);
    // refile: a pattern per line; dots in the domain are literal here (only * is special).
    if (!k.active) continue;
    (k.algorithm === 'rsa-2048' ? signingTable : signingTableEd25519).push(`*@${k.domain} ${name}\n`);
    // rspamd signs with one key per domain from its map: the RSA one, which every verifier knows.
    if (!selectors.has(k.domain) || k.algorithm === 'rsa-2048') selectors.set(k.domain, k.selector);
  }
  files.set(keyTableFile, header + keyTable.join(''));
  files.set(signingTableFile, header + signingTable.join(''));
  files.set(signingTableEd25519File, header + signingTableEd25519.join(''));
  files.set(rspamdSelectorMapFile, header + [...selectors].map(([d, s]) => `${d} ${s}\n`).join(''));
  return { files, skipped };
}
