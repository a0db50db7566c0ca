// A Dovecot dict proxy server on `dict_listen`, for the quota-clone plugin: Dovecot 2.3
// (protocol 3) and 2.4 (protocol 4, whose BEGIN also carries an expiry and which may send
// V, hide-log-values). Lines are LF-terminated, fields TAB-separated and tab-escaped, the
// first byte the command. The handshake and the transaction commands (B S U A T V R) get
// no reply; a lookup gets O/N/F, a commit O<id>/F<id>. Only the two keys quota-clone sets
// are kept: priv/quota/storage and priv/quota/messages of the transaction's user. A commit
// hands them to the write-back and is answered at once: no reply waits for PostgreSQL.
// Lookups of anything answer "not found"; whatever else the server does not keep is a
// failure reply naming it, never silence, so Dovecot logs why rather than hanging.

import type { Socket } from 'node:net';
import { createLineSplitter, tabEscape, tabUnescape } from '../authclient/codec.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics.js';
import { endConnection, type ConnectionControl, type ConnectionHandler } from '../net/listener.js';
import type { WritebackMetrics } from '../writeback/metrics.js';

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
/** Replies queued for a client that does not read them. */
const MAX_PENDING_OUT = 65536;
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
function recordWrite(tx: Transaction | undefined, cmd: string, key: string, value: string | undefined): void {
  if (!tx || tx.refused !== undefined) return;
  if (key !== STORAGE_KEY && key !== MESSAGES_KEY) {
    tx.refused = `mailmapd keeps only ${STORAGE_KEY} and ${MESSAGES_KEY} (quota_clone), not ${key.slice(0, 100)}`;
    return;
  }
  if (cmd === 'U') return; // quota-clone's unset=yes: an unset followed by the new value
  if (cmd === 'A') {
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

// Long because it is the per-connection state machine as one closure (the handshake flag,
// the open transactions); each step inside is a short function.
export function createDictHandler(deps: DictDeps): ConnectionHandler {
  const { logger, metrics } = deps;

  return (socket: Socket): ConnectionControl => {
    const splitter = createLineSplitter(deps.maxRequestBytes);
    const transactions = new Map<string, Transaction>();
    let hello = false;
    let dead = false;

    const send = (fields: string[]) => {
      if (dead) return;
      socket.write(fields.map(tabEscape).join('\t') + '\n');
      if (socket.writableLength > MAX_PENDING_OUT) drop('not_reading', 'client does not read its replies');
    };
    /** A failure the client reads, then the end of the connection. */
    const refuse = (reason: string) => {
      if (dead) return;
      metrics.badInput.inc({ listener: LISTENER, reason: 'protocol' });
      logger.warn('dict client: closing connection', { reason });
      socket.write(`F${tabEscape(reason)}\n`);
      dead = true;
      endConnection(socket);
    };
    const drop = (fault: 'line_too_long' | 'not_reading', reason: string) => {
      if (dead) return;
      metrics.badInput.inc({ listener: LISTENER, reason: fault });
      logger.warn('dict client: closing connection', { reason });
      dead = true;
      socket.destroy();
    };

    const handshake = (args: string[]) => {
      const major = Number(args[0]!.slice(1));
      if (args.length < 2 || !(major === 2 || major === 3 || major === 4)) {
        refuse(`mailmapd speaks dict protocol 2, 3 and 4 (Dovecot 2.3, 2.4), not ${JSON.stringify(args[0]!.slice(1, 20))}`);
        return;
      }
      hello = true;
    };

    const commit = (id: string) => {
      const tx = transactions.get(id);
      if (!tx) {
        deps.writebackMetrics.dictCommits.inc({ result: 'fail' });
        send([`F${id}`, 'no such transaction']);
        return;
      }
      transactions.delete(id);
      if (tx.refused !== undefined) {
        deps.writebackMetrics.dictCommits.inc({ result: 'fail' });
        send([`F${id}`, tx.refused]);
        return;
      }
      if (tx.bytes !== undefined || tx.messages !== undefined) {
        const address = deps.mailbox(tx.user);
        if (address === undefined) {
          // Not an error for Dovecot: the user's mail is fine, there is just no row for it here.
          logger.debug('dict: usage of a user who is no mailbox here; not written', { user: tx.user });
        } else {
          deps.usage(address, tx.bytes, tx.messages);
        }
      }
      deps.writebackMetrics.dictCommits.inc({ result: 'ok' });
      send([`O${id}`]);
    };

    const handleLine = (line: string) => {
      if (line === '') return;
      const args = line.split('\t').map(tabUnescape);
      const cmd = line[0]!;
      const first = args[0]!.slice(1);
      if (!hello) {
        if (cmd === 'H') return handshake(args);
        return refuse('expected the dict protocol handshake (H) first');
      }
      switch (cmd) {
        case 'L': {
          // Only the oauth2 keys are read back through this server: anything else is "not found".
          const value = deps.lookup?.(first);
          send(value === undefined ? ['N'] : [`O${value}`]);
          return;
        }
        case 'I':
          send(['Fmailmapd does not iterate dict keys']);
          return;
        case 'B': {
          if (transactions.size >= MAX_TRANSACTIONS) return refuse(`more than ${MAX_TRANSACTIONS} open transactions`);
          const user = args[1] ?? '';
          transactions.set(first, user === '' ? { user, refused: 'a transaction without a user (only priv/ quota keys are kept)' } : { user });
          return;
        }
        case 'S':
        case 'U':
        case 'A':
          return recordWrite(transactions.get(first), cmd, args[1] ?? '', args[2]);
        case 'T':
        case 'V':
          return; // timestamps and log hiding change nothing here
        case 'R':
          transactions.delete(first);
          return;
        case 'C':
        case 'D':
          return commit(first);
        default:
          return refuse(`unknown dict command ${JSON.stringify(cmd)}`);
      }
    };

    socket.on('data', (chunk: Buffer) => {
      if (dead) return;
      const lines = splitter.push(chunk);
      if (lines === undefined) return drop('line_too_long', 'line too long');
      for (const line of lines) {
        if (dead) return;
        handleLine(line);
      }
    });
    socket.once('close', () => {
      dead = true;
      transactions.clear();
    });

    return {
      shutdown() {
        // Every reply is sent as its line is read: nothing is ever in flight.
        if (!dead) {
          dead = true;
          endConnection(socket);
        }
      },
    };
  };
}
