// GET /dovecot/users (doveadm -A, `doveadm user '*'`) names every account: it is given
// only with the shared secret — without http_secret it is refused — and it is streamed,
// so that clients that ask and never read cost a piece of the list each, not the list.

import { connect, type Socket } from 'node:net';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAuthenticator } from '../../src/auth/authenticator.js';
import { parseConfigText } from '../../src/config.js';
import { createDirectory, emptyData, type Directory } from '../../src/directory/directory.js';
import { createDovecotRoutes } from '../../src/dovecot/route.js';
import { serveHttp, type HttpServer } from '../../src/http/server.js';
import { createLogger } from '../../src/log.js';
import { createMetrics } from '../../src/metrics.js';
import { createHashPool, type HashPool } from '../../src/password/pool.js';
import { freePort } from '../helpers/daemon.js';

let pool: HashPool;
let directory: Directory;
const mailboxes = 300_000;

beforeAll(() => {
  pool = createHashPool({ workers: 1, queueLimit: 10, defaultScheme: 'CRYPT', metrics: createMetrics(false), logger: createLogger('error', () => {}) });
  directory = createDirectory({ recipientDelimiter: '+' });
  const data = emptyData();
  data.domains.set('example.org', true);
  for (let i = 0; i < mailboxes; i++) data.mailboxes.set(`user${i}.with.a.longer.name@example.org`, { password: '{PLAIN}x', quotaBytes: 0, active: true });
  directory.replaceAll(data);
});
afterAll(() => pool.close());

async function stack(secret: string): Promise<{ http: HttpServer; port: number; close(): Promise<void> }> {
  const port = await freePort();
  const config = parseConfigText([`http_listen = 127.0.0.1:${port}`, `http_secret = ${secret}`].join('\n'), 'test');
  const metrics = createMetrics(false);
  const logger = createLogger('error', () => {});
  const authenticator = createAuthenticator({ directory, pool, logger, metrics, userdb: { mailHome: '/m/%d/%n', mailUid: 1, mailGid: 1 }, cacheSize: 10 });
  const routes = createDovecotRoutes({ authenticator, directory, config, logger, metrics });
  const http = await serveHttp(
    config.http_listen[0]!,
    routes,
    { maxConnections: 100, maxBodyBytes: 65536, idleTimeoutMs: 60_000, requestTimeoutMs: 30_000 },
    { mode: 0o660, group: '' },
    logger,
    metrics,
  );
  return {
    http,
    port,
    async close() {
      authenticator.close();
      await http.close(0);
    },
  };
}

describe('GET /dovecot/users', () => {
  it('is refused when no http_secret is set', async () => {
    const s = await stack('');
    try {
      const r = await fetch(`http://127.0.0.1:${s.port}/dovecot/users`);
      expect(r.status).toBe(403);
      expect(await r.text()).not.toMatch(/@example\.org/);
    } finally {
      await s.close();
    }
  });

  it('is streamed: twenty clients that never read hold little memory, and a reader gets every line', async () => {
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    const secret = 'list-secret';
    const s = await stack(secret);
    const sockets: Socket[] = [];
    try {
      gc();
      const before = process.memoryUsage();
      for (let i = 0; i < 20; i++) {
        const c = connect(s.port, '127.0.0.1');
        c.pause(); // asks, never reads
        c.write(`GET /dovecot/users HTTP/1.1\r\nhost: x\r\nauthorization: Bearer ${secret}\r\n\r\n`);
        sockets.push(c);
      }
      await new Promise((r) => setTimeout(r, 1500));
      gc();
      const after = process.memoryUsage();
      const grown = after.heapUsed + after.external - (before.heapUsed + before.external);
      // The whole list is ~12 MB; twenty copies would be 240 MB.
      expect(grown).toBeLessThan(40 * 1024 * 1024);

      const r = await fetch(`http://127.0.0.1:${s.port}/dovecot/users`, { headers: { authorization: `Bearer ${secret}` } });
      expect(r.status).toBe(200);
      const lines = (await r.text()).split('\n').filter(Boolean);
      expect(lines.length).toBe(mailboxes);
      expect(new Set(lines).size).toBe(mailboxes);
    } finally {
      for (const c of sockets) c.destroy();
      await s.close();
    }
  });
});
