// One small directory that exercises every rule of the socketmap contract, the answers the
// contract requires for it (written out by hand, not computed by the code under test), and
// a socketmap listener over it started the way the daemon starts one.

import { connect, type Socket } from 'node:net';
import { createDirectory, emptyData, type Directory, type DirectoryData } from '../../src/directory/directory.js';
import type { ListenAddress } from '../../src/net/listen-address.js';
import { silentLogger, type Logger } from '../../src/log.js';
import { createMetrics, type Metrics } from '../../src/metrics.js';
import { listen, type Listener } from '../../src/net/listener.js';
import { createSocketmapHandler } from '../../src/socketmap/server.js';

/** Destinations of `huge@example.org`: one more byte and `OK <value>` exceeds Postfix's 100000. */
export const atLimit = fill('edge', 100_000 - 3);
export const overLimit = fill('huge', 100_001 - 3);

function fill(prefix: string, bytes: number): string {
  const parts: string[] = [];
  let len = -1;
  for (let i = 0; len + 1 + `${prefix}${i}@example.net`.length <= bytes; i++) {
    parts.push(`${prefix}${i}@example.net`);
    len += 1 + parts[parts.length - 1]!.length;
  }
  // Pad the last local part so the total is exact.
  const missing = bytes - len;
  parts[parts.length - 1] = `${prefix}${'x'.repeat(missing)}${parts[parts.length - 1]!.slice(prefix.length)}`;
  const s = parts.join(',');
  if (Buffer.byteLength(s) !== bytes) throw new Error('fixture arithmetic');
  return s;
}

export function fixtureData(): DirectoryData {
  const d = emptyData();
  d.domains.set('example.org', true);
  d.domains.set('example.net', true);
  d.domains.set('inactive.test', false);
  d.aliasDomains.set('alias.test', { target: 'example.org', active: true });
  d.aliasDomains.set('oldalias.test', { target: 'example.org', active: false });
  const mb = (active: boolean) => ({ password: '{PLAIN}x', quotaBytes: 0, active });
  d.mailboxes.set('alice@example.org', mb(true));
  d.mailboxes.set('bob@example.org', mb(false));
  d.mailboxes.set('carol@inactive.test', mb(true));
  d.mailboxes.set('dave@example.net', mb(true));
  d.mailboxes.set('jörg@example.org', mb(true));
  d.aliases.set('info@example.org', 'alice@example.org,dave@example.net');
  d.aliases.set('sales+eu@example.org', 'dave@example.net');
  d.aliases.set('old@inactive.test', 'alice@example.org');
  d.aliases.set('@example.net', 'alice@example.org');
  d.aliases.set('edge@example.org', atLimit);
  d.aliases.set('huge@example.org', overLimit);
  d.routes.set('relay_domain:relay.example', 'smtp:[mx.relay.example]');
  d.routes.set('sender_relayhost:alice@example.org', '[smtp.example.net]:587');
  d.routes.set('sender_credentials:alice@example.org', 'alice:relay-pw');
  return d;
}

/** A map name, a key (bytes allowed), and the reply payload the contract requires. */
export interface Case {
  map: string;
  key: string | Buffer;
  /** Exact payload, or `TEMP` meaning any `TEMP <reason>`. */
  reply: string;
  rule: string;
}

const ok = (v: string) => `OK ${v}`;
const NF = 'NOTFOUND ';

export const cases: Case[] = [
  // domains
  { map: 'domains', key: 'example.org', reply: ok('example.org'), rule: 'active domain' },
  { map: 'domains', key: 'EXAMPLE.Org', reply: ok('example.org'), rule: 'case folded' },
  { map: 'domains', key: 'alias.test', reply: ok('alias.test'), rule: 'active alias domain' },
  { map: 'domains', key: 'oldalias.test', reply: NF, rule: 'inactive alias domain' },
  { map: 'domains', key: 'inactive.test', reply: NF, rule: 'inactive domain' },
  { map: 'domains', key: 'nowhere.test', reply: NF, rule: 'unknown domain' },
  { map: 'domains', key: '[1.2.3.4]', reply: NF, rule: 'address literal' },
  { map: 'domains', key: '*', reply: NF, rule: 'odd key *' },
  { map: 'domains', key: '', reply: NF, rule: 'empty key' },
  // mailboxes
  { map: 'mailboxes', key: 'alice@example.org', reply: ok('example.org/alice/'), rule: 'active mailbox' },
  { map: 'mailboxes', key: 'Alice@Example.ORG', reply: ok('example.org/alice/'), rule: 'case folded' },
  { map: 'mailboxes', key: 'alice+tag@example.org', reply: ok('example.org/alice/'), rule: 'extension stripped' },
  { map: 'mailboxes', key: 'jörg@example.org', reply: ok('example.org/jörg/'), rule: 'UTF-8 local part' },
  { map: 'mailboxes', key: 'bob@example.org', reply: NF, rule: 'inactive mailbox' },
  { map: 'mailboxes', key: 'carol@inactive.test', reply: NF, rule: 'mailbox in an inactive domain' },
  { map: 'mailboxes', key: 'nobody@example.org', reply: NF, rule: 'unknown mailbox' },
  { map: 'mailboxes', key: '"alice"@example.org', reply: NF, rule: 'quoted local part' },
  {
    map: 'mailboxes',
    key: Buffer.from([0x61, 0x6c, 0xff, 0xfe, 0x40, 0x65, 0x78, 0x61, 0x6d, 0x70, 0x6c, 0x65, 0x2e, 0x6f, 0x72, 0x67]),
    reply: NF,
    rule: 'non-UTF-8 bytes',
  },
  // aliases
  { map: 'aliases', key: 'info@example.org', reply: ok('alice@example.org,dave@example.net'), rule: 'alias' },
  { map: 'aliases', key: 'Info@EXAMPLE.org', reply: ok('alice@example.org,dave@example.net'), rule: 'case folded (cleanup keeps case)' },
  { map: 'aliases', key: 'sales+eu@example.org', reply: ok('dave@example.net'), rule: 'exact address with extension first' },
  { map: 'aliases', key: 'info+x@example.org', reply: ok('alice+x@example.org,dave+x@example.net'), rule: 'extension removed, then propagated' },
  { map: 'aliases', key: 'alice@example.org', reply: ok('alice@example.org'), rule: 'a mailbox answers with itself' },
  { map: 'aliases', key: 'dave@example.net', reply: ok('dave@example.net'), rule: 'catch-all never swallows a real mailbox' },
  { map: 'aliases', key: 'anyone@example.net', reply: ok('alice@example.org'), rule: 'catch-all' },
  { map: 'aliases', key: '"quoted user"@example.net', reply: ok('alice@example.org'), rule: 'quoted local part reaches the catch-all' },
  {
    map: 'aliases',
    key: Buffer.from([0xff, 0xfe, 0x40, ...Buffer.from('example.net')]),
    reply: ok('alice@example.org'),
    rule: 'non-UTF-8 bytes reach the catch-all',
  },
  { map: 'aliases', key: 'alice@alias.test', reply: ok('alice@example.org'), rule: 'alias domain rewritten to its target' },
  { map: 'aliases', key: 'info@alias.test', reply: ok('info@example.org'), rule: 'alias domain rewritten (Postfix expands again)' },
  { map: 'aliases', key: 'nobody@alias.test', reply: NF, rule: 'alias domain, nothing at the target' },
  { map: 'aliases', key: 'alice@oldalias.test', reply: NF, rule: 'inactive alias domain' },
  { map: 'aliases', key: 'bob@example.org', reply: NF, rule: 'inactive mailbox' },
  { map: 'aliases', key: 'old@inactive.test', reply: NF, rule: 'alias in an inactive domain' },
  { map: 'aliases', key: 'example.org', reply: NF, rule: 'bare domain (virtual_alias_domains)' },
  { map: 'aliases', key: '[1.2.3.4]', reply: NF, rule: 'address literal' },
  { map: 'aliases', key: '*', reply: NF, rule: 'odd key *' },
  { map: 'aliases', key: '', reply: NF, rule: 'empty key' },
  { map: 'aliases', key: 'edge@example.org', reply: ok(atLimit), rule: 'reply of exactly 100000 bytes' },
  { map: 'aliases', key: 'huge@example.org', reply: 'TEMP', rule: 'reply over 100000 bytes' },
  // senders
  { map: 'senders', key: 'alice@example.org', reply: ok('alice@example.org'), rule: 'mailbox sends as itself' },
  { map: 'senders', key: 'ALICE+tag@example.org', reply: ok('alice@example.org'), rule: 'extension and case' },
  { map: 'senders', key: 'info@example.org', reply: ok('alice@example.org,dave@example.net'), rule: 'alias owners' },
  { map: 'senders', key: 'alice@alias.test', reply: ok('alice@example.org'), rule: 'alias domain' },
  { map: 'senders', key: 'anyone@example.net', reply: NF, rule: 'catch-all owner may not send as everyone' },
  { map: 'senders', key: 'bob@example.org', reply: NF, rule: 'inactive mailbox' },
  { map: 'senders', key: '', reply: NF, rule: 'empty key' },
  // unknown map
  { map: 'nosuchmap', key: 'alice@example.org', reply: 'TEMP', rule: 'unknown map name' },
];

export const keyBytes = (k: string | Buffer): Buffer => (typeof k === 'string' ? Buffer.from(k, 'utf8') : k);

export const request = (map: string, key: string | Buffer): Buffer => {
  const payload = Buffer.concat([Buffer.from(`${map} `, 'latin1'), keyBytes(key)]);
  return Buffer.concat([Buffer.from(`${payload.length}:`), payload, Buffer.from(',')]);
};

export function replyMatches(actual: string, expected: string): boolean {
  return expected === 'TEMP' ? /^TEMP \S/.test(actual) : actual === expected;
}

export interface Server {
  directory: Directory;
  metrics: Metrics;
  listener: Listener;
  port: number;
  close(): Promise<void>;
}

export async function startSocketmap(
  opts: { loaded?: boolean; maxRequestBytes?: number; address?: ListenAddress; logger?: Logger; maxConnections?: number } = {},
): Promise<Server> {
  const directory = createDirectory({ recipientDelimiter: '+' });
  if (opts.loaded !== false) directory.replaceAll(fixtureData());
  const metrics = createMetrics(true);
  const handler = createSocketmapHandler({ directory, logger: opts.logger ?? silentLogger, metrics, maxRequestBytes: opts.maxRequestBytes ?? 4096 });
  const address: ListenAddress = opts.address ?? { kind: 'inet', host: '127.0.0.1', port: 0, text: 'inet:127.0.0.1:0' };
  const listener = await listen(
    address,
    'socketmap',
    handler,
    { maxConnections: opts.maxConnections ?? 100, idleTimeoutMs: 30_000 },
    { mode: 0o660, group: '' },
    opts.logger ?? silentLogger,
  );
  return { directory, metrics, listener, port: listener.port ?? 0, close: () => listener.close(1000) };
}

/** A raw client: collects reply payloads in order and notices when the server closes. */
export interface RawClient {
  socket: Socket;
  replies: string[];
  closed: Promise<void>;
  isClosed(): boolean;
  send(bytes: Buffer | string): void;
  /** Resolves once `n` replies arrived in total. */
  waitReplies(n: number, ms?: number): Promise<string[]>;
}

export async function rawClient(target: { port: number } | { path: string }): Promise<RawClient> {
  const socket = 'port' in target ? connect({ host: '127.0.0.1', port: target.port }) : connect({ path: target.path });
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  socket.on('error', () => {});
  const replies: string[] = [];
  let buffered = Buffer.alloc(0);
  let isClosed = false;
  const closed = new Promise<void>((resolve) =>
    socket.once('close', () => {
      isClosed = true;
      resolve();
    }),
  );
  socket.on('data', (chunk: Buffer) => {
    buffered = Buffer.concat([buffered, chunk]);
    for (;;) {
      const colon = buffered.indexOf(0x3a);
      if (colon < 0) return;
      const len = Number(buffered.toString('latin1', 0, colon));
      if (buffered.length < colon + 2 + len) return;
      if (buffered[colon + 1 + len] !== 0x2c) throw new Error('server sent a malformed netstring');
      replies.push(buffered.toString('utf8', colon + 1, colon + 1 + len));
      buffered = buffered.subarray(colon + 2 + len);
    }
  });
  return {
    socket,
    replies,
    closed,
    isClosed: () => isClosed,
    send: (b) => socket.write(b),
    async waitReplies(n, ms = 5000) {
      const t0 = Date.now();
      while (replies.length < n) {
        if (isClosed) throw new Error(`connection closed after ${replies.length} of ${n} replies`);
        if (Date.now() - t0 > ms) throw new Error(`only ${replies.length} of ${n} replies after ${ms} ms`);
        await new Promise((r) => setTimeout(r, 2));
      }
      return replies;
    },
  };
}
