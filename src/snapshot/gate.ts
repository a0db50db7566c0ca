// A Sync that starts the real one only once a decision is made — here: whether the
// snapshot being served belongs to the database that now answers, so that its position is
// resumed from only then. Until the real sync exists it reports itself disconnected and
// not loaded; stop() ends the wait as well.

import type { Sync, SyncOptions, SyncStatus } from '../sync/sync.js';

export type Resume = SyncOptions['resume'];

export function gateSync(
  decide: (signal: AbortSignal) => Promise<Resume | 'stopped'>,
  make: (resume: Resume) => Sync,
  lastError: () => string | undefined,
): Sync {
  let real: Sync | undefined;
  let gate: Promise<void> | undefined;
  const abort = new AbortController();
  let resolveFirst!: () => void;
  let rejectFirst!: (e: Error) => void;
  const first = new Promise<void>((res, rej) => {
    resolveFirst = res;
    rejectFirst = rej;
  });
  first.catch(() => {});
  return {
    start() {
      gate ??= decide(abort.signal).then(
        (resume) => {
          if (resume === 'stopped' || abort.signal.aborted) return;
          real = make(resume);
          real.start();
          real.firstLoad().then(resolveFirst, rejectFirst);
        },
        (err: Error) => rejectFirst(err),
      );
    },
    async stop() {
      abort.abort();
      await gate;
      if (real) await real.stop();
      else rejectFirst(new Error('sync stopped before the first load'));
    },
    status(): SyncStatus {
      return (
        real?.status() ?? {
          connected: false,
          loaded: false,
          lastSuccess: 0,
          lastError: lastError(),
          fullLoads: 0,
          catchups: 0,
          host: '',
          standby: false,
          lagSeconds: 0,
          lagBytes: 0,
          primaryConnected: false,
        }
      );
    },
    inSync: () => real?.inSync() ?? false,
    firstLoad: () => first,
    kick: () => (real ? real.kick() : first.then(() => real!.kick())),
  };
}
