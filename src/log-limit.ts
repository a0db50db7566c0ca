// Repeated log lines rate-limited with a count. A client that sends garbage in a loop,
// thousands of connections aborted at once, or a client failing logins in a loop would
// otherwise write one line per event and bury everything else in the log (and fill the
// disk). Per key: the first few lines of a window go out as they are; the rest are counted,
// and one line at the end of the window says how many were left out. The daemon's warnings
// are keyed by their message, so the call sites bound the keys; failed logins by message and
// remote address, with a cap on the number of addresses tracked.

import type { Fields, Logger } from './log.js';

const LOG_WINDOW_MS = 10_000;
/** Lines of one message written per window before the rest are only counted. */
const LOG_BURST = 5;
/**
 * Keys a failed-login limiter tracks at once. The remote address is the client's word, so a
 * flood of made-up addresses could make a key each: past this many, lines share one key per
 * message (still bounded, just no longer per address).
 */
const MAX_KEYS = 10_000;
/** Longest remote address kept in a key (an IPv6 address is at most 45 characters). */
const MAX_KEY_ADDRESS = 64;

type Level = 'info' | 'warn' | 'error';

interface Window {
  started: number;
  written: number;
  dropped: number;
  timer?: NodeJS.Timeout;
  /** The fields the summary line repeats (the key's address). */
  fields?: Fields;
}

export interface LimitedLogger {
  warn(msg: string, fields?: Fields): void;
  error(msg: string, fields?: Fields): void;
}

interface RepeatOptions {
  windowMs: number;
  burst: number;
  now: () => number;
}

/**
 * The shared core: lines of one key, the first `burst` of each window written, the rest
 * counted and summed up in one line when the window ends (or when the next window opens).
 */
function createRepeatWindows(logger: Logger, o: RepeatOptions) {
  const windows = new Map<string, Window>();
  let sweptAt = Number.NEGATIVE_INFINITY;
  const seconds = Math.round(o.windowMs / 1000);
  const summary = (level: Level, msg: string, w: Window) =>
    logger[level](`${msg} … and ${w.dropped} more in the last ${seconds} s`, { ...w.fields, repeated: w.dropped });

  return {
    size: () => windows.size,
    emit(level: Level, key: string, msg: string, fields: Fields | undefined, summaryFields?: Fields): void {
      const now = o.now();
      let w = windows.get(key);
      if (w === undefined || now - w.started >= o.windowMs) {
        if (w?.timer) clearTimeout(w.timer);
        if (w && w.dropped > 0) summary(level, msg, w);
        w = { started: now, written: 0, dropped: 0, ...(summaryFields ? { fields: summaryFields } : {}) };
        windows.set(key, w);
      }
      if (w.written < o.burst) {
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
            if (win.dropped > 0) summary(level, msg, win);
          },
          Math.max(0, win.started + o.windowMs - now),
        );
        win.timer.unref();
      }
      // A window that wrote its lines and dropped none is forgotten at its next use or by
      // the sweep below, so keys made once do not pile up.
    },
    /** Forgets ended windows; at most ten times a window, since a full table would otherwise be walked on every line. */
    sweep(): void {
      const now = o.now();
      if (now - sweptAt < o.windowMs / 10) return;
      sweptAt = now;
      for (const [key, w] of windows) if (w.timer === undefined && now - w.started >= o.windowMs) windows.delete(key);
    },
  };
}

/** Per message text: for the daemon's own warnings, whose number of keys the call sites bound. */
export function limitRepeats(logger: Logger, windowMs = LOG_WINDOW_MS, burst = LOG_BURST): LimitedLogger {
  const w = createRepeatWindows(logger, { windowMs, burst, now: Date.now });
  return {
    warn: (msg, fields) => w.emit('warn', `warn ${msg}`, msg, fields),
    error: (msg, fields) => w.emit('error', `error ${msg}`, msg, fields),
  };
}

/** Logs one failed login; its fields name the remote address as `rip`. */
export type FailedLoginLog = (msg: string, fields: Fields) => void;

/**
 * Failed logins, per message and remote address: the first few lines a window from one
 * address are written as they are (what fail2ban-style tools count), the rest summed up in
 * one line naming that address. One local client failing in a loop wrote 68 MB in 10 s
 * before (issue 29, item 7a); now it writes `burst` lines and a count per window.
 */
export function limitFailedLogins(logger: Logger, o: Partial<RepeatOptions & { maxKeys: number }> = {}): FailedLoginLog {
  const maxKeys = o.maxKeys ?? MAX_KEYS;
  const w = createRepeatWindows(logger, { windowMs: o.windowMs ?? LOG_WINDOW_MS, burst: o.burst ?? LOG_BURST, now: o.now ?? Date.now });
  return (msg, fields) => {
    const rip = String(fields.rip ?? '').slice(0, MAX_KEY_ADDRESS);
    if (w.size() >= maxKeys) w.sweep();
    const perAddress = w.size() < maxKeys;
    const key = perAddress ? `${msg}\0${rip}` : msg;
    w.emit('info', key, msg, fields, perAddress ? { rip } : undefined);
  };
}
