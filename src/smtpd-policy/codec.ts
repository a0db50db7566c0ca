// Postfix's SMTP access policy delegation protocol (SMTPD_POLICY_README) as bytes in,
// requests out, and actions in, replies out: no sockets here. A request is `name=value`
// lines (LF-terminated; the name ends at the first `=`, the value may hold anything but LF)
// ended by an empty line; the reply is `action=<text>` and an empty line. Postfix keeps the
// connection for its next request. Unknown attributes are kept: the service ignores what it
// does not read, as the README asks of a policy server.

import type { Decoder, Fault } from '../net/connection.js';

/** Bytes one request may take (a Postfix request is about 1–3 KB, TLS client certificates included). */
export const MAX_REQUEST_BYTES = 16 * 1024;
/** Attributes one request may have (Postfix 3.7 sends about 40). */
export const MAX_ATTRIBUTES = 128;

export type PolicyRequest = ReadonlyMap<string, string>;

const LF = 0x0a;

const TOO_LONG: Fault = { fault: 'too_long', detail: `request longer than ${MAX_REQUEST_BYTES} bytes` };
const TOO_MANY: Fault = { fault: 'too_many_attributes', detail: `more than ${MAX_ATTRIBUTES} attributes` };
const NO_NAME: Fault = { fault: 'malformed', detail: 'a line that is not name=value' };

/**
 * Requests from a byte stream: each request at most MAX_REQUEST_BYTES (its lines and their
 * LFs) and MAX_ATTRIBUTES attributes; past either, or on a line without a name, the stream
 * is given up. A request split across reads is held, copied, until its empty line.
 */
export function createPolicyDecoder(): Decoder<PolicyRequest> {
  let attrs = new Map<string, string>();
  /** The start of an unfinished line, copied out of the reused read buffer. */
  let partial: Buffer | undefined;
  let requestBytes = 0;

  /** One complete line (without its LF): an attribute, or the end of the request. */
  const line = (text: string, take: (r: PolicyRequest) => void): Fault | undefined => {
    if (text === '') {
      const done = attrs;
      attrs = new Map();
      requestBytes = 0;
      take(done);
      return undefined;
    }
    const eq = text.indexOf('=');
    if (eq <= 0) return NO_NAME;
    if (attrs.size >= MAX_ATTRIBUTES) return TOO_MANY;
    attrs.set(text.slice(0, eq), text.slice(eq + 1));
    return undefined;
  };

  return {
    push(chunk, end, take) {
      let start = 0;
      while (start < end) {
        const nl = chunk.indexOf(LF, start);
        const stop = nl < 0 || nl >= end ? end : nl;
        requestBytes += stop - start + (stop < end ? 1 : 0);
        if (requestBytes > MAX_REQUEST_BYTES) return TOO_LONG;
        const piece = chunk.subarray(start, stop);
        if (stop === end) {
          // No LF in what is left: keep it for the next read.
          partial = partial === undefined ? Buffer.from(piece) : Buffer.concat([partial, piece]);
          return undefined;
        }
        const whole = partial === undefined ? piece : Buffer.concat([partial, piece]);
        partial = undefined;
        const fault = line(whole.toString('utf8'), take);
        if (fault !== undefined) return fault;
        start = stop + 1;
      }
      return undefined;
    },
    get idle() {
      return partial === undefined && attrs.size === 0;
    },
  };
}

/** The reply to one request. */
export function encodeAction(action: string): string {
  return `action=${action}\n\n`;
}
