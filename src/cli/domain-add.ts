// `mailmapd domain add DOMAIN [--alias-of TARGET] [--inactive] [--ip ADDR]… [--mx HOST] [--no-dkim]`:
// the domain, its DKIM keys (RSA and Ed25519; not with --no-dkim) in the same transaction,
// and then the DNS records it needs to send and receive mail, to paste into its zone.

import { inTransaction } from '../db/client.js';
import { UsageError } from '../errors.js';
import { dkimAlgorithms } from '../dkim/keys.js';
import { addKeys, type KeyInfo } from '../dkim/store.js';
import { requireDomain } from './admin.js';
import { type AdminDeps, withAdminClient } from './admin-client.js';
import { arity, checkDomain, onlyFlags, parseArgs } from './args.js';
import { checkIps, domainRecords, printZone, takeRepeated } from './dns.js';

export async function domainAdd(args: string[], deps: AdminDeps): Promise<number> {
  const { values: ipArgs, rest } = takeRepeated(args, 'ip');
  const p = parseArgs(rest, ['alias-of', 'mx']);
  onlyFlags(p, ['alias-of', 'inactive', 'mx', 'no-dkim']);
  arity(p, 1, 1, 'domain add DOMAIN [--alias-of TARGET] [--inactive] [--ip ADDR]… [--mx HOST] [--no-dkim]');
  const name = checkDomain(p.positional[0]);
  const active = !p.flags.has('inactive');
  const target = p.flags.get('alias-of');
  const mx = p.flags.get('mx');
  const recordOptions = { ips: checkIps(ipArgs), mx: typeof mx === 'string' ? checkDomain(mx.replace(/\.$/, '')) : undefined };
  return withAdminClient(deps.url, async (c) => {
    const keys: KeyInfo[] = await inTransaction(c, async () => {
      if (typeof target === 'string') {
        const t = checkDomain(target);
        await requireDomain(c, t);
        const clash = await c.query('SELECT 1 FROM mailmapd.domains WHERE name = $1', [name]);
        if (clash.rowCount) throw new UsageError(`${name} is already a domain`);
        await c.query('INSERT INTO mailmapd.alias_domains (name, target, active) VALUES ($1, $2, $3)', [name, t, active]);
      } else {
        const clash = await c.query('SELECT 1 FROM mailmapd.alias_domains WHERE name = $1', [name]);
        if (clash.rowCount) throw new UsageError(`${name} is already an alias domain`);
        await c.query('INSERT INTO mailmapd.domains (name, active) VALUES ($1, $2)', [name, active]);
      }
      // Mail from an alias domain is signed as that domain: it gets keys of its own.
      return p.flags.has('no-dkim') ? [] : addKeys(c, name, dkimAlgorithms);
    });
    deps.out(typeof target === 'string' ? `added alias domain ${name} -> ${checkDomain(target)}` : `added domain ${name}`);
    for (const k of keys) deps.out(`added DKIM key ${k.selector} (${k.algorithm})${k.active ? ', signing' : ''}`);
    printZone(name, await domainRecords(c, name, recordOptions), deps.out);
    return 0;
  });
}
