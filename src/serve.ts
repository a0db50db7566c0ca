// `mailmapd serve`: the composition root. Config → database → directory + sync → the
// protocol listeners (each a thin adapter over the directory or the authenticator) → HTTP.
// Where a socketmap request goes: listener (net/listener.ts) → its connection
// (net/connection.ts) → socketmap/netstring.ts → socketmap/server.ts → directory/directory.ts. Nothing else in the daemon wires modules together; the lifecycle
// pieces (listeners, readiness, reload) live in daemon/.

import { loadConfig, type Config } from './config.js';
import { openDatabase, primaryUrl, type DatabaseHandle } from './db/connect.js';
import { databaseOf, redactUrl } from './db/conninfo.js';
import { createDirectory, type Directory } from './directory/directory.js';
import type { Route } from './http/server.js';
import { createMetricsRoute } from './http/metrics-route.js';
import { createLogger, errorMessage, type Logger } from './log.js';
import { createMetrics, createWritebackMetrics, secondsSince } from './metrics.js';
import { profileFor } from './sync/profile-select.js';
import { createSync, type Sync } from './sync/sync.js';
import { notifySystemd } from './daemon/systemd.js';
import { createListeners, type Listeners, type Service } from './daemon/listeners.js';
import { createReadinessRoute } from './daemon/readiness.js';
import { createReload } from './daemon/reload.js';
import { ExitCode } from './errors.js';
import { randomBytes } from 'node:crypto';
import { hashPassword } from './password/hash.js';
import { createHashPool } from './password/pool.js';
import { createAuthenticator } from './auth/authenticator.js';
import { createSocketmapHandler } from './socketmap/server.js';
import { createAuthClientHandler } from './authclient/server.js';
import { createCheckpasswordHandler } from './checkpassword/server.js';
import { createDovecotRoutes } from './dovecot/route.js';
import { createPolicyRoutes } from './policy/route.js';
import { limiterFor } from './policy/start.js';
import { returnFreedMemoryToOs } from './memory/malloc.js';
import { embeddedUrl } from './db/connect.js';
import { createSnapshotKeeper } from './snapshot/keeper.js';
import { createDictHandler } from './dict/server.js';
import { createPolicyHandler } from './smtpd-policy/protocol.js';
import type { PolicyService } from './smtpd-policy/types.js';
import { oauth2From } from './oauth2/start.js';
import { startWriteback } from './writeback/start.js';
import type { Writer } from './writeback/writer.js';
import { createDkimKeeper, type DkimKeeper } from './dkim/keeper.js';
import { createPolicy } from './smtpd-policy/start.js';

// The embedded default is migrated as it is opened; an external database by its
// administrator with `mailmapd migrate` (the daemon may run with a read-only role).
const prepareDatabase = (config: Config, logger: Logger): Promise<DatabaseHandle> => openDatabase(config, logger, 'daemon');

function announceReady(directory: Directory, listeners: Listeners, started: bigint, logger: Logger): void {
  const c = directory.counts();
  logger.info('ready', {
    seconds: secondsSince(started).toFixed(3),
    domains: c.domain,
    alias_domains: c.alias_domain,
    mailboxes: c.mailbox,
    aliases: c.alias,
    listeners: listeners.summary(),
  });
  notifySystemd(`STATUS=serving ${c.mailbox} mailboxes, ${c.alias} aliases`, logger);
}

// Long because it is the daemon's list of wiring steps, read top to bottom; each step is
// one call into the module that owns it. Add a step as a line here.
export async function serve(configPath: string | undefined, opts: { policyService?: PolicyService } = {}): Promise<number> {
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
  let db: DatabaseHandle | undefined;
  // A copy of the directory on local disk, served when a restart finds PostgreSQL down.
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
  // The signer's key files under dkim_dir: set once the database is open.
  let dkim: DkimKeeper | undefined;
  // One limiter for every door: Dovecot's policy reports and SMTP AUTH on the auth socket.
  // Counted per mailbox: every spelling of a login (alias domains, case) shares one count.
  const canonical = (login: string) => {
    const u = directory.user(login);
    return u.status === 'unknown' ? login : u.address;
  };
  const { limiter, share: limiterShare } = limiterFor(config, metrics, canonical);
  const oauth2 = oauth2From(config, logger);
  // What an unknown login is checked against: new hashes' scheme, so that it costs a real one.
  const decoy = await hashPassword(randomBytes(18).toString('base64'), config.password_scheme).catch(() => undefined);
  const authenticator = createAuthenticator({
    decoy,
    tokens: oauth2?.verifier,
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

  // Postfix's policy service (sending limits, quota at RCPT) behind the `policy_listen` door:
  // answers from memory; follows the database once it is open.
  const policy = createPolicy(() => config, directory, profile, logger, metrics.registry);

  const services: Service[] = [
    {
      name: 'socketmap',
      handler: createSocketmapHandler({ directory, logger, metrics, maxRequestBytes: config.max_request_bytes }),
    },
    {
      name: 'auth',
      handler: createAuthClientHandler({
        authenticator,
        logger,
        metrics,
        failureDelayMs: config.auth_failure_delay,
        maxRequestBytes: config.max_request_bytes,
        bearer: oauth2 !== undefined,
      }),
    },
    {
      name: 'checkpassword',
      handler: createCheckpasswordHandler({ authenticator, logger, metrics, maxRequestBytes: config.max_request_bytes }),
    },
    {
      name: 'dict',
      handler: createDictHandler({
        usage: (address, bytes, messages) => {
          writer?.usage(address, bytes, messages);
          // Kept as text for PostgreSQL (exact past 2^53); a number is exact enough to compare with a quota.
          policy.reported(address, bytes === undefined ? undefined : Number(bytes));
        },
        mailbox: (user) => {
          const u = directory.user(user);
          return u.status === 'unknown' ? undefined : u.address;
        },
        logger,
        metrics,
        writebackMetrics,
        maxRequestBytes: config.max_request_bytes,
        lookup: oauth2?.dovecotKeys,
      }),
    },
    {
      name: 'policy',
      handler: createPolicyHandler({ service: opts.policyService ?? policy.service, loaded: () => directory.loaded, logger, metrics }),
    },
  ];

  const routes = new Map<string, Route>();
  routes.set('GET /healthz', () => ({ status: 200, body: 'ok\n' }));
  routes.set('GET /readyz', createReadinessRoute({ sync: () => sync, directory, logger, snapshotAge: () => snapshots?.servingAge() }));
  if (limiter) for (const [k, r] of createPolicyRoutes({ limiter, config, logger, metrics })) routes.set(k, r);
  for (const [k, r] of createDovecotRoutes({ authenticator, directory, config, logger, metrics })) routes.set(k, r);
  if (config.metrics) {
    routes.set('GET /metrics', createMetricsRoute({ render: () => metrics.registry.metrics(), contentType: metrics.registry.contentType }));
  }

  const listeners = createListeners({ services, routes, config: () => config, logger, metrics });

  /** Stops everything started so far, in the reverse order of the start. */
  async function shutdown(graceMs: number): Promise<void> {
    // Stop accepting, let in-flight requests finish, then drop the database side.
    await listeners.close(graceMs);
    await sync?.stop();
    await snapshots?.close();
    await policy.stop();
    limiterShare?.stop();
    await writer?.stop();
    await dkim?.stop();
    authenticator.close();
    await pool.close();
    await db?.stop().catch((err) => logger.warn('stopping the embedded database failed', { error: errorMessage(err) }));
  }

  try {
    await listeners.openAll();
  } catch (err) {
    logger.error('cannot open a listener', { error: errorMessage(err) });
    await shutdown(0);
    return ExitCode.usage;
  }
  // Before the database: a restart while PostgreSQL is down serves mail from the snapshot.
  snapshots?.restore();
  try {
    db = await prepareDatabase(config, logger);
  } catch (err) {
    logger.error('cannot open the database', { error: errorMessage(err) });
    await shutdown(0);
    return ExitCode.temp;
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
    databasePrimaryUrl: primaryUrl(config),
    maxLagMs: config.replica_max_lag,
    ...(config.shared_counts ? { onCounts: (payload: string) => policy.kick(payload) } : {}),
  };
  const activeSync = snapshots ? snapshots.sync(db.url, syncOptions, createSync) : createSync(syncOptions);
  sync = activeSync;
  activeSync.start();
  // Written only where the sync's history says the primary is: never to one a failover left behind.
  writer = startWriteback(config, db, profile, logger, writebackMetrics, () => activeSync.status().history);
  if (config.dkim_dir !== '') {
    dkim = createDkimKeeper({
      databaseUrl: db.url,
      dir: config.dkim_dir,
      group: config.dkim_group,
      reloadCommand: config.dkim_reload_command,
      logger,
      pollMs: 10_000,
      reconnectMaxDelayMs: config.reconnect_max_delay,
    });
    dkim.start();
  }
  policy.start(db.url, writer, limiterShare ? [limiterShare] : []);

  logger.info('listening', { listeners: listeners.summary(), database: redactUrl(db.url), embedded: db.embedded, schema: config.schema });
  notifySystemd('READY=1\nSTATUS=listening; loading the directory', logger);
  activeSync.firstLoad().then(
    () => announceReady(directory, listeners, started, logger),
    () => {},
  );

  const reload = createReload({
    configPath,
    config: { get: () => config, set: (c) => (config = c) },
    directory,
    listeners,
    logger,
  });

  return new Promise<number>((resolve) => {
    let stopping = false;
    const stop = async (signal: string) => {
      if (stopping) return;
      stopping = true;
      notifySystemd('STOPPING=1', logger);
      logger.info('stopping', { signal });
      await shutdown(5000);
      logger.info('stopped');
      resolve(ExitCode.ok);
    };
    process.on('SIGTERM', () => void stop('SIGTERM'));
    process.on('SIGINT', () => void stop('SIGINT'));
    process.on('SIGHUP', () => {
      if (!stopping) void reload();
    });
  });
}
