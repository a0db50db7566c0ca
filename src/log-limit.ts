// Repeated warnings rate-limited with a count. A client that sends garbage in a loop, or
// thousands of connections aborted at once, would otherwise write one line per event and
// bury everything else in the log (and fill the disk). Per message text: the first few
// lines of a window go out as they are; the rest are counted, and one line at the end of
// the window says how many were left out. Lines are keyed by their message, never by a
// field, so the number of keys is bounded by the call sites.

import type { Fields, Logger } from './log.js';

const LOG_WINDOW_MS = 10_000;
/** Lines of one message written per window before the rest are only counted. */
const LOG_BURST = 5;

type Level = 'warn' | 'error';

interface Window {
  started: number;
  written: number;
  dropped: number;
  timer?: NodeJS.Timeout;
}

export interface LimitedLogger {
  warn(msg: string, fields?: Fields): void;
  error(msg: string, fields?: Fields): void;
}

export function limitRepeats(logger: Logger, windowMs = LOG_WINDOW_MS, burst = LOG_BURST): LimitedLogger {
  const windows = new Map<string, Window>();
  const seconds = Math.round(windowMs / 1000);

  const emit = (level: Level) => (msg: string, fields?: Fields) => {
    const key = `${level} ${msg}`;
    const now = Date.now();
    let w = windows.get(key);
    if (w === undefined || now - w.started >= windowMs) {
      if (w?.timer) clearTimeout(w.timer);
      if (w && w.dropped > 0) logger[level](`${msg} … and ${w.dropped} more in the last ${seconds} s`, { repeated: w.dropped });
      w = { started: now, written: 0, dropped: 0 };
      windows.set(key, w);
    }
    if (w.written < burst) {
      w.written++;
      logger[level](msg, fields);
      return;
    }
    w.dropped++;
    if (w.timer === undefined) {
      const win = w;
      // The count goes out when the window ends even if the flood has stopped by then.
      win.timer = setTimeout(
        () => {
          if (windows.get(key) === win) windows.delete(key);
          if (win.dropped > 0) logger[level](`${msg} … and ${win.dropped} more in the last ${seconds} s`, { repeated: win.dropped });
        },
        Math.max(0, win.started + windowMs - now),
      );
      win.timer.unref();
    }
  };

  return { warn: emit('warn'), error: emit('error') };
}
