// Keeps the signer's view of the DKIM keys under dkim_dir fresh on this host, like the
// directory: it reads mailmapd.dkim_keys at start and whenever mailmapd.dkim_state's counter
// moved (the change trigger bumps it; a primary also rings NOTIFY mailmapd_dkim, a standby
// is polled), rewrites what changed (dir-writer.ts), then runs dkim_reload_command so that
// OpenDKIM reads its tables again. A failed write or reload is tried again at the next poll.
// It holds one connection of its own, apart from the sync's: a key change is rare, a
// dropped doorbell costs one poll interval, and the directory's sync knows nothing of keys.
// Logs name domains, selectors, files and exit statuses, never a key.

import { createBackoff } from '../backoff.js';
import type pg from 'pg';
import { connectClient, destroyClient } from '../db/client.js';
import { redactUrl } from '../db/conninfo.js';
import { isConnectionLoss, sqlstate, sqlstateOf } from '../db/sqlstate.js';
import { errorMessage, type Logger } from '../log.js';
import { worldWritableParent, writeSignerDir } from './dir-writer.js';
import type { DkimAlgorithm } from './keys.js';
import { groupId, runReloadCommand } from './reload-command.js';
import { type SigningKey, signerFiles } from './signer-files.js';

export interface DkimKeeperOptions {
  databaseUrl: string;
  dir: string;
  group: string;
  reloadCommand: string;
  logger: Logger;
  /** How often the counter is read (a standby has no doorbell). */
  pollMs: number;
  /** Longest wait between reconnects. */
  reconnectMaxDelayMs: number;
}

export interface DkimKeeper {
  start(): void;
  stop(): Promise<void>;
  /** Resolves after the next completed round (a test's hook; the daemon never waits). */
  nextRound(): Promise<void>;
}

interface KeyRow {
  domain: string;
  selector: string;
  algorithm: DkimAlgorithm;
  private_key: string;
  active: boolean;
}

// Long because it is one state machine — connect, listen, poll, rewrite, reload, back off —
// whose pieces share the connection and the last applied counter.
export function createDkimKeeper(opts: DkimKeeperOptions): DkimKeeper {
  const { logger } = opts;
  let client: pg.Client | undefined;
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> | undefined;
  let again = false;
  let applied: string | undefined; // the dkim_state version written to disk
  let reloadPending = false;
  let failures = 0;
  // A key change is no emergency: the first retry after half a second, at most a poll apart.
  const backoff = createBackoff(Math.min(opts.reconnectMaxDelayMs, opts.pollMs), Math.random, 500);
  let lastProblem = '';
  let waiters: (() => void)[] = [];

  /** Logs a problem once until it changes or a round succeeds. */
  function problem(msg: string, fields: Record<string, string>): void {
    const key = msg + JSON.stringify(fields);
    if (key !== lastProblem) logger.warn(msg, fields);
    lastProblem = key;
  }

  async function connect(): Promise<pg.Client> {
    const c = await connectClient(opts.databaseUrl, 'mailmapd-dkim', 5000, 15_000);
    c.on('error', () => {
      if (client === c) client = undefined;
      destroyClient(c);
    });
    c.on('notification', (n) => {
      if (n.channel === 'mailmapd_dkim') schedule(0);
    });
    const rec = await c.query<{ r: boolean }>('SELECT pg_is_in_recovery() AS r');
    if (rec.rows[0]?.r !== true) await c.query('LISTEN mailmapd_dkim');
    return c;
  }

  async function rewrite(c: pg.Client, version: string): Promise<void> {
    const rows = await c.query<KeyRow>('SELECT domain, selector, algorithm, private_key, active FROM mailmapd.dkim_keys');
    const keys: SigningKey[] = rows.rows.map((r) => ({
      domain: r.domain,
      selector: r.selector,
      algorithm: r.algorithm,
      privateKey: r.private_key,
      active: r.active,
    }));
    const { files, skipped } = signerFiles(opts.dir, keys);
    for (const s of skipped)
      logger.warn('DKIM key left out: its domain or selector cannot be a file name', { domain: s.domain.slice(0, 100), selector: s.selector.slice(0, 100) });
    const gid = opts.group === '' ? undefined : await groupId(opts.group);
    if (opts.group !== '' && gid === undefined) problem('dkim_group does not exist: the signer files keep the daemon group', { group: opts.group });
    const changes = await writeSignerDir(opts.dir, files, gid);
    if (changes.written.length > 0 || changes.removed.length > 0) {
      logger.info('DKIM signer files rewritten', {
        dir: opts.dir,
        keys: keys.length,
        signing: keys.filter((k) => k.active).length,
        written: changes.written.length,
        removed: changes.removed.length,
      });
      reloadPending = true;
    }
    applied = version;
  }

  async function reload(): Promise<void> {
    if (!reloadPending || opts.reloadCommand === '') {
      reloadPending = false;
      return;
    }
    const r = await runReloadCommand(opts.reloadCommand);
    if (r.ok) {
      reloadPending = false;
      logger.info('dkim_reload_command ran', { status: r.status });
    } else problem('dkim_reload_command failed; trying again at the next poll', { status: r.status });
  }

  async function round(): Promise<void> {
    try {
      client ??= await connect();
      const v = await client.query<{ version: string }>('SELECT version::text AS version FROM mailmapd.dkim_state');
      const version = v.rows[0]?.version ?? '0';
      if (version !== applied) await rewrite(client, version);
      await reload();
      failures = 0;
      backoff.reset();
      if (!reloadPending) lastProblem = '';
    } catch (err) {
      failures++;
      const code = sqlstateOf(err);
      if (code === sqlstate.undefinedTable) problem('no mailmapd.dkim_keys in the database: run `mailmapd migrate`', {});
      else if (code === sqlstate.insufficientPrivilege) problem("the daemon's role may not read mailmapd.dkim_keys.private_key: grant it (README, DKIM)", {});
      else problem('DKIM keys not refreshed', { database: redactUrl(opts.databaseUrl), error: errorMessage(err) });
      // A statement's error leaves the connection usable; anything else (a lost connection, a timeout) does not.
      if (client && (code === undefined || isConnectionLoss(code))) {
        destroyClient(client);
        client = undefined;
      }
    }
  }

  function delay(): number {
    return failures === 0 ? opts.pollMs : backoff.next();
  }

  function schedule(ms: number): void {
    if (stopped) return;
    if (running) {
      again = true;
      return;
    }
    clearTimeout(timer);
    timer = setTimeout(() => {
      running = round().finally(() => {
        running = undefined;
        const w = waiters;
        waiters = [];
        for (const f of w) f();
        schedule(again ? 0 : delay());
        again = false;
      });
    }, ms);
  }

  return {
    start() {
      worldWritableParent(opts.dir).then(
        (p) => p && logger.warn('dkim_dir is below a directory anyone may write to: OpenDKIM refuses such keys', { dir: opts.dir, parent: p }),
        () => {},
      );
      schedule(0);
    },
    async stop() {
      stopped = true;
      clearTimeout(timer);
      await running;
      if (client) destroyClient(client);
      client = undefined;
    },
    nextRound: () => new Promise((resolve) => waiters.push(resolve)),
  };
}
