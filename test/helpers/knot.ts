// A real authoritative DNS server for tests: Knot DNS (`knotd`, Debian's `knot`) in the
// foreground on 127.0.0.1 and a free port, serving one zone from a file the test writes.
// `setZone` rewrites the zone (with a higher serial) and has the server load it again.

import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { freePort } from './daemon.js';
import { waitFor } from './db.js';

export interface Knot {
  port: number;
  /** Replaces the zone's records (zone-file lines, names absolute) and waits until it is served. */
  setZone(lines: readonly string[]): Promise<void>;
  logs(): string;
  stop(): Promise<void>;
}

export async function startKnot(dir: string, zone: string, lines: readonly string[]): Promise<Knot> {
  mkdirSync(dir, { recursive: true });
  const port = await freePort();
  const conf = join(dir, 'knot.conf');
  const socket = join(dir, 'knot.sock');
  writeFileSync(
    conf,
    `server:
    rundir: "${dir}"
    listen: 127.0.0.1@${port}
    udp-workers: 1
    tcp-workers: 1
    background-workers: 1
control:
    listen: "${socket}"
database:
    storage: "${dir}"
template:
  - id: default
    storage: "${dir}"
    zonefile-sync: -1
    zonefile-load: whole
    journal-content: none
zone:
  - domain: ${zone}
    file: "${zone}.zone"
`,
  );
  let serial = 0;
  const writeZone = (records: readonly string[]) => {
    serial++;
    writeFileSync(
      join(dir, `${zone}.zone`),
      [
        `$TTL 300`,
        `${zone}. 300 IN SOA ns.${zone}. hostmaster.${zone}. ${serial} 3600 600 86400 300`,
        `${zone}. 300 IN NS ns.${zone}.`,
        `ns.${zone}. 300 IN A 127.0.0.1`,
        ...records,
        '',
      ].join('\n'),
    );
  };
  const servedSerial = () => {
    const r = spawnSync('knotc', ['-s', socket, 'zone-status', zone], { encoding: 'utf8' });
    return /serial: (\d+)/.exec(r.stdout)?.[1];
  };
  writeZone(lines);
  const child: ChildProcess = spawn('knotd', ['-c', conf], { stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  child.stdout!.on('data', (d) => (log += d));
  child.stderr!.on('data', (d) => (log += d));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  await waitFor(() => child.exitCode === null && servedSerial() === String(serial), 20_000, `knotd serving ${zone}:\n${log}`);
  return {
    port,
    async setZone(records) {
      writeZone(records);
      const r = spawnSync('knotc', ['-s', socket, 'zone-reload', zone], { encoding: 'utf8' });
      if (r.status !== 0) throw new Error(`knotc zone-reload: ${r.stdout}${r.stderr}`);
      await waitFor(() => servedSerial() === String(serial), 20_000, `knotd loading serial ${serial}:\n${log}`);
    },
    logs: () => log,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      await exited;
    },
  };
}
