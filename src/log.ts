// One logfmt line per event on stderr. Callers pass fields, never secrets: there is no
// "password" or "hash" field anywhere, and values are quoted so a hostile key cannot
// forge a second line.

export type Level = 'debug' | 'info' | 'warn' | 'error';
const rank: Record<Level, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export type Fields = Record<string, string | number | boolean | bigint | null | undefined>;

export interface Logger {
  debug(msg: string, fields?: Fields): void;
  info(msg: string, fields?: Fields): void;
  warn(msg: string, fields?: Fields): void;
  error(msg: string, fields?: Fields): void;
  setLevel(level: Level): void;
}

const bare = /^[A-Za-z0-9_.:/@+\-,]+$/;

/**
 * Longest field value written whole. Fields carry what clients send (a login, a service, an
 * address): a client sending 900-character fields must not make every failed login a
 * kilobyte of log. The daemon's own values (errors, listener lists) stay well below.
 */
export const MAX_FIELD_CHARS = 512;

function bounded(value: string): string {
  return value.length <= MAX_FIELD_CHARS ? value : `${value.slice(0, MAX_FIELD_CHARS)}…(${value.length} chars)`;
}

function quote(value: string): string {
  if (value !== '' && bare.test(value)) return value;
  return JSON.stringify(value);
}

function formatLine(level: Level, msg: string, fields: Fields | undefined, now: Date): string {
  let line = `ts=${now.toISOString()} level=${level} msg=${quote(msg)}`;
  if (fields) {
    for (const k of Object.keys(fields)) {
      const v = fields[k];
      if (v === undefined) continue;
      line += ` ${k}=${quote(v === null ? 'null' : bounded(String(v)))}`;
    }
  }
  return line + '\n';
}

export function createLogger(level: Level = 'info', write: (line: string) => void = (l) => process.stderr.write(l)): Logger {
  let min = rank[level];
  const emit = (lv: Level) => (msg: string, fields?: Fields) => {
    if (rank[lv] >= min) write(formatLine(lv, msg, fields, new Date()));
  };
  return {
    debug: emit('debug'),
    info: emit('info'),
    warn: emit('warn'),
    error: emit('error'),
    setLevel(l: Level) {
      min = rank[l];
    },
  };
}

export const silentLogger: Logger = {
  debug() {},
  info() {},
  warn() {},
  error() {},
  setLevel() {},
};

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
