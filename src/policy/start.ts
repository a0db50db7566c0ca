// The daemon's one brute-force limiter, as the config asks for it: off, local, or with its
// failures per login and known sources shared with every host (shared-state.ts, share.ts:
// read back from the database, written by the write-back).

import type { Config } from '../config.js';
import type { Metrics } from '../metrics.js';
import { createLimiter, settingsFrom, type Limiter } from './limiter.js';
import { createLimiterShare, type LimiterShare } from './share.js';
import { createSharedState } from './shared-state.js';

/** `canonical`: the mailbox a login resolves to, so every spelling of it shares one count. */
export function limiterFor(config: Config, metrics: Metrics, canonical: (login: string) => string): { limiter?: Limiter; share?: LimiterShare } {
  if (!config.policy_enabled) return {};
  const settings = settingsFrom(config);
  if (!config.shared_counts) return { limiter: createLimiter(settings, metrics, Date.now, canonical) };
  // A sixth of the limiter's entries each for the shared failures and the known sources.
  const shared = createSharedState({ maxKeys: Math.max(1, Math.floor(config.policy_max_entries / 6)), knownSourceMs: settings.knownSourceMs });
  return {
    limiter: createLimiter(settings, metrics, Date.now, canonical, shared),
    share: createLimiterShare(shared, { windowMs: settings.windowMs, knownSourceMs: settings.knownSourceMs, metrics }),
  };
}
