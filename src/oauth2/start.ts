// The daemon's OAuth2 side, made from the config: the provider's keys (fetched now, in the
// background — a provider that is down at start only delays the first token login), the
// token verifier the authenticator uses, and the key lookup the dict server answers
// Dovecot 2.4 with. Undefined when `oauth2_issuer` is empty.

import type { Config } from '../config.js';
import type { Logger } from '../log.js';
import { dovecotKeyLookup } from './dovecot-keys.js';
import { createKeySource } from './keys.js';
import { createTokenVerifier, type TokenVerifier } from './verify.js';

export interface OAuth2 {
  verifier: TokenVerifier;
  dovecotKeys: (dictKey: string) => string | undefined;
}

export function oauth2From(config: Config, logger: Logger): OAuth2 | undefined {
  if (config.oauth2_issuer === '') return undefined;
  const keys = createKeySource({ issuer: config.oauth2_issuer, logger });
  void keys.refresh();
  return {
    verifier: createTokenVerifier({
      issuer: config.oauth2_issuer,
      audience: config.oauth2_audience,
      usernameClaim: config.oauth2_username_claim,
      keys,
    }),
    dovecotKeys: dovecotKeyLookup(keys),
  };
}
