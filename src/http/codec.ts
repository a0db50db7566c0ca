// HTTP/1.1 as the daemon's clients speak it, bytes in and bytes out, no sockets: a request
// head is framed and parsed (request line, header fields, Content-Length), a reply head
// and chunked pieces are encoded. The clients are Dovecot's auth policy and Lua HTTP
// clients, Prometheus and curl: requests with a known length and small heads. What falls
// outside that is refused rather than guessed at: a head over MAX_HEADER_BYTES (431),
// Transfer-Encoding on a request (501: no chunked request bodies, so no framing to get
// wrong), obsolete line folding, conflicting Content-Length, bare LF line ends (400).

import { STATUS_CODES } from 'node:http';

/** Largest request head (request line and header fields); Dovecot's are < 1 KiB. */
export const MAX_HEADER_BYTES = 8192;

export interface RequestHead {
  method: string;
  /** The request target as sent: origin form (`/path?query`). */
  target: string;
  /** Header fields by lower-case name; a repeated field keeps its first value. */
  headers: Record<string, string>;
  /** Bytes of the head, including the blank line that ends it. */
  headBytes: number;
  /** Bytes of the body that follows (Content-Length, 0 without). */
  bodyBytes: number;
  /** False when the client asked to close after this request (HTTP/1.0 or `Connection: close`). */
  keepAlive: boolean;
}

/** A request that cannot be served: its status, and the connection closes after it. */
export interface HeadError {
  error: 400 | 431 | 501;
}

const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const REQUEST_LINE = /^([!#$%&'*+.^_`|~0-9A-Za-z-]+) (\S+) HTTP\/1\.([01])$/;

/** The head at the start of `buf`: parsed, an error, or undefined while it is incomplete. */
export function parseRequestHead(buf: Buffer): RequestHead | HeadError | undefined {
  const end = buf.indexOf('\r\n\r\n');
  if (end < 0 || end + 4 > MAX_HEADER_BYTES) return buf.length >= MAX_HEADER_BYTES ? { error: 431 } : undefined;
  // latin1: one char per byte, so nothing a client sends is reinterpreted; field values
  // are ASCII in practice and routes compare them as such.
  const lines = buf.toString('latin1', 0, end).split('\r\n');
  const requestLine = REQUEST_LINE.exec(lines[0] ?? '');
  if (!requestLine) return { error: 400 };
  const headers: Record<string, string> = {};
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(':');
    const name = colon > 0 ? line.slice(0, colon) : '';
    const value = line.slice(colon + 1).replace(/^[ \t]+|[ \t]+$/g, '');
    // No name (this includes obs-fold's leading whitespace), or a control character.
    if (!TOKEN.test(name) || /[\0-\x08\n-\x1f\x7f]/.test(value)) return { error: 400 };
    const key = name.toLowerCase();
    if (key === 'content-length' && key in headers && headers[key] !== value) return { error: 400 };
    headers[key] ??= value;
  }
  if ('transfer-encoding' in headers) return { error: 501 };
  const length = headers['content-length'];
  if (length !== undefined && !/^\d{1,15}$/.test(length)) return { error: 400 };
  const connection = (headers.connection ?? '').toLowerCase();
  return {
    method: requestLine[1]!,
    target: requestLine[2]!,
    headers,
    headBytes: end + 4,
    bodyBytes: length === undefined ? 0 : Number(length),
    keepAlive: requestLine[3] === '1' && !/(^|,)\s*close\s*(,|$)/.test(connection),
  };
}

export function isHeadError(h: RequestHead | HeadError): h is HeadError {
  return 'error' in h;
}

/**
 * A reply head. `length` undefined means a body sent in chunks (chunkPiece, lastChunk);
 * `close` adds `Connection: close`.
 */
export function replyHead(status: number, contentType: string, length: number | undefined, close: boolean): string {
  return (
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Unknown'}\r\n` +
    `date: ${new Date().toUTCString()}\r\n` +
    `content-type: ${contentType}\r\n` +
    (length === undefined ? 'transfer-encoding: chunked\r\n' : `content-length: ${length}\r\n`) +
    (close ? 'connection: close\r\n' : '') +
    '\r\n'
  );
}

/** One piece of a chunked body; an empty piece is skipped (it would end the body). */
export function chunkPiece(piece: string): string {
  const n = Buffer.byteLength(piece);
  return n === 0 ? '' : `${n.toString(16)}\r\n${piece}\r\n`;
}

export const lastChunk = '0\r\n\r\n';

/** The interim reply a client that sent `Expect: 100-continue` waits for before its body. */
export const continueReply = 'HTTP/1.1 100 Continue\r\n\r\n';
