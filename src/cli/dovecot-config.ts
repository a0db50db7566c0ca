// `mailmapd dovecot-config`: the conf.d snippets that wire Dovecot 2.3 (checkpassword
// passdb + userdb) and Postfix's SMTP AUTH (the auth-client socket) to this daemon's
// configured listeners. Each section is one function of the config and the options. The
// Lua door (`--lua`, Dovecot 2.3 and 2.4) has its own module, dovecot-lua-config.ts.

import { fileURLToPath } from 'node:url';
import type { Config } from '../config.js';
import type { ListenAddress } from '../net/listen-address.js';
import { dovecotLmtpSection, postfixQueueDirectory } from './dovecot-lmtp-config.js';
import { UsageError } from '../errors.js';
import { quotaCloneSection } from './dovecot-quota-clone-config.js';

export interface DovecotConfigOptions {
  /** Absolute path of mailmapd-checkpassword as Dovecot should run it. */
  program: string;
}

/** The binary built by scripts/build-checkpassword.mjs, beside dist/ in the package. */
export const defaultCheckpasswordProgram = fileURLToPath(new URL('../../bin/mailmapd-checkpassword', import.meta.url));

const usage = 'usage: mailmapd dovecot-config [--program PATH]';

function parseDovecotConfigArgs(args: string[]): DovecotConfigOptions {
  const opts: DovecotConfigOptions = { program: defaultCheckpasswordProgram };
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === '--program') {
      const v = args[++i];
      if (v === undefined || v === '') throw new UsageError(`--program needs a path\n${usage}`);
      opts.program = v;
    } else if (a.startsWith('--program=')) opts.program = a.slice(10);
    else throw new UsageError(`unknown argument ${JSON.stringify(a)}\n${usage}`);
  }
  return opts;
}

/** How the checkpassword program names a listener: `unix:/path` or `inet:HOST:PORT`. */
function socketArg(a: ListenAddress): string {
  return a.kind === 'unix' ? `unix:${a.path}` : a.text;
}

/**
 * Postfix's smtpd_sasl_path: `inet:host:port`; for a socket in Postfix's queue directory the
 * path relative to it, as the chrooted smtpd sees it; else `unix:/path`.
 */
function postfixSaslPath(a: ListenAddress): string {
  if (a.kind === 'inet') return `inet:${a.host.includes(':') ? `[${a.host}]` : a.host}:${a.port}`;
  return a.path.startsWith(postfixQueueDirectory) ? a.path.slice(postfixQueueDirectory.length) : `unix:${a.path}`;
}

function socketPermissionNote(config: Config, address: ListenAddress | undefined, who: string): string[] {
  if (address?.kind !== 'unix') return [];
  const mode = config.unix_socket_mode.toString(8).padStart(4, '0');
  if (config.unix_socket_group === '') {
    return [`# ${address.path} has mode ${mode} and mailmapd's own group: set unix_socket_group = ${who}`, '# in mailmapd.conf so that it can connect.'];
  }
  return [`# ${address.path}: mode ${mode}, group ${config.unix_socket_group} (${who} must be in it).`];
}

function checkpasswordSection(config: Config, opts: DovecotConfigOptions): string[] {
  const address = config.checkpassword_listen[0];
  if (address === undefined) {
    return ['# checkpassword_listen is empty: enable it in mailmapd.conf to let Dovecot 2.3 log users in through mailmapd.', ''];
  }
  const args = `${opts.program} -s ${socketArg(address)}`;
  return [
    '# ---- Dovecot 2.3: /etc/dovecot/conf.d/auth-mailmapd.conf.ext ----',
    '# Include it from conf.d/10-auth.conf in place of auth-system.conf.ext:',
    '#   #!include auth-system.conf.ext',
    '#   !include auth-mailmapd.conf.ext',
    '# Dovecot runs the program once per login and per user lookup (doveadm user, LMTP);',
    '# it asks mailmapd and exits 0/1 (login ok/failed), 2/3 (user found/unknown) or 111',
    '# (temporary failure: mailmapd down or still loading).',
    "# It is a small C program: the auth service's default vsz_limit (256M) is enough,",
    '# no vsz_limit change is needed.',
    ...socketPermissionNote(config, address, "dovecot (the auth service's user)"),
    'passdb {',
    '  driver = checkpassword',
    `  args = ${args}`,
    '}',
    `# Master users: \`user${config.master_user_separator}master\` with the master's password logs in as user`,
    "# (the program passes Dovecot's login_user; mailmapd checks the master and the mailbox).",
    `auth_master_user_separator = ${config.master_user_separator}`,
    'passdb {',
    '  driver = checkpassword',
    `  args = ${args}`,
    '  master = yes',
    '}',
    'userdb {',
    '  driver = checkpassword',
    `  args = ${args}`,
    '}',
    "# mailmapd answers from memory and forgets a changed password at once; Dovecot's own",
    '# auth cache would keep an old password working: leave auth_cache_size = 0 (the default).',
    '',
  ];
}

function postfixSection(config: Config): string[] {
  const address = config.auth_listen[0];
  if (address === undefined) {
    return ['# auth_listen is empty: enable it in mailmapd.conf to let Postfix authenticate SMTP clients through mailmapd.', ''];
  }
  const lines = [
    '# ---- Postfix SMTP AUTH: /etc/postfix/main.cf ----',
    '# mailmapd speaks the Dovecot auth-client protocol (PLAIN, LOGIN) itself: Postfix asks it',
    "# directly, in place of Dovecot's `service auth { unix_listener /var/spool/postfix/private/auth }`.",
    '# AUTH itself is switched on in the submission service only (`-o smtpd_sasl_auth_enable=yes`,',
    '# as `mailmapd postfix-config` prints it), not here for every smtpd: an smtpd with AUTH on',
    '# that starts while mailmapd is down (a reboot that brings Postfix up first) exits without',
    "# a greeting, and Postfix's master then holds the whole service back for 60 s — port 25",
    '# would stop answering the mail it should defer.',
    'smtpd_sasl_type = dovecot',
    `smtpd_sasl_path = ${postfixSaslPath(address)}`,
    'smtpd_sasl_security_options = noanonymous',
    'smtpd_tls_auth_only = yes',
  ];
  if (address.kind === 'unix') {
    lines.push(
      ...(address.path.startsWith(postfixQueueDirectory)
        ? [`# The path is relative to Postfix's queue directory, where its chrooted smtpd looks.`]
        : [
            '# Debian runs smtpd chrooted in /var/spool/postfix, where this path does not exist: either',
            '# set auth_listen = unix:/var/spool/postfix/private/mailmapd-auth (the line above then',
            '# becomes private/mailmapd-auth), or use an inet:127.0.0.1:PORT listener.',
          ]),
      ...socketPermissionNote(config, address, 'postfix'),
    );
  }
  const unixAuth = config.auth_listen.find((a) => a.kind === 'unix');
  lines.push(
    unixAuth?.kind === 'unix'
      ? `# Test it: doveadm auth test -a ${unixAuth.path} user@example.org`
      : '# Test it with doveadm auth test -a PATH: doveadm 2.3 connects to UNIX sockets only, so add a unix: address to auth_listen.',
    '',
  );
  return lines;
}

export function dovecotConfig(config: Config, args: string[]): string {
  const opts = parseDovecotConfigArgs(args);
  const sections = [checkpasswordSection(config, opts), dovecotLmtpSection(config), quotaCloneSection(config), postfixSection(config)];
  return [`# Generated by mailmapd dovecot-config from ${config.source}`, '', ...sections.flat()].join('\n');
}
