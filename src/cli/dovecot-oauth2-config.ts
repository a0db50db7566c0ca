// `mailmapd dovecot-config --oauth2`: what Dovecot needs for IMAP, POP3 and submission logins
// with bearer tokens. The two versions differ in who checks the token:
// - 2.3's oauthbearer and xoauth2 mechanisms hand the token to the passdb as the password,
//   so with the Lua door (`--lua`) mailmapd verifies it like any login: only the mechanism
//   list changes. Dovecot's checkpassword passdb refuses a user plus password over 512 bytes
//   before it runs the program, and a token is larger: the checkpassword door cannot carry one.
// - 2.4's mechanisms check the token themselves (`oauth2 { introspection_mode = local }`) and
//   look the provider's public keys up in a dict; mailmapd's dict_listen answers those keys
//   from the provider's JWKS (oauth2/dovecot-keys.ts), and the Lua userdb refuses a disabled
//   account. 2.4 has no EdDSA: such tokens work over SMTP AUTH (mailmapd) only.

import type { Config } from '../config.js';
import { mechanisms } from './dovecot-lua-config.js';

/** Dovecot 2.4's lines; `dictPath` is the dict socket as Dovecot sees it (default: dict_listen's). */
export function dovecotOauth2Config24(config: Config, dictPath?: string): string[] {
  const dict = config.dict_listen.find((a) => a.kind === 'unix');
  const path = dictPath ?? (dict?.kind === 'unix' ? dict.path : '/run/mailmapd/dict');
  return [
    `auth_mechanisms = ${mechanisms(config)}`,
    'oauth2 {',
    '  introspection_mode = local',
    `  issuers = ${config.oauth2_issuer}`,
    '  # The audience every token must carry. Dovecot takes client_id only with a client_secret,',
    '  # which local validation never sends anywhere: any value does.',
    `  client_id = ${config.oauth2_audience}`,
    '  client_secret = unused-by-local-validation',
    `  username_attribute = ${config.oauth2_username_claim}`,
    "  # The provider's signing keys, served by mailmapd from its JWKS (kept fresh on rotation).",
    '  oauth2_local_validation {',
    '    dict proxy {',
    `      dict_proxy_socket_path = ${path}`,
    '      dict_proxy_name = oauth2',
    '    }',
    '  }',
    '}',
    ...(dictPath !== undefined || dict?.kind === 'unix'
      ? []
      : [
          "# NOTE: dict_listen has no unix: address; Dovecot's dict client connects to UNIX sockets only.",
          '# Set dict_listen = unix:/run/mailmapd/dict in mailmapd.conf.',
        ]),
  ];
}

export function dovecotOauth2Config(config: Config): string {
  if (config.oauth2_issuer === '') {
    return '# oauth2_issuer is not set in mailmapd.conf: set oauth2_issuer and oauth2_audience first.\n';
  }
  return [
    `# mailmapd: bearer-token logins (issuer ${config.oauth2_issuer}, audience ${config.oauth2_audience})`,
    '# Add to the Lua snippet of `mailmapd dovecot-config --lua`.',
    '',
    '# ---------------------------------------------------------------- Dovecot 2.3',
    `auth_mechanisms = ${mechanisms(config)}`,
    '# The token reaches the Lua passdb as the password; mailmapd verifies it (signature, iss, aud,',
    '# exp, nbf) and resolves the claim like a login. Not with checkpassword: Dovecot refuses a',
    '# password over 512 bytes before running the program.',
    '',
    '# ---------------------------------------------------------------- Dovecot 2.4',
    ...dovecotOauth2Config24(config),
    '',
  ].join('\n');
}
