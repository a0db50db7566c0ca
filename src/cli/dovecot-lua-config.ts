// `mailmapd dovecot-config --lua`: the conf.d snippets that make Dovecot ask this daemon
// through config/dovecot/auth-mailmapd.lua — one for 2.3 (`passdb { driver = lua }`,
// settings through the environment) and one for 2.4 (`passdb lua { lua_file }`, settings
// through lua_settings). The interop tests run each against its Dovecot: 2.3.19 from
// Debian 12, 2.4.1 from Debian 13 in a chroot (scripts/dovecot24-root.sh).

import { fileURLToPath } from 'node:url';
import type { Config } from '../config.js';
import { dovecotLmtpSection } from './dovecot-lmtp-config.js';

/** The script as shipped in the package (dist/cli → ../../config; src/cli alike). */
export const defaultLuaFile = fileURLToPath(new URL('../../config/dovecot/auth-mailmapd.lua', import.meta.url));

export interface LuaConfigOptions {
  /** Where Dovecot finds the script; default: the one in this package. */
  luaFile?: string;
}

/** The daemon's base URL for Dovecot's HTTP client, which speaks TCP only. */
function daemonUrl(config: Config): string | undefined {
  const inet = config.http_listen.find((a) => a.kind === 'inet');
  if (inet === undefined || inet.kind !== 'inet') return undefined;
  const host = inet.host.includes(':') ? `[${inet.host}]` : inet.host;
  return `http://${host}:${inet.port}`;
}

// A Dovecot config value cannot hold a newline, and spaces would split import_environment.
function checkValue(name: string, value: string): string {
  if (/[\s"\\]/.test(value)) throw new Error(`${name} cannot contain spaces, quotes or backslashes for the Dovecot snippet`);
  return value;
}

function noUrlNote(config: Config): string {
  return [
    `# NOTE: http_listen (${config.http_listen.map((a) => a.text).join(', ') || 'empty'}) has no 127.0.0.1:PORT address;`,
    `# Dovecot's Lua HTTP client cannot use a UNIX socket. Add one, e.g. http_listen = 127.0.0.1:9465.`,
  ].join('\n');
}

// The user list names every account: mailmapd gives it only to a client with the secret.
const noSecretNote = "# http_secret is not set: `doveadm user '*'` and `doveadm -A` cannot list users until it is.";

/** Dovecot's mechanisms: the plaintext ones, and the bearer ones when `oauth2_issuer` is set. */
export function mechanisms(config: Config): string {
  return config.oauth2_issuer === '' ? 'plain login' : 'plain login oauthbearer xoauth2';
}

export function dovecotLuaConfig23(config: Config, opts: LuaConfigOptions = {}): string {
  const file = checkValue('the Lua file path', opts.luaFile ?? defaultLuaFile);
  const url = daemonUrl(config);
  const env = [`MAILMAPD_URL=${checkValue('the URL', url ?? 'http://127.0.0.1:9465')}`];
  if (config.http_secret !== '') env.push(`MAILMAPD_HTTP_SECRET=${checkValue('http_secret', config.http_secret)}`);
  return [
    '# Dovecot 2.3 (Debian 12): conf.d/auth-mailmapd.conf.ext, `!include auth-mailmapd.conf.ext`',
    '# from 10-auth.conf in place of the other auth-*.conf.ext. Needs dovecot-auth-lua.',
    ...(url === undefined ? [noUrlNote(config)] : []),
    ...(config.http_secret !== '' ? ['# Holds http_secret: keep this file readable by root and the dovecot group only (0640).'] : [noSecretNote]),
    '',
    '# The script reads its settings from the environment of the auth processes.',
    `import_environment = $import_environment ${env.join(' ')}`,
    '# mailmapd verifies passwords itself: plaintext mechanisms only (and bearer tokens, which the',
    '# oauth2 mechanisms of 2.3 hand to the passdb as the password: mailmapd verifies them too).',
    `auth_mechanisms = ${mechanisms(config)}`,
    '# mailmapd caches verified logins and drops an entry the moment the password changes;',
    "# Dovecot's own cache would keep an old password working until its TTL.",
    'auth_cache_size = 0',
    '',
    'passdb {',
    '  driver = lua',
    `  args = file=${file} blocking=yes`,
    '}',
    '# Master users: `user' + config.master_user_separator + "master` with the master's password logs in as user. The same",
    '# script sees the request as a master one (login_user set) and asks mailmapd accordingly.',
    `auth_master_user_separator = ${config.master_user_separator}`,
    'passdb {',
    '  driver = lua',
    `  args = file=${file} blocking=yes`,
    '  master = yes',
    '}',
    'userdb {',
    '  driver = lua',
    `  args = file=${file} blocking=yes`,
    '}',
    '',
  ].join('\n');
}

export function dovecotLuaConfig24(config: Config, opts: LuaConfigOptions = {}): string {
  const file = checkValue('the Lua file path', opts.luaFile ?? defaultLuaFile);
  const url = daemonUrl(config);
  // 2.4 dropped quota_rule: it ignores the field without a word and the user has no limit.
  const settings = [`    url = ${url ?? 'http://127.0.0.1:9465'}`, '    quota_field = quota_storage_size'];
  if (config.http_secret !== '') settings.push(`    http_secret = ${checkValue('http_secret', config.http_secret)}`);
  const block = (kind: 'passdb' | 'userdb', name = 'lua', extra: string[] = []) => [
    `${kind} ${name} {`,
    ...(name === 'lua' ? [] : ['  driver = lua']),
    ...extra,
    `  lua_file = ${file}`,
    '  # The HTTP request blocks: run the script in auth-worker processes.',
    '  use_worker = yes',
    '  lua_settings {',
    ...settings,
    '  }',
    '}',
  ];
  return [
    '# Dovecot 2.4 (Debian 13): conf.d/auth-mailmapd.conf.ext. Needs dovecot-auth-lua.',
    '# The per-user quota arrives as quota_storage_size, the limit of every quota root.',
    ...(url === undefined ? [noUrlNote(config)] : []),
    ...(config.http_secret !== '' ? ['# Holds http_secret: keep this file readable by root and the dovecot group only (0640).'] : [noSecretNote]),
    '',
    'auth_mechanisms = plain login',
    'auth_cache_size = 0',
    '',
    ...block('passdb'),
    `# Master users: \`user${config.master_user_separator}master\` with the master's password logs in as user.`,
    `auth_master_user_separator = ${config.master_user_separator}`,
    ...block('passdb', 'mailmapd_master', ['  master = yes']),
    ...block('userdb'),
    '',
  ].join('\n');
}

export function dovecotLuaConfig(config: Config, opts: LuaConfigOptions = {}): string {
  return [
    `# mailmapd: Dovecot passdb/userdb through ${opts.luaFile ?? defaultLuaFile}`,
    '# Pick the block for your Dovecot version (`dovecot --version`).',
    '',
    '# ---------------------------------------------------------------- Dovecot 2.3',
    dovecotLuaConfig23(config, opts),
    '# ---------------------------------------------------------------- Dovecot 2.4',
    dovecotLuaConfig24(config, opts),
    ...dovecotLmtpSection(config),
  ].join('\n');
}
