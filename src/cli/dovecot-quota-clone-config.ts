// The `mailmapd dovecot-config` section for quota usage: Dovecot's quota plugin counts
// (the `count` backend: no separate quota database) and its quota-clone plugin reports
// each mailbox's usage to mailmapd's dict_listen, which writes it to PostgreSQL. Dovecot's
// dict proxy client connects to UNIX sockets only.

import type { Config } from '../config.js';

/** Dovecot 2.3's conf.d lines for a dict socket at `path`. */
export function quotaCloneConfig23(path: string): string[] {
  return [
    'mail_plugins = $mail_plugins quota quota_clone',
    'plugin {',
    '  quota = count:User quota',
    '  quota_vsizes = yes',
    `  quota_clone_dict = proxy:${path}:quota`,
    '}',
  ];
}

/** Dovecot 2.4's conf.d lines for a dict socket at `path`. */
export function quotaCloneConfig24(path: string): string[] {
  return [
    'mail_plugins {',
    '  quota = yes',
    '  quota_clone = yes',
    '}',
    'quota "User quota" {',
    '  driver = count',
    '}',
    'quota_clone {',
    '  dict proxy {',
    `    dict_proxy_socket_path = ${path}`,
    '    dict_proxy_name = quota',
    '  }',
    '}',
  ];
}

export function quotaCloneSection(config: Config): string[] {
  const address = config.dict_listen.find((a) => a.kind === 'unix');
  if (address?.kind !== 'unix') {
    return [
      '# dict_listen has no unix: address: set dict_listen = unix:/run/mailmapd/dict in mailmapd.conf to',
      "# receive quota usage from Dovecot's quota-clone plugin (its dict client connects to UNIX sockets only).",
      '',
    ];
  }
  const mode = config.unix_socket_mode.toString(8).padStart(4, '0');
  return [
    '# ---- Quota usage to mailmapd (mailmapd.quota_usage): /etc/dovecot/conf.d/90-quota-mailmapd.conf ----',
    "# The mail processes connect as the mail user (mail_uid): the socket's mode " +
      mode +
      (config.unix_socket_group === '' ? " and mailmapd's own group" : ` and group ${config.unix_socket_group}`),
    '# must let them.',
    '# Dovecot 2.3:',
    ...quotaCloneConfig23(address.path),
    '# Dovecot 2.4:',
    ...quotaCloneConfig24(address.path),
    '',
  ];
}
