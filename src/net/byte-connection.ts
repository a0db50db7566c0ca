// The transport under every door's connection (connection.ts): bytes in, strings or bytes
// out, on an accepted socket, without net.Socket's stream machinery where Node allows it.
// It moves bytes and says when its queue has drained; bounds and clocks are the layer's.
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

import type { Socket } from 'node:net';

/**
 * Sends what is queued and a FIN, then closes the socket without waiting for the peer's
 * FIN. Postfix and Dovecot processes keep idle connections they only read on their next
 * request: a half-close alone left each of them open until the shutdown grace ran out.
 */
export function endConnection(socket: Socket): void {
  socket.end(() => socket.destroy());
}

export interface ByteConnection {
  /**
   * Hands `data` to the kernel (strings as UTF-8), or queues it where the kernel cannot take
   * it at once. Never pauses reading by itself: what to do with a full queue is the
   * connection layer's rule (connection.ts), not the transport's.
   */
  write(data: string | Buffer): void;
  /** Bytes accepted by write() that the kernel has not taken yet. */
  readonly queuedBytes: number;
  /** Stops delivering bytes until resumeReading(). */
  pauseReading(): void;
  resumeReading(): void;
  /** Stops delivering bytes for good. */
  stopReading(): void;
  /** Sends what is queued, then closes the connection. */
  end(): void;
}

/** What the transport calls back. */
export interface ByteEvents {
  /** Receives `buf[0, end)`; the buffer is reused for the next read, so keep no reference. */
  bytes: BytesHandler;
  /** Everything queued has been taken by the kernel (called after a write that had to queue). */
  drained?(): void;
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
  writeBuffer(req: WriteRequest, data: Uint8Array): number;
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
  if (typeof h.writeUtf8String !== 'function' || typeof h.writeBuffer !== 'function') return undefined;
  return h as StreamHandle;
}

/** 'handle' when this Node supports the fast path, 'stream' otherwise. */
export function byteConnectionMode(): 'handle' | 'stream' {
  return binding === undefined ? 'stream' : 'handle';
}

// Reads are dispatched one at a time on the event loop and the handler copies what it
// keeps, so every connection of the process can read into the same buffer.
let sharedReadBuffer: Buffer | undefined;

function openOnHandle(socket: Socket, h: StreamHandle, b: StreamBinding, on: ByteEvents): ByteConnection {
  const buf = (sharedReadBuffer ??= Buffer.allocUnsafe(64 * 1024));
  let stopped = false;
  let paused = false;
  let inFlight = 0; // writes the kernel has not finished taking
  let req = new b.WriteWrap();

  const afterWrite = (status: number) => {
    inFlight--;
    if (status < 0) socket.destroy();
    else if (inFlight === 0 && !socket.destroyed) on.drained?.();
  };

  h.useUserBuffer(buf);
  h.onread = () => {
    const n = b.state[b.kReadBytesOrError]!;
    if (n > 0) {
      if (!stopped) on.bytes(buf, n);
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
      const err = typeof data === 'string' ? h.writeUtf8String(req, data) : h.writeBuffer(req, data);
      if (err !== 0) {
        socket.destroy();
        return;
      }
      if (b.state[b.kLastWriteWasAsync] === 1) {
        // The request object now belongs to the pending write.
        req = new b.WriteWrap();
        inFlight++;
      }
    },
    get queuedBytes() {
      return inFlight === 0 ? 0 : (h.writeQueueSize ?? 0);
    },
    pauseReading() {
      if (paused || stopped) return;
      paused = true;
      if (!socket.destroyed) h.readStop();
    },
    resumeReading() {
      if (!paused || stopped) return;
      paused = false;
      if (!socket.destroyed) h.readStart();
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
  };
}

function openOnStream(socket: Socket, on: ByteEvents): ByteConnection {
  let stopped = false;
  socket.on('data', (chunk: Buffer) => {
    if (!stopped) on.bytes(chunk, chunk.length);
  });
  socket.on('drain', () => on.drained?.());
  return {
    write(data) {
      if (!socket.destroyed) socket.write(data);
    },
    get queuedBytes() {
      return socket.writableLength;
    },
    pauseReading() {
      socket.pause();
    },
    resumeReading() {
      if (!stopped) socket.resume();
    },
    stopReading() {
      stopped = true;
      socket.pause();
    },
    end() {
      this.stopReading();
      endConnection(socket);
    },
  };
}

/**
 * Starts delivering the socket's bytes to `on.bytes`; call once, before any other reader.
 * `mode` 'stream' forces the public-API path (tests run both).
 */
export function openByteConnection(socket: Socket, on: ByteEvents, mode: 'handle' | 'stream' = 'handle'): ByteConnection {
  const h = mode === 'handle' ? fastHandle(socket) : undefined;
  return h !== undefined && binding !== undefined ? openOnHandle(socket, h, binding, on) : openOnStream(socket, on);
}
