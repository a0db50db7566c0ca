// The main.cf lines of `mailmapd postfix-config` for the policy service (sending limits,
// quota at RCPT). default_action=DUNNO: Postfix's own default (451 4.3.5) would defer all
// mail while the daemon is down; the daemon itself answers DUNNO whenever it cannot decide.

import type { ListenAddress } from '../net/listen-address.js';

const QUEUE_DIRECTORY = '/var/spool/postfix/';

/**
 * How smtpd names the listener. smtpd runs chrooted in the queue directory on Debian and
 * resolves `unix:` names relative to it, so a socket inside it is named relatively.
 */
export function policyEndpoint(address: ListenAddress): string {
  // IPv6 in brackets, as Postfix writes inet: endpoints.
  if (address.kind !== 'unix') return `inet:${address.host.includes(':') ? `[${address.host}]` : address.host}:${address.port}`;
  return address.path.startsWith(QUEUE_DIRECTORY) ? `unix:${address.path.slice(QUEUE_DIRECTORY.length)}` : `unix:${address.path}`;
}

export function policyServiceLines(address: ListenAddress | undefined): string[] {
  if (address === undefined) {
    return ['# Sending limits and quota at RCPT: policy_listen is empty in the mailmapd config (set it to use them).'];
  }
  const check = `check_policy_service { ${policyEndpoint(address)}, default_action=DUNNO }`;
  const lines = [
    '# Sending limits and quota at RCPT (mailmapd policy service). In smtpd_recipient_restrictions',
    '# it goes before any permit_* (permit_mynetworks, permit_sasl_authenticated): a permit ends',
    '# the list, and the limits are for authenticated senders. Relaying is refused before it by',
    '# smtpd_relay_restrictions. If you have your own list, add the check_policy_service line to it.',
    `smtpd_recipient_restrictions = ${check}`,
    '# Counts what was sent once the message is accepted (and checks a single recipient with its size).',
    `smtpd_end_of_data_restrictions = ${check}`,
  ];
  if (address.kind === 'unix' && !address.path.startsWith(QUEUE_DIRECTORY)) {
    lines.unshift(
      `# ${address.path} is outside Postfix's queue directory: a chrooted smtpd (Debian's default) cannot`,
      `# reach it. Use e.g. policy_listen = unix:${QUEUE_DIRECTORY}private/mailmapd-policy (unix_socket_group = postfix).`,
    );
  }
  return lines;
}
