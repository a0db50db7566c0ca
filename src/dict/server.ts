// A Dovecot dict proxy server on `dict_listen`, for the quota-clone plugin, on the
// connection layer (net/connection.ts): Dovecot 2.3 (protocol 3) and 2.4 (protocol 4, whose
// BEGIN also carries an expiry and which may send V, hide-log-values); the wire is
// codec.ts. A connection is `awaiting-hello` until the handshake, then `ready`. The
// handshake and the transaction commands (B S U A T V R) get no reply; a lookup gets O/N/F, a commit O<id>/F<id>. Only the two keys quota-clone sets
// are kept: priv/quota/storage and priv/quota/messages of the transaction's user. A commit
// hands them to the write-back and is answered at once: no reply waits for PostgreSQL.
// Lookups of anything answer "not found"; whatever else the server does not keep is a
// failure reply naming it, never silence, so Dovecot logs why rather than hanging.

import type { Logger } from '../log.js';
import type { Metrics } from '../metrics.js';
import { doorHandler, type Conn, type Protocol } from '../net/connection.js';
import type { ConnectionHandler } from '../net/listener.js';
import { createLineDecoder } from '../net/tab-line.js';
import type { WritebackMetrics } from '../metrics.js';
import { parseDictLine, serializeDictReply, type DictCommand, type DictReply } from './codec.js';

const STORAGE_KEY = 'priv/quota/storage';
const MESSAGES_KEY = 'priv/quota/messages';

export interface DictDeps {
  /** Where committed usage goes (the write-back buffer). */
  /** Counts as the decimal text Dovecot sent: above 2^53 a JS number would change them. */
  usage(address: string, bytes: string | undefined, messages: string | undefined): void;
  /** The mailbox a Dovecot user name belongs to, canonical; undefined: not a mailbox here. */
  mailbox(user: string): string | undefined;
  logger: Logger;
  metrics: Metrics;
  writebackMetrics: WritebackMetrics;
  maxRequestBytes: number;
  /** Values the server answers lookups with (Dovecot 2.4's oauth2 signing keys); absent: none. */
  lookup?: (key: string) => string | undefined;
}

/** Open transactions one connection may hold; quota-clone uses one at a time. */
const MAX_TRANSACTIONS = 64;
const LISTENER = 'dict';

interface Transaction {
  user: string;
  bytes?: string;
  messages?: string;
  /** Why the commit must fail: a write the server does not keep. */
  refused?: string;
}

const count = /^(0|[1-9]\d{0,17})$/;

/** One S, U or A of a transaction: a kept value, or the reason its commit will fail. */
function recordWrite(tx: Transaction | undefined, w: Extract<DictCommand, { kind: 'write' }>): void {
  const { op, key, value } = w;
  if (!tx || tx.refused !== undefined) return;
  if (key !== STORAGE_KEY && key !== MESSAGES_KEY) {
    tx.refused = `mailmapd keeps only ${STORAGE_KEY} and ${MESSAGES_KEY} (quota_clone), not ${key.slice(0, 100)}`;
    return;
  }
  if (op === 'unset') return; // quota-clone's unset=yes: an unset followed by the new value
  if (op === 'inc') {
    tx.refused = 'mailmapd keeps quota-clone values, not atomic increments (use a quota backend such as count)';
    return;
  }
  if (value === undefined || !count.test(value)) {
    tx.refused = `not a count: ${JSON.stringify((value ?? '').slice(0, 40))}`;
    return;
  }
  // Kept as text (at most 18 digits: always a bigint) and handed to PostgreSQL as such.
  if (key === STORAGE_KEY) tx.bytes = value;
  else tx.messages = value;
}

export function createDictHandler(deps: DictDeps): ConnectionHandler {
  return doorHandler<string>({ name: LISTENER, logger: deps.logger, metrics: deps.metrics, open: (conn) => openDict(conn, deps) });
}

// Long because it is the per-connection state machine as one closure (the phase, the open
// transactions); each step inside is a short function.
function openDict(conn: Conn, deps: DictDeps): Protocol<string> {
  const transactions = new Map<string, Transaction>();
  let phase: 'awaiting-hello' | 'ready' = 'awaiting-hello';

  const send = (reply: DictReply) => conn.send(serializeDictReply(reply));
  /** A failure the client reads, then the end of the connection. */
  const refuse = (reason: string) => {
    send({ kind: 'fail', reason });
    conn.refuse('protocol', reason);
  };

  const commit = (id: string) => {
    const tx = transactions.get(id);
    if (!tx) {
      deps.writebackMetrics.dictCommits.inc({ result: 'fail' });
      send({ kind: 'commit-failed', id, reason: 'no such transaction' });
      return;
    }
    transactions.delete(id);
    if (tx.refused !== undefined) {
      deps.writebackMetrics.dictCommits.inc({ result: 'fail' });
      send({ kind: 'commit-failed', id, reason: tx.refused });
      return;
    }
    if (tx.bytes !== undefined || tx.messages !== undefined) {
      const address = deps.mailbox(tx.user);
      if (address === undefined) {
        // Not an error for Dovecot: the user's mail is fine, there is just no row for it here.
        deps.logger.debug('dict: usage of a user who is no mailbox here; not written', { user: tx.user });
      } else {
        deps.usage(address, tx.bytes, tx.messages);
      }
    }
    deps.writebackMetrics.dictCommits.inc({ result: 'ok' });
    send({ kind: 'committed', id });
  };

  const handle = (line: string) => {
    const c = parseDictLine(line);
    if (c.kind === 'empty') return;
    if (phase === 'awaiting-hello') {
      if (c.kind !== 'hello') return refuse('expected the dict protocol handshake (H) first');
      if (c.fields < 2 || !(c.major === 2 || c.major === 3 || c.major === 4)) {
        return refuse(`mailmapd speaks dict protocol 2, 3 and 4 (Dovecot 2.3, 2.4), not ${JSON.stringify(c.version.slice(0, 19))}`);
      }
      phase = 'ready';
      return;
    }
    switch (c.kind) {
      case 'lookup': {
        // Only the oauth2 keys are read back through this server: anything else is "not found".
        const value = deps.lookup?.(c.key);
        return send(value === undefined ? { kind: 'not-found' } : { kind: 'found', value });
      }
      case 'iterate':
        return send({ kind: 'fail', reason: 'mailmapd does not iterate dict keys' });
      case 'begin':
        if (transactions.size >= MAX_TRANSACTIONS) return refuse(`more than ${MAX_TRANSACTIONS} open transactions`);
        transactions.set(c.id, c.user === '' ? { user: c.user, refused: 'a transaction without a user (only priv/ quota keys are kept)' } : { user: c.user });
        return;
      case 'write':
        return recordWrite(transactions.get(c.id), c);
      case 'ignored':
        return; // timestamps and log hiding change nothing here
      case 'rollback':
        transactions.delete(c.id);
        return;
      case 'commit':
        return commit(c.id);
      case 'hello':
      case 'unknown':
        return refuse(`unknown dict command ${JSON.stringify(c.kind === 'hello' ? 'H' : c.command)}`);
    }
  };

  return {
    decoder: createLineDecoder(deps.maxRequestBytes),
    handle,
    closed: () => transactions.clear(),
  };
}
