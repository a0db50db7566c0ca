// The DNS records a mail domain needs, as data (for `mailmapd dns check`) and as zone-file
// lines an operator pastes as they are (`mailmapd dns`, `domain add`, `dkim add`): MX, SPF,
// DKIM for every published key, DMARC, and the SRV records mail clients find the servers by
// (RFC 6186, with RFC 8314's implicit-TLS services preferred). Pure: no DNS, no database.

import { isIP } from 'node:net';
import { type DkimAlgorithm, dkimRecordText } from './keys.js';

export type RecordData =
  | { type: 'MX'; priority: number; exchange: string }
  | { type: 'TXT'; text: string }
  | { type: 'SRV'; priority: number; weight: number; port: number; target: string }
  | { type: 'A' | 'AAAA'; address: string };

export interface ZoneRecord {
  /** What the record is for, as `dns check` names it: `MX`, `SPF`, `DKIM rsa20261205`, `SRV _imaps._tcp`. */
  label: string;
  /** The owner name, without the final dot. */
  name: string;
  data: RecordData;
}

export interface PublishedKey {
  selector: string;
  algorithm: DkimAlgorithm;
  publicKey: string;
}

export interface MailDomainOptions {
  /** The mail server's addresses, for SPF (and A/AAAA of the MX host when it is in the domain). */
  ips: readonly string[];
  /** The MX host and the client services' target; default `mail.DOMAIN`. */
  mx?: string;
  keys: readonly PublishedKey[];
}

export const defaultTtl = 3600;

/** Client services, implicit TLS first (RFC 8314 §5.1: lower priority value = preferred). */
const services: ReadonlyArray<[string, number, number]> = [
  ['_submissions._tcp', 465, 0],
  ['_submission._tcp', 587, 10],
  ['_imaps._tcp', 993, 0],
  ['_imap._tcp', 143, 10],
  ['_pop3s._tcp', 995, 0],
  ['_pop3._tcp', 110, 10],
];

export function spfText(ips: readonly string[]): string {
  return ['v=spf1', 'mx', ...ips.map((ip) => (isIP(ip) === 6 ? `ip6:${ip}` : `ip4:${ip}`)), '-all'].join(' ');
}

export function dmarcText(domain: string): string {
  return `v=DMARC1; p=quarantine; rua=mailto:postmaster@${domain}`;
}

export function mailDomainRecords(domain: string, opts: MailDomainOptions): ZoneRecord[] {
  const mx = (opts.mx ?? `mail.${domain}`).replace(/\.$/, '').toLowerCase();
  const records: ZoneRecord[] = [{ label: 'MX', name: domain, data: { type: 'MX', priority: 10, exchange: mx } }];
  if (mx.endsWith(`.${domain}`)) {
    for (const ip of opts.ips)
      records.push({ label: `${isIP(ip) === 6 ? 'AAAA' : 'A'} ${mx}`, name: mx, data: { type: isIP(ip) === 6 ? 'AAAA' : 'A', address: ip } });
  }
  records.push({ label: 'SPF', name: domain, data: { type: 'TXT', text: spfText(opts.ips) } });
  for (const k of opts.keys) {
    records.push({
      label: `DKIM ${k.selector}`,
      name: `${k.selector}._domainkey.${domain}`,
      data: { type: 'TXT', text: dkimRecordText(k.algorithm, k.publicKey) },
    });
  }
  records.push({ label: 'DMARC', name: `_dmarc.${domain}`, data: { type: 'TXT', text: dmarcText(domain) } });
  for (const [service, port, priority] of services) {
    records.push({ label: `SRV ${service}`, name: `${service}.${domain}`, data: { type: 'SRV', priority, weight: 1, port, target: mx } });
  }
  return records;
}

/**
 * A TXT value as quoted strings of at most 255 bytes each (RFC 1035 §3.3.14; a 2048-bit
 * key's record runs past one). Every text here is ASCII (names are checked, keys base64),
 * so characters are bytes.
 */
export function txtStrings(text: string): string[] {
  if (!/^[\x20-\x7e]*$/.test(text)) throw new Error('TXT text must be printable ASCII');
  const out: string[] = [];
  for (let i = 0; i === 0 || i < text.length; i += 255) out.push(`"${text.slice(i, i + 255).replace(/["\\]/g, '\\$&')}"`);
  return out;
}

export function zoneLine(r: ZoneRecord, ttl = defaultTtl): string {
  const d = r.data;
  const rdata =
    d.type === 'MX'
      ? `${d.priority} ${d.exchange}.`
      : d.type === 'TXT'
        ? txtStrings(d.text).join(' ')
        : d.type === 'SRV'
          ? `${d.priority} ${d.weight} ${d.port} ${d.target}.`
          : d.address;
  return `${r.name}. ${ttl} IN ${d.type} ${rdata}`;
}
