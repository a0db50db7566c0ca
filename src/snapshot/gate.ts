// A Sync that starts the real one only once a decision is made — here: whether the
// snapshot being served belongs to the database that now answers, so that its position is
// resumed from only then. Until the real sync exists it reports itself disconnected and
// not loaded; stop() ends the wait as well.

import { deferred } from '../deferred.js';
import { initialStatus, type SyncStatus } from '../sync/status.js';
import type { Sync, SyncOptions } from '../sync/sync.js';

export type Resume = SyncOptions['resume'];

export function gateSync(
  decide: (signal: AbortSignal) => Promise<Resume | 'stopped'>,
  make: (resume: Resume) => Sync,
  lastError: () => string | undefined,
): Sync {
  let real: Sync | undefined;
  let gate: Promise<void> | undefined;
  const abort = new AbortController();
  const first = deferred();
  return {
    start() {
      gate ??= decide(abort.signal).then(
        (resume) => {
          if (resume === 'stopped' || abort.signal.aborted) return;
          real = make(resume);
          real.start();
          real.firstLoad().then(first.resolve, first.reject);
        },
        (err: Error) => first.reject(err),
      );
    },
    async stop() {
      abort.abort();
      await gate;
      if (real) await real.stop();
      else first.reject(new Error('sync stopped before the first load'));
    },
    status(): SyncStatus {
      return real?.status() ?? { ...initialStatus(), lastError: lastError() };
    },
    inSync: () => real?.inSync() ?? false,
    firstLoad: () => first.promise,
    kick: () => (real ? real.kick() : first.promise.then(() => real!.kick())),
  };
}
