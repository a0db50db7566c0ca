// One daemon's sync for bench/replicas.mjs, in a process of its own as on a mail host:
// it reads the database as the real daemon does and tells its parent, over the IPC
// channel, when each changed mailbox reached its directory. Times are
// process.hrtime.bigint(): the monotonic clock, the same in every process of the machine.
// argv[2]: JSON { databaseUrl, databasePrimaryUrl?, pollIntervalMs }.

import { load } from './lib.mjs';

const { createDirectory } = await load('directory/directory.js');
const { createSync } = await load('sync/sync.js');
const { nativeProfile } = await load('sync/profile.js');
const { createMetrics } = await load('metrics.js');
const { silentLogger } = await load('log.js');

const opts = JSON.parse(process.argv[2]);
const directory = createDirectory({ recipientDelimiter: '+' });
const sync = createSync({
  databaseUrl: opts.databaseUrl,
  databasePrimaryUrl: opts.databasePrimaryUrl,
  profile: nativeProfile,
  directory,
  logger: silentLogger,
  metrics: createMetrics(false),
  pollIntervalMs: opts.pollIntervalMs,
  retentionMs: 86_400_000,
  reconnectMaxDelayMs: 1000,
});
directory.onChange((kind, key) => {
  const at = process.hrtime.bigint();
  if (kind === 'mailbox' && key !== null) process.send({ seen: key, at: String(at) });
});
sync.start();
await sync.firstLoad();
// The doorbell daemon connects to the primary in the background, after its first load.
while (opts.databasePrimaryUrl && !sync.status().primaryConnected) await new Promise((r) => setTimeout(r, 20));
process.send({ ready: true });
process.on('message', async (m) => {
  if (m.stop) {
    await sync.stop();
    process.disconnect();
  }
});
