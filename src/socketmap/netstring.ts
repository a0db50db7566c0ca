// Netstrings (`<byte length>:<bytes>,`, http://cr.yp.to/proto/netstrings.txt) as bytes in,
// payloads out: no sockets here. The decoder takes the stream in whatever pieces the
// kernel hands over (one byte at a time, or many pipelined requests in one read) and emits
// payloads in order. It is the hottest code of the daemon, so the common case — a whole
// netstring inside one chunk — is handed on as a window into that chunk, with no copy and
// no allocation; only a netstring split across reads is reassembled in a buffer of its
// exact, already-validated length.

import type { Decoder } from '../net/connection.js';

/** Why a stream was given up; safe to log and to use as a metric label. */
export type NetstringError = 'bad_length' | 'too_long' | 'bad_terminator';

/** Receives one payload as `buf[start, end)`; the window is only valid during the call. */
export type PayloadHandler = (buf: Buffer, start: number, end: number) => void;

export interface NetstringDecoder {
  /**
   * Feeds the next bytes of the stream, `chunk[0, end)`; calls the handler once per
   * complete payload. Returns the error that made the stream unusable (then and on every
   * later call), or undefined.
   */
  push(chunk: Buffer, end?: number): NetstringError | undefined;
  /** True when no netstring is partly received: a reply now would leave nothing half-read. */
  readonly idle: boolean;
}

const DIGIT_0 = 0x30;
const DIGIT_9 = 0x39;
const COLON = 0x3a;
const COMMA = 0x2c;

const enum Phase {
  Length,
  Payload,
  Comma,
}

/**
 * A decoder that refuses any payload longer than `maxPayloadBytes`. The length prefix is
 * checked digit by digit, so an absurd prefix fails before its colon arrives and long
 * before anything is allocated for it.
 */
export function createNetstringDecoder(maxPayloadBytes: number, onPayload: PayloadHandler): NetstringDecoder {
  let phase = Phase.Length;
  let digits = 0;
  let length = 0;
  let partial: Buffer | undefined;
  let filled = 0;
  let failed: NetstringError | undefined;

  const fail = (e: NetstringError): NetstringError => {
    failed = e;
    partial = undefined;
    return e;
  };

  const push = (chunk: Buffer, end = chunk.length): NetstringError | undefined => {
    if (failed !== undefined) return failed;
    const n = Math.min(end, chunk.length);
    let i = 0;
    while (i < n) {
      if (phase === Phase.Length) {
        const c = chunk[i]!;
        if (c >= DIGIT_0 && c <= DIGIT_9) {
          // No leading zeros (the netstring rule): `0` is only ever the whole empty length.
          if (digits === 1 && length === 0) return fail('bad_length');
          length = length * 10 + (c - DIGIT_0);
          digits++;
          if (length > maxPayloadBytes) return fail('too_long');
          i++;
          continue;
        }
        if (c !== COLON || digits === 0) return fail('bad_length');
        i++;
        if (n - i > length) {
          // The whole payload and its comma are in this chunk: hand out a window.
          const last = i + length;
          if (chunk[last] !== COMMA) return fail('bad_terminator');
          digits = 0;
          length = 0;
          onPayload(chunk, i, last);
          i = last + 1;
          continue;
        }
        partial = Buffer.allocUnsafe(length);
        filled = 0;
        phase = length === 0 ? Phase.Comma : Phase.Payload;
        continue;
      }
      if (phase === Phase.Payload) {
        const take = Math.min(length - filled, n - i);
        chunk.copy(partial!, filled, i, i + take);
        filled += take;
        i += take;
        if (filled === length) phase = Phase.Comma;
        continue;
      }
      if (chunk[i] !== COMMA) return fail('bad_terminator');
      i++;
      const done = partial!;
      partial = undefined;
      phase = Phase.Length;
      digits = 0;
      length = 0;
      onPayload(done, 0, done.length);
    }
    return undefined;
  };

  return {
    push,
    get idle() {
      return phase === Phase.Length && digits === 0;
    },
  };
}

/** One payload, `buf[start, end)`: a window valid only while it is being handled (reused, no copy). */
export interface Payload {
  buf: Buffer;
  start: number;
  end: number;
}

/** The netstring decoder as a connection layer's Decoder: one request per payload. */
export function createPayloadDecoder(maxPayloadBytes: number): Decoder<Payload> {
  const window: Payload = { buf: Buffer.alloc(0), start: 0, end: 0 };
  let take: (p: Payload) => void = () => {};
  const decoder = createNetstringDecoder(maxPayloadBytes, (buf, start, end) => {
    window.buf = buf;
    window.start = start;
    window.end = end;
    take(window);
  });
  return {
    push(chunk, end, t) {
      take = t;
      const err = decoder.push(chunk, end);
      return err === undefined ? undefined : { fault: err, detail: err };
    },
    get idle() {
      return decoder.idle;
    },
  };
}

/** One netstring around `payload` (encoded as UTF-8), as a string ready for socket.write. */
export function encodeNetstring(payload: string): string {
  return `${Buffer.byteLength(payload)}:${payload},`;
}

/** The same for raw bytes. */
export function encodeNetstringBytes(payload: Buffer): Buffer {
  return Buffer.concat([Buffer.from(`${payload.length}:`, 'latin1'), payload, Buffer.from(',', 'latin1')]);
}
