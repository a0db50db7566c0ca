// The database URL, read one way everywhere: libpq's URL form, which may name several
// hosts (node-postgres and WHATWG's URL understand only one):
//   postgres://user:pw@h1:5432,h2,[::1]:5433/db?target_session_attrs=prefer-standby&connect_timeout=5
// parseConnInfo splits it into one single-host URL per host, in order, plus the session
// attributes the caller must check after connecting (everything else is kept as it is);
// redactUrl shows it to a person; databaseOf names the database it reaches.

export type TargetSessionAttrs = 'any' | 'read-write' | 'read-only' | 'primary' | 'standby' | 'prefer-standby';

const targetSessionAttrsValues: readonly TargetSessionAttrs[] = ['any', 'read-write', 'read-only', 'primary', 'standby', 'prefer-standby'];

export interface HostUrl {
  host: string;
  port: number;
  /** A single-host URL node-postgres accepts. */
  url: string;
}

export interface ConnInfo {
  hosts: HostUrl[];
  targetSessionAttrs: TargetSessionAttrs;
  /** libpq's connect_timeout in milliseconds, when the URL sets one. */
  connectTimeoutMs?: number;
}

class ConnInfoError extends Error {}

/** Splits `h1:p1,[v6]:p2,h3` into host/port pairs; a missing port is `defaultPort`. */
function splitHosts(authority: string, defaultPort: number): Array<{ host: string; port: number }> {
  const out: Array<{ host: string; port: number }> = [];
  for (const part of authority.split(',')) {
    let port = defaultPort;
    const m = /^\[([^\]]+)\](?::(\d*))?$/.exec(part) ?? /^([^:]*)(?::(\d*))?$/.exec(part);
    if (!m) throw new ConnInfoError(`database_url: cannot read host "${part}"`);
    const host = m[1]!;
    if (m[2] !== undefined && m[2] !== '') port = Number(m[2]);
    if (!Number.isInteger(port) || port <= 0 || port > 65535) throw new ConnInfoError(`database_url: bad port in "${part}"`);
    out.push({ host, port });
  }
  return out;
}

interface UrlParts {
  scheme: string;
  userinfo: string | undefined;
  /** The host list: `h1:p1,[v6]:p2,h3`, '' for the default host. */
  authority: string;
  path: string;
  query: string | undefined;
}

/** The parts of a postgres:// or postgresql:// URL; undefined for anything else. */
function splitUrl(url: string): UrlParts | undefined {
  const m = /^(postgres(?:ql)?:\/\/)(?:([^@/?#]*)@)?([^/?#]*)([^?#]*)(\?[^#]*)?(#.*)?$/.exec(url);
  if (!m) return undefined;
  return { scheme: m[1]!, userinfo: m[2], authority: m[3]!, path: m[4]!, query: m[5] };
}

/**
 * Reads a postgres:// or postgresql:// URL with one or more hosts. A string that is no
 * such URL (a key=value conninfo, a socket path) is passed through as a single host that
 * node-postgres reads itself.
 */
export function parseConnInfo(url: string): ConnInfo {
  const parts = splitUrl(url);
  if (!parts) return { hosts: [{ host: '', port: 5432, url }], targetSessionAttrs: 'any' };
  const { scheme, userinfo, authority, path, query } = parts;
  const params = new URLSearchParams(query ?? '');
  const tsa = params.get('target_session_attrs') ?? 'any';
  if (!(targetSessionAttrsValues as readonly string[]).includes(tsa)) {
    throw new ConnInfoError(`database_url: target_session_attrs must be one of ${targetSessionAttrsValues.join(', ')}`);
  }
  params.delete('target_session_attrs');
  const timeout = params.get('connect_timeout');
  params.delete('connect_timeout');
  const defaultPort = params.get('port') !== null ? Number(params.get('port')) : 5432;
  const rest = params.toString();
  const hosts = authority === '' ? [{ host: '', port: defaultPort }] : splitHosts(authority, defaultPort);
  const info: ConnInfo = {
    hosts: hosts.map(({ host, port }) => {
      const h = host.includes(':') ? `[${host}]` : host;
      const auth = host === '' ? '' : `${h}:${port}`;
      return {
        host,
        port,
        url: `${scheme}${userinfo !== undefined ? `${userinfo}@` : ''}${auth}${path}${rest === '' ? '' : `?${rest}`}`,
      };
    }),
    targetSessionAttrs: tsa as TargetSessionAttrs,
  };
  // libpq: a timeout below 2 s is taken as 2 s; 0 or absent means wait forever, which a
  // daemon must never do, so the caller's default applies then.
  if (timeout !== null && Number(timeout) > 0) info.connectTimeoutMs = Math.max(2, Number(timeout)) * 1000;
  return info;
}

/**
 * Hides the password when a URL is shown to a person. Everything up to the last `@` counts
 * as user and password, so a password holding an unencoded `@`, `/` or `#` is hidden too;
 * what is no postgres:// URL (a key=value conninfo may hold `password=`) is not shown.
 */
export function redactUrl(url: string): string {
  const scheme = /^postgres(?:ql)?:\/\//.exec(url)?.[0];
  if (scheme === undefined) return '(unparsable database_url)';
  const at = url.lastIndexOf('@');
  if (at < scheme.length) return url;
  const colon = url.indexOf(':', scheme.length);
  if (colon < 0 || colon > at) return url;
  return `${url.slice(0, colon)}:***${url.slice(at)}`;
}

/**
 * The database a URL reaches, as `host:port/database` for each host, comma-joined, without
 * user or password: where a snapshot's data came from (snapshot/keeper.ts). Hosts as written,
 * a missing port as 5432.
 */
export function databaseOf(url: string): string {
  const parts = splitUrl(url);
  if (!parts) return '(unparsable database_url)';
  try {
    const hosts = splitHosts(parts.authority, 5432).map(({ host, port }) => `${host.includes(':') ? `[${host}]` : host}:${port}`);
    return `${hosts.join(',')}${parts.path}`;
  } catch {
    return '(unparsable database_url)';
  }
}
