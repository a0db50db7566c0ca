// Listener addresses as the config writes them: `inet:HOST:PORT`, `HOST:PORT`, `[v6]:PORT`
// or `unix:/path`. Only loopback hosts are accepted for inet: a mail directory and an
// authentication oracle have no business on a public interface.

import { isIP } from 'node:net';
import { isAbsolute } from 'node:path';

export type ListenAddress = { kind: 'inet'; host: string; port: number; text: string } | { kind: 'unix'; path: string; text: string };

function isLoopback(host: string): boolean {
  if (host === 'localhost') return true;
  if (isIP(host) === 4) return host.startsWith('127.');
  if (isIP(host) === 6) return host === '::1' || host === '0:0:0:0:0:0:0:1';
  return false;
}

export function parseListenAddress(raw: string): ListenAddress {
  const text = raw.trim();
  if (text.startsWith('unix:')) {
    const path = text.slice(5);
    if (!isAbsolute(path) && !path.startsWith('./') && !path.startsWith('../')) {
      throw new Error(`unix socket path must be absolute or start with ./: ${JSON.stringify(path)}`);
    }
    if (Buffer.byteLength(path) > 100) throw new Error(`unix socket path is too long (max 100 bytes): ${path}`);
    return { kind: 'unix', path, text };
  }
  const rest = text.startsWith('inet:') ? text.slice(5) : text;
  let host: string;
  let portText: string;
  const v6 = /^\[([^\]]+)\]:(\d+)$/.exec(rest);
  if (v6) {
    host = v6[1]!;
    portText = v6[2]!;
  } else {
    const i = rest.lastIndexOf(':');
    if (i <= 0) throw new Error(`expected inet:HOST:PORT or unix:PATH, got ${JSON.stringify(text)}`);
    host = rest.slice(0, i);
    portText = rest.slice(i + 1);
  }
  if (!/^\d{1,5}$/.test(portText)) throw new Error(`bad port in ${JSON.stringify(text)}`);
  const port = Number(portText);
  if (port > 65535) throw new Error(`port out of range in ${JSON.stringify(text)}`);
  if (!isLoopback(host)) {
    throw new Error(`refusing non-loopback address ${host}: use 127.0.0.1, ::1 or a unix socket`);
  }
  return { kind: 'inet', host, port, text: `inet:${host.includes(':') ? `[${host}]` : host}:${port}` };
}

export function parseListenList(raw: string): ListenAddress[] {
  return raw
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '')
    .map(parseListenAddress);
}
