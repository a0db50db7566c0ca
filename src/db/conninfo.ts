// libpq's multi-host URL, which node-postgres does not understand:
//   postgres://user:pw@h1:5432,h2,[::1]:5433/db?target_session_attrs=prefer-standby&connect_timeout=5
// split into one single-host URL per host, in order, plus the session attributes the
// caller must check after connecting. Everything else in the URL is kept as it is.

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

/**
 * Reads a postgres:// or postgresql:// URL with one or more hosts. A string that is no
 * such URL (a key=value conninfo, a socket path) is passed through as a single host that
 * node-postgres reads itself.
 */
export function parseConnInfo(url: string): ConnInfo {
  const m = /^(postgres(?:ql)?:\/\/)(?:([^@/?#]*)@)?([^/?#]*)([^?#]*)(\?[^#]*)?(#.*)?$/.exec(url);
  if (!m) return { hosts: [{ host: '', port: 5432, url }], targetSessionAttrs: 'any' };
  const [, scheme, userinfo, authority, path, query] = m;
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
  const hosts = authority === '' ? [{ host: '', port: defaultPort }] : splitHosts(authority!, defaultPort);
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
