// `mailmapd dns DOMAIN [--ip ADDR]… [--mx HOST]` prints the zone lines a mail domain needs;
// `mailmapd dns check DOMAIN [same options] [--server IP[:PORT]]` asks DNS for each of them.
// `domain add` prints the same lines through dnsLines.

import { Resolver } from 'node:dns/promises';
import { isIP } from 'node:net';
import type pg from 'pg';
import { ExitCode, UsageError } from '../errors.js';
import { checkRecords, type DnsResolver } from '../dkim/dns-check.js';
import { listKeys } from '../dkim/store.js';
import { mailDomainRecords, type ZoneRecord, zoneLine } from '../dkim/zone.js';
import { withAdminClient } from './admin-client.js';
import { arity, checkDomain, onlyFlags, parseArgs, type Parsed } from './args.js';

export interface DnsDeps {
  url: string;
  out(line: string): void;
  /** The resolver `dns check` asks; the CLI's default is node:dns with the system's servers or --server. */
  resolver?(server: string | undefined): DnsResolver;
}

/** Takes every `--NAME VALUE` / `--NAME=VALUE` out of args (a repeatable option). */
export function takeRepeated(args: readonly string[], name: string): { values: string[]; rest: string[] } {
  const values: string[] = [];
  const rest: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === `--${name}`) {
      const v = args[++i];
      if (v === undefined) throw new UsageError(`--${name} needs a value`);
      values.push(v);
    } else if (a.startsWith(`--${name}=`)) values.push(a.slice(name.length + 3));
    else rest.push(a);
  }
  return { values, rest };
}

export interface RecordOptions {
  ips: string[];
  mx?: string;
}

export function checkIps(raw: readonly string[]): string[] {
  return raw
    .flatMap((v) => v.split(','))
    .map((v) => {
      const ip = v.trim();
      if (isIP(ip) === 0) throw new UsageError(`--ip ${JSON.stringify(v)} is not an IPv4 or IPv6 address`);
      return ip;
    });
}

/** The domain's records with its published keys (read without the private key column). */
export async function domainRecords(c: pg.ClientBase, domain: string, opts: RecordOptions): Promise<ZoneRecord[]> {
  const keys = await listKeys(c, domain);
  return mailDomainRecords(domain, { ips: opts.ips, mx: opts.mx, keys });
}

export function printZone(domain: string, records: readonly ZoneRecord[], out: (line: string) => void): void {
  out(`; DNS records for ${domain}: paste into its zone as they are`);
  for (const r of records) out(zoneLine(r));
}

/** Parses `--ip`, `--mx` and the rest of a dns command's arguments. */
function parseRecordArgs(args: string[], extraValued: string[]): { opts: RecordOptions; p: Parsed } {
  const { values, rest } = takeRepeated(args, 'ip');
  const p = parseArgs(rest, ['mx', ...extraValued]);
  const mx = p.flags.get('mx');
  return { opts: { ips: checkIps(values), mx: typeof mx === 'string' ? checkDomain(mx.replace(/\.$/, '')) : undefined }, p };
}

function systemResolver(server: string | undefined): DnsResolver {
  const r = new Resolver({ timeout: 3000, tries: 2 });
  if (server !== undefined) {
    try {
      r.setServers([server]);
    } catch {
      throw new UsageError(`--server ${JSON.stringify(server)}: expected an IP address, IP:PORT or [IPv6]:PORT`);
    }
  }
  return r;
}

async function dnsCheck(args: string[], deps: DnsDeps): Promise<number> {
  const { opts, p } = parseRecordArgs(args, ['server']);
  onlyFlags(p, ['mx', 'server']);
  arity(p, 1, 1, 'dns check DOMAIN [--ip ADDR]… [--mx HOST] [--server IP[:PORT]]');
  const domain = checkDomain(p.positional[0]);
  const server = p.flags.get('server');
  const resolver = (deps.resolver ?? systemResolver)(typeof server === 'string' ? server : undefined);
  const records = await withAdminClient(deps.url, (c) => domainRecords(c, domain, opts));
  const results = await checkRecords(records, resolver);
  for (const r of results) {
    deps.out(`${r.record.label} ${r.record.name}: ${r.state}${r.found !== undefined ? ` (${r.state === 'failed' ? '' : 'found '}${r.found})` : ''}`);
    if (r.state === 'missing' || r.state === 'different') deps.out(`  want: ${zoneLine(r.record)}`);
  }
  if (results.some((r) => r.state === 'missing' || r.state === 'different')) return ExitCode.notFound;
  return results.some((r) => r.state === 'failed') ? ExitCode.temp : ExitCode.ok;
}

export async function dnsCommand(args: string[], deps: DnsDeps): Promise<number> {
  if (args[0] === 'check') return dnsCheck(args.slice(1), deps);
  const { opts, p } = parseRecordArgs(args, []);
  onlyFlags(p, ['mx']);
  arity(p, 1, 1, 'dns DOMAIN [--ip ADDR]… [--mx HOST]   |   dns check DOMAIN [--ip ADDR]… [--mx HOST] [--server IP[:PORT]]');
  const domain = checkDomain(p.positional[0]);
  return withAdminClient(deps.url, async (c) => {
    printZone(domain, await domainRecords(c, domain, opts), deps.out);
    return ExitCode.ok;
  });
}
