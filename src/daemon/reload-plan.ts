// What a SIGHUP changes: a pure comparison of the running config with the new one, so the
// rules can be read and tested without a daemon. Applying the plan is listeners.ts's job.

import { configKeys, listenerKeys, type Config, type ConfigKey } from '../config.js';
import type { ListenAddress } from '../net/listen-address.js';

/** Keys a SIGHUP applies without a restart. */
const reloadableKeys: ReadonlySet<ConfigKey> = new Set<ConfigKey>(['log_level', 'recipient_delimiter', ...Object.values(listenerKeys)]);

export interface ReloadPlan {
  /** Changed keys that take effect only after a restart (logged, not applied). */
  restartNeeded: ConfigKey[];
  /** Changed keys that the reload applies. */
  applied: ConfigKey[];
}

const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);

export function planReload(running: Config, next: Config): ReloadPlan {
  const changed = configKeys.filter((k) => !same(running[k], next[k]));
  return {
    restartNeeded: changed.filter((k) => !reloadableKeys.has(k)),
    applied: changed.filter((k) => reloadableKeys.has(k)),
  };
}

export interface AddressChange {
  /** Open addresses no longer wanted, by their text. */
  close: string[];
  /** Wanted addresses not open yet (including ones a previous attempt failed to open). */
  open: ListenAddress[];
}

/** Compares what is open with what the config wants; an address is kept by its text. */
export function diffAddresses(open: readonly string[], wanted: readonly ListenAddress[]): AddressChange {
  const wantedText = new Set(wanted.map((a) => a.text));
  const openText = new Set(open);
  return {
    close: open.filter((t) => !wantedText.has(t)),
    open: wanted.filter((a) => !openText.has(a.text)),
  };
}
