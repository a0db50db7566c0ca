// `mailmapd postfix-config`: the main.cf lines that point Postfix at this daemon's first
// socketmap listener. A UNIX socket goes through proxymap (`proxy:`), because Debian runs
// smtpd, cleanup and trivial-rewrite chrooted in /var/spool/postfix, where the socket's
// path does not exist.

import type { Config } from '../config.js';
import type { ListenAddress } from '../net/listen-address.js';
import { postfixLmtpTransport } from './dovecot-lmtp-config.js';
import { submissionSection } from './postfix-submission-config.js';
import { policyServiceLines } from './postfix-policy-config.js';

/** The Postfix table name for one socketmap name on `address`. */
function socketmapTable(address: ListenAddress, name: string): string {
  return address.kind === 'unix' ? `proxy:socketmap:unix:${address.path}:${name}` : `socketmap:${address.text}:${name}`;
}

export function postfixConfig(config: Config): string {
  const address = config.socketmap_listen[0];
  if (address === undefined) {
    return '# socketmap_listen is empty in the mailmapd config: there is no listener for Postfix to use.\n';
  }
  const t = (name: string) => socketmapTable(address, name);
  const delimiter = config.recipient_delimiter;
  const lines = [
    `# mailmapd: Postfix main.cf settings for the socketmap listener ${address.text} (${config.source})`,
    delimiter === ''
      ? "# recipient_delimiter: mailmapd has none set; leave Postfix's recipient_delimiter empty as well."
      : `# recipient_delimiter = ${delimiter}   <- keep Postfix's equal to mailmapd's: mailmapd strips the extension itself (Postfix sends socketmap tables only full keys).`,
  ];
  if (address.kind === 'unix') {
    lines.push(
      '# proxy: lets the unchrooted proxymap do the lookups; these four parameters are in the default',
      '# proxy_read_maps. If you changed proxy_read_maps, add the tables below to it.',
    );
  }
  lines.push(
    `virtual_mailbox_domains = ${t('domains')}`,
    `virtual_mailbox_maps = ${t('mailboxes')}`,
    `virtual_alias_maps = ${t('aliases')}`,
    '# used with smtpd_sender_restrictions = reject_sender_login_mismatch (or reject_authenticated_sender_login_mismatch)',
    `smtpd_sender_login_maps = ${t('senders')}`,
    "# Delivery through Dovecot's LMTP (`mailmapd dovecot-config` prints its listener). Postfix's own",
    '# virtual(8) agent refuses socketmap tables ("not allowed for security-sensitive data") and',
    '# would defer every message that smtpd accepted.',
    `virtual_transport = ${postfixLmtpTransport}`,
  );
  lines.push(...routingLines(address, t), ...bccLines(t));
  lines.push(...policyServiceLines(config.policy_listen[0]));
  if (config.socketmap_listen.length > 1) {
    lines.push(
      `# (other socketmap listeners: ${config.socketmap_listen
        .slice(1)
        .map((a) => a.text)
        .join(', ')})`,
    );
  }
  return lines.join('\n') + '\n';
}

/**
 * What `mailmapd postfix-config` prints: the main.cf lines, then the master.cf submission
 * service under its own heading (postfixConfig alone is main.cf, as the tests paste it).
 */
export function postfixConfigOutput(config: Config): string {
  const address = config.socketmap_listen[0];
  const senders = address === undefined ? null : socketmapTable(address, 'senders');
  return postfixConfig(config) + submissionSection(senders).join('\n') + '\n';
}

/** The copy maps, commented out: they copy mail, an operator turns them on knowingly. */
function bccLines(t: (name: string) => string): string[] {
  return [
    '# Copies (BCC) of mail from an address (sender_bcc_maps) or to it (recipient_bcc_maps), as',
    '# `mailmapd bcc` sets them. They copy mail to another mailbox: turn them on knowingly.',
    `# sender_bcc_maps = ${t('sender_bcc')}`,
    `# recipient_bcc_maps = ${t('recipient_bcc')}`,
  ];
}

/**
 * The routing maps (mailmapd.domains.transport, relay_domains, relay_recipients,
 * sender_relayhosts). Each answers NOTFOUND while its table is empty, so printing them all is
 * harmless. Relay credentials are answered on a UNIX socket only (socketmap/server.ts), so
 * with an inet listener their lines are printed commented out: Postfix would defer every
 * outgoing message on the TEMP answer.
 */
function routingLines(address: ListenAddress, t: (name: string) => string): string[] {
  const lines = [
    '# Routing: per-domain transports and relay domains (backup MX) with their recipients.',
    `transport_maps = ${t('transport')}`,
    `relay_domains = ${t('relay_domains')}`,
    `relay_recipient_maps = ${t('relay_recipients')}`,
    '# Mail from a sender (or @domain) with a relay host leaves through that host,',
    '# authenticating with its credentials; the smtp(8) client asks for them per delivery.',
    `sender_dependent_relayhost_maps = ${t('sender_relayhost')}`,
  ];
  const credentials = [
    'smtp_sender_dependent_authentication = yes',
    'smtp_sasl_auth_enable = yes',
    `smtp_sasl_password_maps = ${t('sender_relay_credentials')}`,
    'smtp_sasl_security_options = noanonymous',
    '# Credentials cross the network in the clear unless the relay host speaks TLS:',
    'smtp_tls_security_level = may',
  ];
  if (address.kind === 'unix') return [...lines, ...credentials];
  return [
    ...lines,
    '# Relay credentials are served on a UNIX socket listener only (any local user can reach a',
    '# loopback port); add one to socketmap_listen, owned by a group only postfix is in, to use:',
    ...credentials.map((l) => (l.startsWith('#') ? l : `# ${l}`)),
  ];
}
