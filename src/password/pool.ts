// The hash worker pool: a few worker threads (one per core by default) that verify and
// hash passwords, and a bounded FIFO queue in front of them. When the queue is full a
// verification answers `busy` at once: a login flood turns into fast temporary failures
// instead of a growing backlog and a stalled daemon.

import { availableParallelism } from 'node:os';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics.js';
import { UnknownSchemeError } from './hash.js';
import { MAX_PASSWORD_BYTES, type VerifyOutcome } from './verify.js';
import type { WorkerReply, WorkerRequest } from './worker.js';

export type VerifyResult = 'ok' | 'mismatch' | 'bad_hash' | 'busy';

export type PoolOutcome = VerifyOutcome | { result: 'busy'; scheme: string; reason: string };

/** checkAny(): the index of the first hash the password matches (-1: none), or busy. */
export type AnyOutcome =
  | { result: 'done'; index: number; scheme: string; bad: Array<{ index: number; scheme: string; reason: string }> }
  | { result: 'busy'; reason: string };

export interface HashPool {
  verify(password: string, stored: string): Promise<VerifyResult>;
  /** verify() with the scheme and, for bad_hash, a reason safe to log (it never quotes the hash). */
  check(password: string, stored: string): Promise<PoolOutcome>;
  /** One job checking the hashes in order up to the first match (cheap ones first keeps it cheap). */
  checkAny(password: string, stored: string[]): Promise<AnyOutcome>;
  /** `{SCHEME}hash`; rejects with BusyError when the queue is full, UnknownSchemeError for a bad scheme. */
  hash(password: string, scheme: string): Promise<string>;
  close(): Promise<void>;
  /** Jobs the workers have finished: tests use it to prove a cache hit hashed nothing. */
  readonly completed: number;
}

export interface HashPoolOptions {
  /** 0 = one per core. */
  workers: number;
  /** Jobs that may wait for a worker; one more is refused. */
  queueLimit: number;
  defaultScheme: string;
  metrics: Metrics;
  logger: Logger;
}

export class BusyError extends Error {
  constructor() {
    super('password hashing is overloaded, try again later');
  }
}

interface Job {
  req: WorkerRequest;
  settle(reply: WorkerReply | undefined): void;
}

interface Slot {
  worker: Worker;
  job: Job | undefined;
  ready: boolean;
}

/** dist/password/worker.js; tests import the TypeScript, whose built copy lives in dist/. */
function workerFile(): URL {
  const here = new URL('./worker.js', import.meta.url);
  if (!import.meta.url.endsWith('.ts') && existsSync(fileURLToPath(here))) return here;
  return new URL('../../dist/password/worker.js', import.meta.url);
}

// Long because it is a closure holding the module's private state; the functions inside
// it are short and each does one thing.
export function createHashPool(opts: HashPoolOptions): HashPool {
  const { metrics, logger } = opts;
  const size = opts.workers > 0 ? opts.workers : availableParallelism();
  const file = workerFile();
  const queue: Job[] = [];
  const slots: Slot[] = [];
  let nextId = 1;
  let completed = 0;
  let closing = false;
  let warnedFallback = false;
  let failuresInARow = 0;

  const depth = () => metrics.hashQueueDepth.set(queue.length);

  const spawn = (): Slot => {
    const worker = new Worker(file, { workerData: { defaultScheme: opts.defaultScheme } });
    worker.unref(); // idle workers never keep a CLI or a test alive; ref'd while busy
    const slot: Slot = { worker, job: undefined, ready: false };
    worker.on('message', (reply: WorkerReply) => {
      if (reply.type === 'ready') {
        slot.ready = true;
        failuresInARow = 0;
        if (!reply.native && !warnedFallback) {
          warnedFallback = true;
          logger.warn('native crypt binding not built: using the slow pure-JavaScript SHA/MD5-CRYPT and no bcrypt; run `npm run build` with gcc installed', {});
        }
        return;
      }
      const job = slot.job;
      if (job === undefined || job.req.id !== reply.id) return;
      slot.job = undefined;
      worker.unref();
      completed++;
      job.settle(reply);
      dispatch();
    });
    worker.on('error', (err) => logger.error('hash worker failed', { error: err.message }));
    worker.on('exit', (code) => {
      const i = slots.indexOf(slot);
      if (i >= 0) slots.splice(i, 1);
      slot.job?.settle(undefined);
      if (closing) return;
      if (!slot.ready) failuresInARow++;
      logger.error('hash worker exited, restarting', { code });
      // A worker that cannot even start (missing dist/) must not spin: back off, and fail
      // the waiting logins as temporary errors rather than leave them hanging.
      if (failuresInARow >= 3) for (const job of queue.splice(0)) job.settle(undefined);
      depth();
      const t = setTimeout(
        () => {
          if (closing) return;
          slots.push(spawn());
          dispatch();
        },
        Math.min(5000, 50 * 2 ** failuresInARow),
      );
      t.unref();
    });
    return slot;
  };

  const dispatch = () => {
    for (const slot of slots) {
      if (queue.length === 0) break;
      if (slot.job !== undefined) continue;
      const job = queue.shift()!;
      slot.job = job;
      slot.worker.ref();
      slot.worker.postMessage(job.req);
    }
    depth();
  };

  /** Queues a job, or returns false when the queue is full. */
  const submit = (req: WorkerRequest, settle: Job['settle']): boolean => {
    if (closing) return false;
    const idle = slots.some((s) => s.job === undefined);
    if (!idle && queue.length >= opts.queueLimit) {
      metrics.hashRejected.inc();
      return false;
    }
    queue.push({ req, settle });
    dispatch();
    return true;
  };

  for (let i = 0; i < size; i++) slots.push(spawn());

  const check = (password: string, stored: string): Promise<PoolOutcome> => {
    // Too long to be a real password: refuse before copying it to a worker.
    if (Buffer.byteLength(password, 'utf8') > MAX_PASSWORD_BYTES) return Promise.resolve({ result: 'mismatch', scheme: 'unknown' });
    return new Promise((resolve) => {
      const ok = submit({ id: nextId++, op: 'verify', password, stored }, (reply) => {
        if (reply?.type !== 'verified') {
          resolve({ result: 'busy', scheme: 'unknown', reason: 'hash worker unavailable' });
          return;
        }
        metrics.verifications.inc({ scheme: reply.scheme, result: reply.result });
        resolve(
          reply.reason === undefined ? { result: reply.result, scheme: reply.scheme } : { result: reply.result, scheme: reply.scheme, reason: reply.reason },
        );
      });
      if (!ok) resolve({ result: 'busy', scheme: 'unknown', reason: 'hash queue full' });
    });
  };

  const checkAny = (password: string, stored: string[]): Promise<AnyOutcome> => {
    if (Buffer.byteLength(password, 'utf8') > MAX_PASSWORD_BYTES || stored.length === 0)
      return Promise.resolve({ result: 'done', index: -1, scheme: 'unknown', bad: [] });
    return new Promise((resolve) => {
      const ok = submit({ id: nextId++, op: 'verifyAny', password, stored }, (reply) => {
        if (reply?.type !== 'verifiedAny') {
          resolve({ result: 'busy', reason: 'hash worker unavailable' });
          return;
        }
        metrics.verifications.inc({ scheme: reply.scheme, result: reply.index >= 0 ? 'ok' : 'mismatch' });
        resolve({ result: 'done', index: reply.index, scheme: reply.scheme, bad: reply.bad });
      });
      if (!ok) resolve({ result: 'busy', reason: 'hash queue full' });
    });
  };

  return {
    check,
    checkAny,
    verify: async (password, stored) => (await check(password, stored)).result,
    hash(password, scheme) {
      return new Promise((resolve, reject) => {
        const ok = submit({ id: nextId++, op: 'hash', password, scheme }, (reply) => {
          if (reply?.type === 'hashed') resolve(reply.hash);
          else if (reply?.type === 'failed') reject(reply.unknownScheme ? new UnknownSchemeError(reply.message) : new Error(reply.message));
          else reject(new BusyError());
        });
        if (!ok) reject(new BusyError());
      });
    },
    async close() {
      closing = true;
      for (const job of queue.splice(0)) job.settle(undefined);
      depth();
      await Promise.all(slots.map((s) => s.worker.terminate()));
    },
    get completed() {
      return completed;
    },
  };
}
