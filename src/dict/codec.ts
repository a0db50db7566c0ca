// Dovecot's dict proxy protocol (2.3's protocol 3, 2.4's protocol 4) as lines in, commands
// out, and replies in, lines out: no sockets here. Lines are the Dovecot tab-line wire
// (net/tab-line.ts); the first byte of a line is the command, the rest of the first field
// its first argument (a transaction id, a key). See protocols.md §5.

import { tabLine, tabUnescape } from '../net/tab-line.js';

export type DictCommand =
  /** `H<major>\t<minor>\t…`: the handshake; no reply. */
  | { kind: 'hello'; version: string; major: number; fields: number }
  /** `L<key>\t<user>`. */
  | { kind: 'lookup'; key: string }
  /** `I…`: an iteration. */
  | { kind: 'iterate' }
  /** `B<tid>\t<user>`: a transaction opens (2.4 adds an expiry). */
  | { kind: 'begin'; id: string; user: string }
  /** `S`, `U`, `A<tid>\t<key>[\t<value>]`: set, unset, atomic increment in a transaction. */
  | { kind: 'write'; op: 'set' | 'unset' | 'inc'; id: string; key: string; value: string | undefined }
  /** `T` (timestamp), `V` (hide-log-values): nothing to keep. */
  | { kind: 'ignored' }
  /** `R<tid>`. */
  | { kind: 'rollback'; id: string }
  /** `C<tid>`, `D<tid>` (async commit). */
  | { kind: 'commit'; id: string }
  /** An empty line: skipped. */
  | { kind: 'empty' }
  | { kind: 'unknown'; command: string };

const writeOps = { S: 'set', U: 'unset', A: 'inc' } as const;

/** Parses one line (without its LF). */
export function parseDictLine(line: string): DictCommand {
  if (line === '') return { kind: 'empty' };
  const args = line.split('\t').map(tabUnescape);
  const cmd = line[0]!;
  const first = args[0]!.slice(1);
  switch (cmd) {
    case 'H':
      return { kind: 'hello', version: first, major: Number(first), fields: args.length };
    case 'L':
      return { kind: 'lookup', key: first };
    case 'I':
      return { kind: 'iterate' };
    case 'B':
      return { kind: 'begin', id: first, user: args[1] ?? '' };
    case 'S':
    case 'U':
    case 'A':
      return { kind: 'write', op: writeOps[cmd], id: first, key: args[1] ?? '', value: args[2] };
    case 'T':
    case 'V':
      return { kind: 'ignored' };
    case 'R':
      return { kind: 'rollback', id: first };
    case 'C':
    case 'D':
      return { kind: 'commit', id: first };
    default:
      return { kind: 'unknown', command: cmd };
  }
}

export type DictReply =
  | { kind: 'not-found' }
  | { kind: 'found'; value: string }
  | { kind: 'fail'; reason: string }
  | { kind: 'committed'; id: string }
  | { kind: 'commit-failed'; id: string; reason: string };

export function serializeDictReply(r: DictReply): string {
  switch (r.kind) {
    case 'not-found':
      return 'N\n';
    case 'found':
      return tabLine([`O${r.value}`]);
    case 'fail':
      return tabLine([`F${r.reason}`]);
    case 'committed':
      return tabLine([`O${r.id}`]);
    case 'commit-failed':
      return tabLine([`F${r.id}`, r.reason]);
  }
}
