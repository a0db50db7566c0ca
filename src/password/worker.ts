// One hash worker thread: verifies and hashes passwords for pool.ts, one job at a time, so
// that crypt(3), argon2 and PBKDF2 never run on the daemon's event loop.

import { parentPort, workerData } from 'node:worker_threads';
import { hashPassword, UnknownSchemeError } from './hash.js';
import { cryptBackend } from './native.js';
import { verifyPassword } from './verify.js';

export type WorkerRequest =
  | { id: number; op: 'verify'; password: string; stored: string }
  /** One password against several hashes, in order, up to the first match: one round trip. */
  | { id: number; op: 'verifyAny'; password: string; stored: string[] }
  | { id: number; op: 'hash'; password: string; scheme: string };

export type WorkerReply =
  | { type: 'ready'; native: boolean }
  | { type: 'verified'; id: number; result: 'ok' | 'mismatch' | 'bad_hash'; scheme: string; reason?: string }
  | { type: 'verifiedAny'; id: number; index: number; scheme: string; bad: Array<{ index: number; scheme: string; reason: string }> }
  | { type: 'hashed'; id: number; hash: string }
  | { type: 'failed'; id: number; unknownScheme: boolean; message: string };

const port = parentPort;
if (port === null) throw new Error('worker.ts runs only as a worker thread');
const defaultScheme = (workerData as { defaultScheme: string }).defaultScheme;
const send = (reply: WorkerReply) => port.postMessage(reply);

port.on('message', (req: WorkerRequest) => {
  if (req.op === 'verify') {
    void verifyPassword(req.password, req.stored, defaultScheme).then((out) => send({ type: 'verified', id: req.id, ...out }));
    return;
  }
  if (req.op === 'verifyAny') {
    void verifyAny(req.password, req.stored).then((out) => send({ type: 'verifiedAny', id: req.id, ...out }));
    return;
  }
  hashPassword(req.password, req.scheme).then(
    (hash) => send({ type: 'hashed', id: req.id, hash }),
    (err: unknown) =>
      send({ type: 'failed', id: req.id, unknownScheme: err instanceof UnknownSchemeError, message: err instanceof Error ? err.message : 'hashing failed' }),
  );
});

async function verifyAny(
  password: string,
  stored: string[],
): Promise<{ index: number; scheme: string; bad: Array<{ index: number; scheme: string; reason: string }> }> {
  const bad: Array<{ index: number; scheme: string; reason: string }> = [];
  let scheme = 'unknown';
  for (let i = 0; i < stored.length; i++) {
    const out = await verifyPassword(password, stored[i]!, defaultScheme);
    if (i === 0) scheme = out.scheme;
    if (out.result === 'ok') return { index: i, scheme: out.scheme, bad };
    if (out.result === 'bad_hash') bad.push({ index: i, scheme: out.scheme, reason: out.reason ?? 'cannot be checked' });
  }
  return { index: -1, scheme, bad };
}

send({ type: 'ready', native: cryptBackend.native });
