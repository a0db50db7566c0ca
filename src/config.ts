// The `key = value` config file (Postfix main.cf style), environment overrides
// MAILMAPD_<KEY>, and the typed Config the rest of the daemon reads. Every key is declared
// once in `keys` below, with its default and its parser; `config/mailmapd.conf.example`
// documents each one. An unknown key or a bad value is an error naming
// the key and where it came from; nothing starts half-configured.

import { readFileSync } from 'node:fs';
import { ConfigError } from './errors.js';
import { parseListenList, type ListenAddress } from './net/listen-address.js';
import { checkIssuerUrl } from './oauth2/issuer-url.js';

const DEFAULT_CONFIG_PATH = '/etc/mailmapd/mailmapd.conf';

type Parser<T> = (raw: string) => T;

interface KeySpec<T> {
  default: string;
  parse: Parser<T>;
}

const str: Parser<string> = (s) => s;
const listen: Parser<ListenAddress[]> = parseListenList;

function int(min: number, max: number): Parser<number> {
  return (s) => {
    if (!/^-?\d+$/.test(s)) throw new Error(`expected an integer, got ${JSON.stringify(s)}`);
    const n = Number(s);
    if (n < min || n > max) throw new Error(`expected ${min}..${max}, got ${n}`);
    return n;
  };
}

const bool: Parser<boolean> = (s) => {
  const v = s.toLowerCase();
  if (['yes', 'true', 'on', '1'].includes(v)) return true;
  if (['no', 'false', 'off', '0'].includes(v)) return false;
  throw new Error(`expected yes or no, got ${JSON.stringify(s)}`);
};

/** Durations: `500ms`, `10s`, `5m`, `2h`, `7d`, or a bare number of seconds. Returned in ms. */
export const duration: Parser<number> = (s) => {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)?$/.exec(s);
  if (!m) throw new Error(`expected a duration like 500ms, 10s, 5m, 1h, got ${JSON.stringify(s)}`);
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[(m[2] ?? 's') as 'ms'];
  return Math.round(Number(m[1]) * unit);
};

function oneOf<T extends string>(...values: T[]): Parser<T> {
  return (s) => {
    if (!(values as string[]).includes(s)) throw new Error(`expected one of ${values.join(', ')}, got ${JSON.stringify(s)}`);
    return s as T;
  };
}

// The names `schema =` accepts: the built-in profiles (one file each under src/sync/profiles/)
// and `custom:/path`. src/sync/profile-select.ts maps each name to its profile through a
// record over this list, so a name without a profile does not compile.
export const builtinProfileNames = ['native', 'postfixadmin', 'modoboa', 'dinomail', 'django', 'laravel'] as const;

export type BuiltinProfileName = (typeof builtinProfileNames)[number];

/** mailmapd's own tables, whose change triggers come with `mailmapd migrate`. */
export const NATIVE: BuiltinProfileName = 'native';

export const CUSTOM_PREFIX = 'custom:';

export function isBuiltinProfileName(name: string): name is BuiltinProfileName {
  return (builtinProfileNames as readonly string[]).includes(name);
}

const schemaName: Parser<string> = (s) => {
  if (isBuiltinProfileName(s) || (s.startsWith(`${CUSTOM_PREFIX}/`) && s.length > CUSTOM_PREFIX.length + 1)) return s;
  throw new Error(`expected ${builtinProfileNames.join(', ')} or ${CUSTOM_PREFIX}/path/to/file.sql, got ${JSON.stringify(s)}`);
};

const octalMode: Parser<number> = (s) => {
  if (!/^0?[0-7]{3}$/.test(s)) throw new Error(`expected an octal mode like 0660, got ${JSON.stringify(s)}`);
  return parseInt(s, 8);
};

const uidLike: Parser<number> = int(0, 4294967294);

const delimiters: Parser<string> = (s) => {
  if (/[@\s,]/.test(s)) throw new Error('recipient_delimiter cannot contain @, commas or spaces');
  return s;
};

// Dovecot splits `user<sep>master` at this one character: it must never be part of an address.
const masterSeparator: Parser<string> = (s) => {
  if (!/^[*%!#&|^~]$/.test(s)) throw new Error(`expected one of * % ! # & | ^ ~, got ${JSON.stringify(s)}`);
  return s;
};

const passwordScheme: Parser<string> = (s) => {
  const v = s.toUpperCase();
  if (!/^[A-Z0-9-]+$/.test(v)) throw new Error(`bad password scheme ${JSON.stringify(s)}`);
  return v;
};

/** `quota_grace`: a share of each mailbox's quota (`10%`) or a size in bytes (`50M`). */
export interface QuotaGrace {
  percent: number;
  bytes: number;
}

const quotaGrace: Parser<QuotaGrace> = (s) => {
  const pct = /^(\d+(?:\.\d+)?)%$/.exec(s);
  if (pct) return { percent: Number(pct[1]), bytes: 0 };
  const size = /^(\d+)([KMG]?)$/i.exec(s);
  if (!size) throw new Error(`expected a percentage like 10% or a size like 50M, got ${JSON.stringify(s)}`);
  const unit = { '': 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3 }[size[2]!.toUpperCase() as ''];
  return { percent: 0, bytes: Number(size[1]) * unit };
};

const ipList: Parser<string[]> = (s) =>
  s
    .split(/[,\s]+/)
    .map((x) => x.trim())
    .filter((x) => x !== '');

/** Empty (off), `https:`, or `http:` on loopback only (oauth2/keys.ts says why). */
const oauth2Issuer: Parser<string> = (s) => {
  if (s !== '') checkIssuerUrl(s);
  return s;
};

const keys = {
  database_url: { default: '', parse: str },
  database_primary_url: { default: '', parse: str },
  schema: { default: NATIVE, parse: schemaName },
  embedded_data_dir: { default: '/var/lib/mailmapd/postgres', parse: str },
  embedded_port: { default: '54329', parse: int(1, 65535) },

  socketmap_listen: { default: 'unix:/run/mailmapd/socketmap', parse: listen },
  auth_listen: { default: 'unix:/run/mailmapd/auth', parse: listen },
  checkpassword_listen: { default: 'unix:/run/mailmapd/checkpassword', parse: listen },
  http_listen: { default: '127.0.0.1:9465', parse: listen },
  unix_socket_mode: { default: '0660', parse: octalMode },
  unix_socket_group: { default: '', parse: str },

  recipient_delimiter: { default: '+', parse: delimiters },
  mail_home: { default: '/var/vmail/%d/%n', parse: str },
  mail_uid: { default: '5000', parse: uidLike },
  mail_gid: { default: '5000', parse: uidLike },

  default_scheme: { default: 'CRYPT', parse: passwordScheme },
  password_scheme: { default: 'ARGON2ID', parse: passwordScheme },
  hash_workers: { default: '0', parse: int(0, 64) },
  hash_queue_limit: { default: '256', parse: int(1, 100_000) },
  auth_cache_size: { default: '100000', parse: int(0, 10_000_000) },
  auth_failure_delay: { default: '2s', parse: duration },
  auth_max_staleness: { default: '5m', parse: duration },

  max_connections: { default: '1000', parse: int(1, 1_000_000) },
  idle_timeout: { default: '300s', parse: duration },
  max_request_bytes: { default: '4096', parse: int(64, 1_000_000) },
  request_timeout: { default: '10s', parse: duration },

  sync_poll_interval: { default: '1s', parse: duration },
  changes_retention: { default: '1d', parse: duration },
  reconnect_max_delay: { default: '10s', parse: duration },
  replica_max_lag: { default: '30s', parse: duration },
  snapshot_file: { default: '/var/lib/mailmapd/directory.snapshot', parse: str },
  snapshot_max_age: { default: '7d', parse: duration },

  dict_listen: { default: '', parse: listen },
  policy_listen: { default: '', parse: listen },
  last_logins: { default: 'yes', parse: bool },
  last_login_interval: { default: '60s', parse: duration },
  writeback_max_pending: { default: '100000', parse: int(100, 10_000_000) },

  dkim_dir: { default: '/var/lib/mailmapd/dkim', parse: str },
  dkim_group: { default: 'opendkim', parse: str },
  dkim_reload_command: { default: 'systemctl reload opendkim', parse: str },
  dkim_keep_rotated: { default: '7d', parse: duration },

  http_secret: { default: '', parse: str },
  oauth2_issuer: { default: '', parse: oauth2Issuer },
  oauth2_audience: { default: '', parse: str },
  oauth2_username_claim: { default: 'email', parse: str },
  master_user_separator: { default: '*', parse: masterSeparator },
  metrics: { default: 'yes', parse: bool },

  policy_enabled: { default: 'yes', parse: bool },
  policy_window: { default: '10m', parse: duration },
  policy_delay_after: { default: '5', parse: int(1, 1_000_000) },
  policy_reject_after: { default: '20', parse: int(1, 1_000_000) },
  policy_prefix_reject_after: { default: '100', parse: int(1, 1_000_000) },
  policy_login_reject_after: { default: '50', parse: int(1, 1_000_000) },
  policy_max_delay: { default: '5s', parse: duration },
  policy_allow_list: { default: '127.0.0.1, ::1', parse: ipList },
  policy_max_entries: { default: '200000', parse: int(100, 100_000_000) },
  policy_max_memory: { default: '67108864', parse: int(1_048_576, 1_099_511_627_776) },
  policy_known_source_ttl: { default: '30d', parse: duration },
  // Off: every host counts on its own (the benchmark's baseline; a single host gains nothing).
  shared_counts: { default: 'yes', parse: bool },

  send_limit_hour: { default: '0', parse: int(0, 1_000_000_000) },
  send_limit_day: { default: '0', parse: int(0, 1_000_000_000) },
  send_max_recipients: { default: '0', parse: int(0, 1_000_000) },
  quota_grace: { default: '10%', parse: quotaGrace },

  log_level: { default: 'info', parse: oneOf('debug', 'info', 'warn', 'error') },
} satisfies Record<string, KeySpec<unknown>>;

type Keys = typeof keys;
export type ConfigKey = keyof Keys;
export type Config = { [K in ConfigKey]: ReturnType<Keys[K]['parse']> } & { source: string };

export const configKeys = Object.keys(keys) as ConfigKey[];

/**
 * Every listener by name (its `listener` metrics label) with the key that lists its
 * addresses: the one list that serve.ts wires, listeners.ts opens and a SIGHUP re-opens.
 */
export const listenerKeys = {
  socketmap: 'socketmap_listen',
  auth: 'auth_listen',
  checkpassword: 'checkpassword_listen',
  dict: 'dict_listen',
  policy: 'policy_listen',
  http: 'http_listen',
} as const satisfies Record<string, ConfigKey>;

export type ListenerName = keyof typeof listenerKeys;

export function defaultOf(key: ConfigKey): string {
  return keys[key].default;
}

export { ConfigError };

export interface LoadOptions {
  path?: string;
  env?: NodeJS.ProcessEnv;
  /** A missing file is fine only when it was not asked for explicitly. */
  required?: boolean;
}

export function parseConfigText(text: string, source: string, env: NodeJS.ProcessEnv = {}): Config {
  const raw = new Map<ConfigKey, { value: string; where: string }>();
  const lines = text.split(/\r?\n/);
  let pending: { key: string; value: string; line: number } | undefined;
  const flush = () => {
    if (!pending) return;
    const { key, value, line } = pending;
    pending = undefined;
    if (!(key in keys)) throw new ConfigError(`${source}:${line}: unknown key "${key}"`);
    raw.set(key as ConfigKey, { value, where: `${source}:${line}` });
  };
  lines.forEach((rawLine, i) => {
    const line = rawLine.replace(/\s+$/, '');
    if (/^\s*#/.test(line) || line.trim() === '') {
      return;
    }
    // main.cf style: a line starting with whitespace continues the previous value.
    if (/^\s/.test(line)) {
      if (!pending) throw new ConfigError(`${source}:${i + 1}: continuation line without a key`);
      pending.value = `${pending.value} ${line.trim()}`;
      return;
    }
    flush();
    const m = /^([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)$/.exec(line);
    if (!m) throw new ConfigError(`${source}:${i + 1}: expected "key = value", got ${JSON.stringify(line.slice(0, 80))}`);
    pending = { key: m[1]!, value: m[2]!.trim(), line: i + 1 };
  });
  flush();

  for (const [name, value] of Object.entries(env)) {
    if (!name.startsWith('MAILMAPD_') || value === undefined) continue;
    const key = name.slice(9).toLowerCase();
    if (key === 'config' || key === 'checkpassword_socket') continue;
    if (!(key in keys)) throw new ConfigError(`environment: unknown key "${key}" (from ${name})`);
    raw.set(key as ConfigKey, { value, where: `environment ${name}` });
  }

  const out: Record<string, unknown> = { source };
  for (const key of configKeys) {
    const given = raw.get(key);
    const value = given ? given.value : keys[key].default;
    try {
      out[key] = (keys[key].parse as Parser<unknown>)(value);
    } catch (err) {
      const where = given ? given.where : 'default';
      throw new ConfigError(`${where}: ${key}: ${(err as Error).message}`);
    }
  }
  const cfg = out as Config;
  if (cfg.policy_delay_after > cfg.policy_reject_after) {
    throw new ConfigError(`${source}: policy_delay_after must not exceed policy_reject_after`);
  }
  // Without an audience any token the provider issued to any of its clients would log in.
  if (cfg.oauth2_issuer !== '' && cfg.oauth2_audience === '') {
    throw new ConfigError(`${source}: oauth2_issuer is set: set oauth2_audience too (the aud a mail token carries)`);
  }
  return cfg;
}

export function loadConfig(opts: LoadOptions = {}): Config {
  const env = opts.env ?? process.env;
  const path = opts.path ?? env.MAILMAPD_CONFIG ?? DEFAULT_CONFIG_PATH;
  const required = opts.required ?? (opts.path !== undefined || env.MAILMAPD_CONFIG !== undefined);
  let text = '';
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (required || code !== 'ENOENT') throw new ConfigError(`${path}: cannot read config: ${code ?? (err as Error).message}`);
  }
  return parseConfigText(text, path, env);
}
