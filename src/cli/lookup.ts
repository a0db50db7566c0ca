// `mailmapd lookup MAP KEY`: asks the running daemon over its first socketmap listener,
// exactly as Postfix would, and prints the value. Exit codes follow the contract: 0 found,
// 1 not found, 75 temporary (a TEMP answer, or the daemon unreachable), 2 usage.

import { connect, type Socket } from 'node:net';
import type { Config } from '../config.js';
import type { ListenAddress } from '../net/listen-address.js';
import { createNetstringDecoder, encodeNetstring } from '../socketmap/netstring.js';
import { MAX_REPLY_BYTES } from '../socketmap/server.js';

const USAGE =
  'usage: mailmapd lookup MAP KEY   (MAP: domains, mailboxes, aliases, senders, transport, relay_domains, relay_recipients, sender_relayhost, sender_relay_credentials, sender_bcc, recipient_bcc)';
/** Postfix waits 100 s; a person at a terminal wants to know sooner. */
const TIMEOUT_MS = 10_000;

type Reply = { kind: 'reply'; payload: string } | { kind: 'error'; message: string };

/** Sends one request and resolves with the reply payload; never rejects. */
function socketmapRequest(address: ListenAddress, request: string, timeoutMs = TIMEOUT_MS): Promise<Reply> {
  return new Promise((resolve) => {
    let settled = false;
    const socket: Socket = address.kind === 'unix' ? connect({ path: address.path }) : connect({ host: address.host, port: address.port });
    const settle = (r: Reply) => {
      if (settled) return;
      settled = true;
      socket.destroy();
      resolve(r);
    };
    const decoder = createNetstringDecoder(MAX_REPLY_BYTES + 64, (buf, start, end) => {
      settle({ kind: 'reply', payload: buf.toString('utf8', start, end) });
    });
    socket.setTimeout(timeoutMs, () => settle({ kind: 'error', message: `no answer from ${address.text} within ${timeoutMs / 1000} s` }));
    socket.on('connect', () => socket.write(encodeNetstring(request)));
    socket.on('data', (chunk: Buffer) => {
      const err = decoder.push(chunk);
      if (err !== undefined) settle({ kind: 'error', message: `malformed reply from ${address.text} (${err})` });
    });
    socket.on('error', (err: NodeJS.ErrnoException) =>
      settle({ kind: 'error', message: `cannot reach the daemon at ${address.text}: ${err.code ?? err.message}` }),
    );
    socket.on('close', () => settle({ kind: 'error', message: `${address.text} closed the connection without an answer` }));
  });
}

export async function lookupCommand(config: Config, args: string[], out: (s: string) => void): Promise<number> {
  const [map, key, ...extra] = args;
  if (map === undefined || key === undefined || extra.length > 0 || map === '' || /[\s:]/.test(map)) {
    process.stderr.write(`${USAGE}\n`);
    return 2;
  }
  const address = config.socketmap_listen[0];
  if (address === undefined) {
    process.stderr.write('mailmapd: socketmap_listen is empty: there is no daemon listener to ask\n');
    return 2;
  }
  const reply = await socketmapRequest(address, `${map} ${key}`);
  if (reply.kind === 'error') {
    process.stderr.write(`mailmapd: ${reply.message}\n`);
    return 75;
  }
  const p = reply.payload;
  if (p.startsWith('OK ') && p.length > 3) {
    out(p.slice(3));
    return 0;
  }
  if (p === 'NOTFOUND' || p.startsWith('NOTFOUND ')) return 1;
  // TEMP, TIMEOUT, PERM and anything else: Postfix defers on all of them, so do we.
  process.stderr.write(`mailmapd: ${map} ${JSON.stringify(key)}: ${p}\n`);
  return 75;
}
