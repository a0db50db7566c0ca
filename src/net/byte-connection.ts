// Bytes in, strings out, for a request/reply protocol on an accepted socket, without
// net.Socket's stream machinery where Node allows it.
//
// Why: on the socketmap path every lookup is one small read and one small write, and the
// stream layer (a fresh 64 KiB buffer per read, Readable's push/emit, Writable's queue and
// a write request object per write) cost more CPU per lookup than finding the answer —
// measured: a do-nothing Node server at 12.9 µs of CPU per lookup with streams, 10.7 µs
// reading into one reused buffer and writing straight to the handle, the C floor 9.9 µs.
//
// The fast path uses the stream handle under net.Socket the way net.Socket's own `onread`
// option does (a user buffer, a read callback, writes through the handle's
// writeUtf8String). Those are Node internals, so they are feature-checked once per
// connection and any Node that lacks them gets the same behaviour through the public
// stream API; `byteConnectionMode()` says which path a process uses (a test pins it, so
// a Node upgrade that loses the fast path shows up in CI rather than as a slow daemon).

import { performance } from 'node:perf_hooks';
import type { Socket } from 'node:net';
import { endConnection } from './listener.js';

export interface ByteConnection {
  /** Sends `data` as UTF-8. When the kernel cannot take it at once, reading pauses until it has. */
  write(data: string): void;
  /** Bytes accepted by write() that the kernel has not taken yet. */
  readonly queuedBytes: number;
  /** Stops delivering bytes; nothing more is read from this connection. */
  stopReading(): void;
  /** Sends what is queued, then closes the connection. */
  end(): void;
  /** performance.now() of the last bytes received. */
  readonly lastActive: number;
}

/** Receives `buf[0, end)`; the buffer is reused for the next read, so keep no reference. */
export type BytesHandler = (buf: Buffer, end: number) => void;

interface StreamBinding {
  state: Int32Array;
  kReadBytesOrError: number;
  kLastWriteWasAsync: number;
  WriteWrap: new () => WriteRequest;
}

interface WriteRequest {
  handle?: unknown;
  oncomplete?: (status: number) => void;
}

/** The parts of Node's stream handle (TCPWrap, PipeWrap) the fast path uses. */
interface StreamHandle {
  reading?: boolean;
  onread: (() => void) | unknown;
  useUserBuffer(buf: Uint8Array): void;
  readStart(): number;
  readStop(): number;
  writeUtf8String(req: WriteRequest, data: string): number;
  writeQueueSize?: number;
}

const binding: StreamBinding | undefined = (() => {
  try {
    const getBinding = (process as unknown as { binding?: (name: string) => Record<string, unknown> }).binding;
    const b = getBinding?.call(process, 'stream_wrap');
    if (
      b &&
      b.streamBaseState instanceof Int32Array &&
      typeof b.kReadBytesOrError === 'number' &&
      typeof b.kLastWriteWasAsync === 'number' &&
      typeof b.WriteWrap === 'function'
    ) {
      return {
        state: b.streamBaseState,
        kReadBytesOrError: b.kReadBytesOrError,
        kLastWriteWasAsync: b.kLastWriteWasAsync,
        WriteWrap: b.WriteWrap as StreamBinding['WriteWrap'],
      };
    }
  } catch {
    /* no internals: the stream path serves */
  }
  return undefined;
})();

function fastHandle(socket: Socket): StreamHandle | undefined {
  const h = (socket as unknown as { _handle?: Partial<StreamHandle> | null })._handle;
  if (binding === undefined || h == null) return undefined;
  if (typeof h.useUserBuffer !== 'function' || typeof h.readStart !== 'function' || typeof h.readStop !== 'function') return undefined;
  if (typeof h.writeUtf8String !== 'function') return undefined;
  return h as StreamHandle;
}

/** 'handle' when this Node supports the fast path, 'stream' otherwise. */
export function byteConnectionMode(): 'handle' | 'stream' {
  return binding === undefined ? 'stream' : 'handle';
}

// Reads are dispatched one at a time on the event loop and the handler copies what it
// keeps, so every connection of the process can read into the same buffer.
let sharedReadBuffer: Buffer | undefined;

function openOnHandle(socket: Socket, h: StreamHandle, b: StreamBinding, onBytes: BytesHandler): ByteConnection {
  const buf = (sharedReadBuffer ??= Buffer.allocUnsafe(64 * 1024));
  let lastActive = performance.now();
  let stopped = false;
  let inFlight = 0; // writes the kernel has not finished taking
  let req = new b.WriteWrap();

  const afterWrite = (status: number) => {
    inFlight--;
    if (status < 0) socket.destroy();
    else if (inFlight === 0 && !stopped && !socket.destroyed) h.readStart();
  };

  h.useUserBuffer(buf);
  h.onread = () => {
    const n = b.state[b.kReadBytesOrError]!;
    if (n > 0) {
      lastActive = performance.now();
      if (!stopped) onBytes(buf, n);
      return;
    }
    if (n < 0) {
      // EOF or a read error. The peer may have half-closed after its last request: its
      // replies still go out before the connection closes (net.Socket's default too).
      stopped = true;
      endConnection(socket);
    }
  };
  if (h.reading !== true) {
    h.reading = true;
    h.readStart();
  }

  return {
    write(data) {
      if (socket.destroyed) return;
      req.handle = h;
      req.oncomplete = afterWrite;
      const err = h.writeUtf8String(req, data);
      if (err !== 0) {
        socket.destroy();
        return;
      }
      if (b.state[b.kLastWriteWasAsync] === 1) {
        // The request object now belongs to the pending write; a client that sends
        // faster than it reads waits, unread, until its replies have drained.
        req = new b.WriteWrap();
        inFlight++;
        h.readStop();
      }
    },
    get queuedBytes() {
      return h.writeQueueSize ?? 0;
    },
    stopReading() {
      stopped = true;
      if (!socket.destroyed) h.readStop();
    },
    end() {
      this.stopReading();
      // uv_shutdown waits for the writes already queued on the handle.
      endConnection(socket);
    },
    get lastActive() {
      return lastActive;
    },
  };
}

function openOnStream(socket: Socket, onBytes: BytesHandler): ByteConnection {
  let lastActive = performance.now();
  let stopped = false;
  socket.on('data', (chunk: Buffer) => {
    lastActive = performance.now();
    if (!stopped) onBytes(chunk, chunk.length);
  });
  return {
    write(data) {
      if (!socket.write(data)) {
        socket.pause();
        socket.once('drain', () => {
          if (!stopped) socket.resume();
        });
      }
    },
    get queuedBytes() {
      return socket.writableLength;
    },
    stopReading() {
      stopped = true;
      socket.pause();
    },
    end() {
      this.stopReading();
      endConnection(socket);
    },
    get lastActive() {
      return lastActive;
    },
  };
}

/**
 * Starts delivering the socket's bytes to `onBytes`; call once, before any other reader.
 * `mode` 'stream' forces the public-API path (tests run both).
 */
export function openByteConnection(socket: Socket, onBytes: BytesHandler, mode: 'handle' | 'stream' = 'handle'): ByteConnection {
  const h = mode === 'handle' ? fastHandle(socket) : undefined;
  return h !== undefined && binding !== undefined ? openOnHandle(socket, h, binding, onBytes) : openOnStream(socket, onBytes);
}
