// `mailmapd dns check`: asks DNS for each record `mailmapd dns` prints and says whether it is
// there as printed. TXT records are matched by their kind (the one TXT at the domain that
// starts with v=spf1, the one at _dmarc that starts with v=DMARC1), so a domain's other TXT
// records do not count as different. The resolver is passed in (node:dns's Resolver in
// the CLI), so this module does no I/O of its own.

import type { ZoneRecord } from './zone.js';

export interface DnsResolver {
  resolveMx(name: string): Promise<{ priority: number; exchange: string }[]>;
  resolveTxt(name: string): Promise<string[][]>;
  resolveSrv(name: string): Promise<{ priority: number; weight: number; port: number; name: string }[]>;
  resolve4(name: string): Promise<string[]>;
  resolve6(name: string): Promise<string[]>;
}

export type CheckState = 'matching' | 'missing' | 'different' | 'failed';

export interface CheckResult {
  record: ZoneRecord;
  state: CheckState;
  /** What DNS has instead (different), or the resolver's error code (failed). */
  found?: string;
}

const absent = new Set(['ENODATA', 'ENOTFOUND', 'NODATA', 'NOTFOUND']);

const host = (s: string) => s.replace(/\.$/, '').toLowerCase();
const spaces = (s: string) =>
  s
    .trim()
    .replace(/\s*;\s*/g, '; ')
    .replace(/\s+/g, ' ')
    .replace(/;\s*$/, '');

/** A TXT record's kind: what its text starts with, so that records of other kinds are left alone. */
function txtPrefix(r: ZoneRecord, text: string): string {
  if (r.label === 'SPF') return 'v=spf1';
  if (r.label === 'DMARC') return 'v=DMARC1';
  return text.startsWith('v=DKIM1') ? 'v=DKIM1' : '';
}

/** Found values as text, and whether one of them is the record. */
async function lookUp(r: ZoneRecord, dns: DnsResolver): Promise<{ found: string[]; match: boolean }> {
  const d = r.data;
  switch (d.type) {
    case 'MX': {
      const found = await dns.resolveMx(r.name);
      return {
        found: found.map((m) => `${m.priority} ${host(m.exchange)}`),
        match: found.some((m) => host(m.exchange) === d.exchange && m.priority === d.priority),
      };
    }
    case 'SRV': {
      const found = await dns.resolveSrv(r.name);
      const text = found.map((s) => `${s.priority} ${s.weight} ${s.port} ${host(s.name)}`);
      return { found: text, match: text.includes(`${d.priority} ${d.weight} ${d.port} ${d.target}`) };
    }
    case 'A':
    case 'AAAA': {
      const found = d.type === 'A' ? await dns.resolve4(r.name) : await dns.resolve6(r.name);
      return { found, match: found.includes(d.address) };
    }
    case 'TXT': {
      const prefix = txtPrefix(r, d.text).toLowerCase();
      const found = (await dns.resolveTxt(r.name)).map((chunks) => chunks.join('')).filter((t) => t.toLowerCase().startsWith(prefix));
      return { found, match: found.some((t) => spaces(t) === spaces(d.text)) };
    }
  }
}

export async function checkRecord(r: ZoneRecord, dns: DnsResolver): Promise<CheckResult> {
  try {
    const { found, match } = await lookUp(r, dns);
    if (match) return { record: r, state: 'matching' };
    if (found.length === 0) return { record: r, state: 'missing' };
    return { record: r, state: 'different', found: found.join(' | ') };
  } catch (err) {
    const code = (err as { code?: string }).code ?? 'error';
    if (absent.has(code)) return { record: r, state: 'missing' };
    return { record: r, state: 'failed', found: code };
  }
}

export async function checkRecords(records: readonly ZoneRecord[], dns: DnsResolver): Promise<CheckResult[]> {
  return Promise.all(records.map((r) => checkRecord(r, dns)));
}
