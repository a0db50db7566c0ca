// Dovecot's tab-line wire, shared by the auth-client and dict doors: LF-terminated lines,
// fields separated by TAB and tab-escaped (\001 → \0011, TAB → \001t, LF → \001n,
// CR → \001r). Bytes in, lines out, with a bound on a line's length: no sockets here.

import type { Decoder, Fault } from './connection.js';

/** Escapes one field value for the wire. */
export function tabEscape(value: string): string {
  return value.replace(/[\x01\t\n\r]/g, (c) => (c === '\x01' ? '\x011' : c === '\t' ? '\x01t' : c === '\n' ? '\x01n' : '\x01r'));
}

/** Undoes tabEscape; an unknown escape keeps the character after \001, as Dovecot does. */
export function tabUnescape(value: string): string {
  if (!value.includes('\x01')) return value;
  return value.replace(/\x01(.?)/gs, (_, c: string) => {
    switch (c) {
      case '1':
        return '\x01';
      case 't':
        return '\t';
      case 'n':
        return '\n';
      case 'r':
        return '\r';
      case '0':
        return '\0';
      default:
        return c;
    }
  });
}

/** One line of escaped fields, LF-terminated. */
export function tabLine(fields: readonly string[]): string {
  return fields.map(tabEscape).join('\t') + '\n';
}

export interface LineSplitter {
  /** The complete lines in `chunk` (with what came before), or undefined once a line passes the bound. */
  push(chunk: Buffer): string[] | undefined;
  /** Bytes of an incomplete line held. */
  readonly pending: number;
}

/**
 * Splits a byte stream into lines with a bound: `push` returns the complete lines, or
 * `undefined` once a line (or a partial one) exceeds `maxBytes`, after which the caller
 * drops the connection.
 */
export function createLineSplitter(maxBytes: number): LineSplitter {
  let pending: Buffer[] = [];
  let pendingBytes = 0;
  return {
    push(chunk) {
      const lines: string[] = [];
      let start = 0;
      for (;;) {
        const nl = chunk.indexOf(0x0a, start);
        if (nl < 0) break;
        const piece = chunk.subarray(start, nl);
        if (pendingBytes + piece.length > maxBytes) return undefined;
        const whole = pendingBytes === 0 ? piece : Buffer.concat([...pending, piece]);
        pending = [];
        pendingBytes = 0;
        lines.push(whole.toString('utf8'));
        start = nl + 1;
      }
      const rest = chunk.subarray(start);
      if (rest.length > 0) {
        if (pendingBytes + rest.length > maxBytes) return undefined;
        pending.push(Buffer.from(rest)); // copied: the socket may reuse its buffer
        pendingBytes += rest.length;
      }
      return lines;
    },
    get pending() {
      return pendingBytes;
    },
  };
}

const LINE_TOO_LONG: Fault = { fault: 'line_too_long', detail: 'line too long' };

/** Lines (without their LF) as a connection layer's Decoder, each at most `maxBytes`. */
export function createLineDecoder(maxBytes: number): Decoder<string> {
  const splitter = createLineSplitter(maxBytes);
  return {
    push(chunk, end, take) {
      const lines = splitter.push(chunk.subarray(0, end));
      if (lines === undefined) return LINE_TOO_LONG;
      for (const line of lines) take(line);
      return undefined;
    },
    get idle() {
      return splitter.pending === 0;
    },
  };
}
