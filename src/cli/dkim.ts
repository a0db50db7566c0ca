// `mailmapd dkim add|rotate|rm|list`: DKIM keys in mailmapd.dkim_keys. `add` and `rotate`
// print the DNS record to publish; `list` says which retired keys may be removed. No
// command prints or reads back a private key.

import { inTransaction } from '../db/client.js';
import { NotFoundError, UsageError } from '../errors.js';
import { checkAlgorithm, checkSelector, type DkimAlgorithm, dkimAlgorithms, dkimRecordText } from '../dkim/keys.js';
import { addKeys, type KeyInfo, keyState, listKeys, removeKey, rotateKeys } from '../dkim/store.js';
import { zoneLine } from '../dkim/zone.js';
import { withAdminClient } from './admin-client.js';
import { arity, checkDomain, onlyFlags, parseArgs } from './args.js';

export interface DkimDeps {
  url: string;
  out(line: string): void;
  /** dkim_keep_rotated: how long a rotated-out key stays published, in ms. */
  keepMs: number;
}

const day = (d: Date) => d.toISOString().slice(0, 10);

export function dkimZoneLine(k: KeyInfo): string {
  return zoneLine({ label: '', name: `${k.selector}._domainkey.${k.domain}`, data: { type: 'TXT', text: dkimRecordText(k.algorithm, k.publicKey) } });
}

/** What `dkim add` and `domain add` say of new keys, then their records. */
export function printAddedKeys(keys: readonly KeyInfo[], out: (line: string) => void): void {
  for (const k of keys) {
    out(
      k.active
        ? `added DKIM key ${k.selector} (${k.algorithm}) for ${k.domain}: it signs new mail`
        : `added DKIM key ${k.selector} (${k.algorithm}) for ${k.domain}, published only: once DNS has it, \`mailmapd dkim rotate ${k.domain}\` makes it sign`,
    );
  }
  out('; publish in the zone:');
  for (const k of keys) out(dkimZoneLine(k));
}

export async function dkimCommand(args: string[], deps: DkimDeps): Promise<number> {
  const [verb, ...rest] = args;
  const p = parseArgs(rest, ['selector', 'algorithm']);
  const algorithm = typeof p.flags.get('algorithm') === 'string' ? checkAlgorithm(p.flags.get('algorithm') as string) : undefined;
  switch (verb) {
    case 'add': {
      onlyFlags(p, ['selector', 'algorithm']);
      arity(p, 1, 1, 'dkim add DOMAIN [--selector S] [--algorithm rsa-2048|ed25519]');
      const domain = checkDomain(p.positional[0]);
      const sel = p.flags.get('selector');
      if (typeof sel === 'string' && algorithm === undefined) throw new UsageError('--selector names one key: give --algorithm too');
      const algorithms: DkimAlgorithm[] = algorithm ? [algorithm] : [...dkimAlgorithms];
      return withAdminClient(deps.url, async (c) => {
        const added = await inTransaction(c, () => addKeys(c, domain, algorithms, typeof sel === 'string' ? checkSelector(sel) : undefined));
        printAddedKeys(added, deps.out);
        return 0;
      });
    }
    case 'rotate': {
      onlyFlags(p, ['algorithm']);
      arity(p, 1, 1, 'dkim rotate DOMAIN [--algorithm rsa-2048|ed25519]');
      const domain = checkDomain(p.positional[0]);
      return withAdminClient(deps.url, async (c) => {
        const rotations = await inTransaction(c, () => rotateKeys(c, domain, algorithm));
        for (const r of rotations) {
          const until = day(new Date(r.retired.retired!.getTime() + deps.keepMs));
          deps.out(`${domain}: ${r.signing.selector} (${r.algorithm}) signs new mail; ${r.retired.selector} stays published until ${until}`);
        }
        const fresh = rotations.filter((r) => r.generated).map((r) => r.signing);
        if (fresh.length > 0) {
          deps.out('; publish now (mail signed with a new key fails DKIM until DNS has its record):');
          for (const k of fresh) deps.out(dkimZoneLine(k));
        }
        return 0;
      });
    }
    case 'rm': {
      onlyFlags(p, ['force']);
      arity(p, 2, 2, 'dkim rm DOMAIN SELECTOR [--force]');
      const domain = checkDomain(p.positional[0]);
      const selector = checkSelector(p.positional[1]!);
      return withAdminClient(deps.url, async (c) => {
        const gone = await inTransaction(c, () => removeKey(c, domain, selector, p.flags.has('force')));
        if (gone === undefined) throw new NotFoundError(`no DKIM key ${selector} for ${domain}`);
        deps.out(`removed DKIM key ${selector} of ${domain}; remove ${selector}._domainkey.${domain} from DNS`);
        return 0;
      });
    }
    case 'list': {
      onlyFlags(p, []);
      arity(p, 0, 1, 'dkim list [DOMAIN]');
      const domain = p.positional[0] === undefined ? undefined : checkDomain(p.positional[0]);
      return withAdminClient(deps.url, async (c) => {
        const now = (await c.query<{ now: Date }>('SELECT now()')).rows[0]!.now;
        for (const k of await listKeys(c, domain)) deps.out(`${k.domain} ${k.selector} ${k.algorithm} ${describe(k, now, deps.keepMs)}`);
        return 0;
      });
    }
    default:
      throw new UsageError('usage: mailmapd dkim add|rotate|rm|list …');
  }
}

function describe(k: KeyInfo, now: Date, keepMs: number): string {
  const s = keyState(k, now, keepMs);
  if (s.state === 'signing') return `signing (since ${day(k.created)})`;
  if (s.state === 'waiting') return `published, not signing yet (\`mailmapd dkim rotate ${k.domain}\` makes it sign)`;
  if (!s.removable) return `retired ${day(k.retired!)}, keep published until ${day(s.removableAt)}`;
  return `retired ${day(k.retired!)}, can be removed: mailmapd dkim rm ${k.domain} ${k.selector}`;
}
