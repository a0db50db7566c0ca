// `mailmapd serve`: the composition root. Config → database → directory + sync → the
// protocol listeners (each a thin adapter over the directory or the authenticator) → HTTP.
// Where a socketmap request goes: listener (net/listener.ts) → socketmap/server.ts →
// directory/directory.ts. Nothing else in the daemon wires modules together.

import pg from 'pg';
import { loadConfig, type Config, type ConfigKey } from './config.js';
import { openDatabase, redactUrl, type DatabaseHandle } from './db/connect.js';
import { migrate } from './db/schema.js';
import { createDirectory } from './directory/directory.js';
import { json, serveHttp, type HttpServer, type Route } from './http/server.js';
import type { ListenAddress } from './listen.js';
import { createLogger, errorMessage, type Logger } from './log.js';
import { createMetrics, type Metrics } from './metrics.js';
import { listen, type ConnectionHandler, type Listener } from './net/listener.js';
import { profileFor } from './sync/profile-select.js';
import { createSync, type Sync } from './sync/sync.js';
import { notifySystemd } from './daemon/systemd.js';
import { createHashPool } from './password/pool.js';
import { createAuthenticator } from './auth/authenticator.js';
import { createSocketmapHandler } from './socketmap/server.js';
import { createAuthClientHandler } from './authclient/server.js';
import { createCheckpasswordHandler } from './checkpassword/server.js';
import { createDovecotRoutes } from './dovecot/route.js';
import { createLimiter, settingsFrom } from './policy/limiter.js';
import { createPolicyRoutes } from './policy/route.js';
import { returnFreedMemoryToOs } from './memory/malloc.js';
import { embeddedUrl } from './db/connect.js';
import { createSnapshotKeeper } from './snapshot/keeper.js';
import { databaseOf } from './snapshot/format.js';
import { createDictHandler } from './dict/server.js';
import { createWritebackMetrics } from './writeback/metrics.js';
import { startWriteback } from './writeback/start.js';
import type { Writer } from './writeback/writer.js';

/** A protocol served on the addresses of one config key. */
interface Service {
  name: string;
  key: 'socketmap_listen' | 'auth_listen' | 'checkpassword_listen' | 'dict_listen';
  handler: ConnectionHandler;
}

interface Running {
  service: Service;
  listener: Listener;
}

/** Keys a SIGHUP applies without a restart. */
const reloadable = new Set<ConfigKey>(['log_level', 'recipient_delimiter', 'socketmap_listen', 'auth_listen', 'checkpassword_listen', 'http_listen', 'dict_listen']);

function listenerEvents(metrics: Metrics) {
  return {
    opened: (l: string) => {
      metrics.connectionsOpen.inc({ listener: l });
      metrics.connectionsTotal.inc({ listener: l });
    },
    closed: (l: string) => metrics.connectionsOpen.dec({ listener: l }),
    refused: (l: string) => metrics.connectionsRefused.inc({ listener: l }),
    evicted: (l: string) => metrics.connectionsEvicted.inc({ listener: l }),
    requestTimedOut: (l: string) => metrics.badInput.inc({ listener: l, reason: 'request_timeout' }),
  };
}

async function prepareDatabase(config: Config, logger: Logger): Promise<DatabaseHandle> {
  const db = await openDatabase(config, logger);
  // The embedded default is ours to shape; an external database is migrated by its
  // administrator with `mailmapd migrate` (the daemon may run with a read-only role).
  if (db.embedded) {
    const c = new pg.Client({ connectionString: db.url });
    await c.connect();
    try {
      const r = await migrate(c);
      if (r.applied.length > 0) logger.info('migrated the embedded database', { from: r.from, to: r.to });
    } finally {
      await c.end();
    }
  }
  return db;
}

export async function serve(configPath: string | undefined): Promise<number> {
  let config = loadConfig({ path: configPath });
  const logger = createLogger(config.log_level);
  const profile = await profileFor(config.schema); // a broken custom profile is a config error
  const started = process.hrtime.bigint();
  const startedAt = Date.now();
  const metrics = createMetrics(config.metrics);
  // Before the directory allocates: so that a full reload's old copy leaves the process.
  if (!returnFreedMemoryToOs()) {
    logger.info('malloc setting not built (scripts/build-malloc.mjs): memory freed by a full reload may stay with the process', {});
  }
  const directory = createDirectory({ recipientDelimiter: config.recipient_delimiter });
  // Set once the database is open; listeners come first so that a port in use fails the
  // start before an embedded PostgreSQL is spun up. Until the first load every answer is TEMP.
  let sync: Sync | undefined;
  const snapshots =
    config.snapshot_file === ''
      ? undefined
      : createSnapshotKeeper({
          path: config.snapshot_file,
          maxAgeMs: config.snapshot_max_age,
          source: { database: databaseOf(config.database_url || embeddedUrl(config)), schema: config.schema },
          directory,
          logger,
          metrics,
        });

  const pool = createHashPool({
    workers: config.hash_workers,
    queueLimit: config.hash_queue_limit,
    defaultScheme: config.default_scheme,
    metrics,
    logger,
  });
  // Last logins and quota usage: set once the database is open; nothing waits for it.
  const writebackMetrics = createWritebackMetrics(metrics.registry);
  let writer: Writer | undefined;
  // One limiter for every door: Dovecot's policy reports and SMTP AUTH on the auth socket.
  const limiter = config.policy_enabled ? createLimiter(settingsFrom(config), metrics) : undefined;
  const authenticator = createAuthenticator({
    limiter,
    directory,
    pool,
    logger,
    metrics,
    userdb: { mailHome: config.mail_home, mailUid: config.mail_uid, mailGid: config.mail_gid },
    cacheSize: config.auth_cache_size,
    maxStalenessMs: config.auth_max_staleness,
    // Before the first successful sync the data is as old as the snapshot served, if any;
    // otherwise age counts from the start.
    lastRefresh: () => {
      const last = sync?.status().lastSuccess ?? 0;
      if (last > 0) return last;
      const age = snapshots?.servingAge();
      return age !== undefined ? Date.now() - age * 1000 : startedAt;
    },
    onLogin: config.last_logins ? (address, ctx) => writer?.login(address, ctx.service, ctx.remoteIp) : undefined,
  });

  const services: Service[] = [
    {
      name: 'socketmap',
      key: 'socketmap_listen',
      handler: createSocketmapHandler({ directory, logger, metrics, maxRequestBytes: config.max_request_bytes }),
    },
    {
      name: 'auth',
      key: 'auth_listen',
      handler: createAuthClientHandler({
        authenticator,
        logger,
        metrics,
        failureDelayMs: config.auth_failure_delay,
        maxRequestBytes: config.max_request_bytes,
      }),
    },
    {
      name: 'checkpassword',
      key: 'checkpassword_listen',
      handler: createCheckpasswordHandler({ authenticator, logger, metrics, maxRequestBytes: config.max_request_bytes }),
    },
    {
      name: 'dict',
      key: 'dict_listen',
      handler: createDictHandler({
        usage: (address, bytes, messages) => writer?.usage(address, bytes, messages),
        mailbox: (user) => {
          const u = directory.user(user);
          return u.status === 'unknown' ? undefined : u.address;
        },
        logger,
        metrics,
        writebackMetrics,
        maxRequestBytes: config.max_request_bytes,
      }),
    },
  ];

  const limits = () => ({ maxConnections: config.max_connections, idleTimeoutMs: config.idle_timeout, requestTimeoutMs: config.request_timeout });
  const unixOptions = () => ({ mode: config.unix_socket_mode, group: config.unix_socket_group });
  const events = listenerEvents(metrics);
  let running: Running[] = [];

  async function openService(service: Service, address: ListenAddress): Promise<Running> {
    const listener = await listen(address, service.name, service.handler, limits(), unixOptions(), logger, events);
    return { service, listener };
  }

  const routes = new Map<string, Route>();
  routes.set('GET /healthz', () => ({ status: 200, body: 'ok\n' }));
  routes.set('GET /readyz', () => {
    const snapshotAge = snapshots?.servingAge();
    if (snapshotAge !== undefined) return json(503, { ready: false, reason: 'serving a snapshot', snapshot_age_seconds: snapshotAge, error: sync?.status().lastError });
    if (!sync) return json(503, { ready: false, reason: 'opening the database' });
    const s = sync.status();
    if (!s.loaded) return json(503, { ready: false, reason: 'directory not loaded yet', error: s.lastError });
    if (!s.connected) return json(503, { ready: false, reason: 'database unreachable; serving the last good copy', error: s.lastError });
    const server = { host: s.host, standby: s.standby, lag_seconds: s.lagSeconds, lag_bytes: s.lagBytes, last_success: new Date(s.lastSuccess).toISOString() };
    if (!sync.inSync()) return json(503, { ready: false, reason: 'sync is lagging', ...server });
    return json(200, { ready: true, entries: directory.counts(), ...server });
  });
  if (limiter) for (const [k, r] of createPolicyRoutes({ limiter, config, logger, metrics })) routes.set(k, r);
  for (const [k, r] of createDovecotRoutes({ authenticator, directory, config, logger, metrics })) routes.set(k, r);
  if (config.metrics) {
    routes.set('GET /metrics', async () => ({
      status: 200,
      body: await metrics.registry.metrics(),
      contentType: metrics.registry.contentType,
    }));
  }

  let http: HttpServer[] = [];
  const openHttp = async () =>
    Promise.all(
      config.http_listen.map((a) =>
        serveHttp(a, routes, { maxConnections: config.max_connections, maxBodyBytes: 65536, idleTimeoutMs: 5000 }, unixOptions(), logger, metrics),
      ),
    );

  try {
    for (const s of services) for (const a of config[s.key]) running.push(await openService(s, a));
    http = await openHttp();
  } catch (err) {
    logger.error('cannot open a listener', { error: errorMessage(err) });
    for (const r of running) await r.listener.close(0);
    for (const h of http) await h.close(0);
    return 2;
  }

  // Before the database: a restart while PostgreSQL is down serves mail from the snapshot.
  snapshots?.restore();

  let db: DatabaseHandle;
  try {
    db = await prepareDatabase(config, logger);
  } catch (err) {
    logger.error('cannot open the database', { error: errorMessage(err) });
    for (const r of running) await r.listener.close(0);
    for (const h of http) await h.close(0);
    return 75;
  }
  const syncOptions = {
    databaseUrl: db.url,
    profile,
    directory,
    logger,
    metrics,
    pollIntervalMs: config.sync_poll_interval,
    retentionMs: config.changes_retention,
    reconnectMaxDelayMs: config.reconnect_max_delay,
    databasePrimaryUrl: config.database_primary_url === '' ? undefined : config.database_primary_url,
    maxLagMs: config.replica_max_lag,
  };
  const activeSync = snapshots ? snapshots.sync(db.url, syncOptions, createSync) : createSync(syncOptions);
  sync = activeSync;
  activeSync.start();
  const activeWriter = startWriteback(config, db, profile, logger, writebackMetrics);
  writer = activeWriter;

  const listenerSummary = () =>
    [...running.map((r) => `${r.service.name}=${r.listener.address.text}`), ...config.http_listen.map((a) => `http=${a.text}`)].join(' ');
  logger.info('listening', {
    listeners: listenerSummary(),
    database: redactUrl(db.url),
    embedded: db.embedded,
    schema: config.schema,
  });
  notifySystemd('READY=1\nSTATUS=listening; loading the directory', logger);
  activeSync.firstLoad().then(
    () => {
      const c = directory.counts();
      logger.info('ready', {
        seconds: (Number(process.hrtime.bigint() - started) / 1e9).toFixed(3),
        domains: c.domain,
        alias_domains: c.alias_domain,
        mailboxes: c.mailbox,
        aliases: c.alias,
        listeners: listenerSummary(),
      });
      notifySystemd(`STATUS=serving ${c.mailbox} mailboxes, ${c.alias} aliases`, logger);
    },
    () => {},
  );

  async function reload(): Promise<void> {
    let next: Config;
    try {
      next = loadConfig({ path: configPath });
    } catch (err) {
      logger.error('SIGHUP: config rejected; keeping the running one', { error: errorMessage(err) });
      return;
    }
    const restartNeeded = (Object.keys(next) as ConfigKey[]).filter(
      (k) => k !== ('source' as ConfigKey) && !reloadable.has(k) && JSON.stringify(next[k]) !== JSON.stringify(config[k]),
    );
    const prev = config;
    config = next;
    logger.setLevel(config.log_level);
    directory.setRecipientDelimiter(config.recipient_delimiter);
    // Re-open only listeners whose addresses changed; the directory stays as it is.
    const kept: Running[] = [];
    for (const r of running) {
      if (config[r.service.key].some((a) => a.text === r.listener.address.text)) kept.push(r);
      else await r.listener.close();
    }
    for (const s of services) {
      for (const a of config[s.key]) {
        if (kept.some((r) => r.service === s && r.listener.address.text === a.text)) continue;
        try {
          kept.push(await openService(s, a));
        } catch (err) {
          logger.error('SIGHUP: cannot open listener', { listener: s.name, address: a.text, error: errorMessage(err) });
        }
      }
    }
    running = kept;
    if (JSON.stringify(prev.http_listen) !== JSON.stringify(config.http_listen)) {
      await Promise.all(http.map((h) => h.close(1000)));
      try {
        http = await openHttp();
      } catch (err) {
        logger.error('SIGHUP: cannot open the HTTP listener', { error: errorMessage(err) });
        http = [];
      }
    }
    logger.info('configuration reloaded', {
      listeners: listenerSummary(),
      restart_needed_for: restartNeeded.length > 0 ? restartNeeded.join(',') : undefined,
    });
  }

  return new Promise<number>((resolve) => {
    let stopping = false;
    const stop = async (signal: string) => {
      if (stopping) return;
      stopping = true;
      notifySystemd('STOPPING=1', logger);
      logger.info('stopping', { signal });
      // Stop accepting, let in-flight requests finish, then drop the database side.
      await Promise.all([...running.map((r) => r.listener.close(5000)), ...http.map((h) => h.close(5000))]);
      await activeSync.stop();
      await snapshots?.close();
      await activeWriter.stop();
      authenticator.close();
      await pool.close();
      await db.stop().catch((err) => logger.warn('stopping the embedded database failed', { error: errorMessage(err) }));
      logger.info('stopped');
      resolve(0);
    };
    process.on('SIGTERM', () => void stop('SIGTERM'));
    process.on('SIGINT', () => void stop('SIGINT'));
    process.on('SIGHUP', () => {
      if (!stopping) void reload();
    });
  });
}
