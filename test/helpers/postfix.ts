// A private Postfix instance for tests: its directory, the main.cf lines every instance
// starts with, and Debian's master.cf services, chrooted where Debian chroots them. A test
// puts its own smtpd listeners (on free loopback ports) in front. And Postfix's own table
// client, postmap, for one key or a batch of keys on stdin.

import { execFile, spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { stopByPidFile } from './pid-file.js';

const services = [
  'pickup unix n - y 60 1 pickup',
  'cleanup unix n - y - 0 cleanup',
  'qmgr unix n - n 300 1 qmgr',
  'rewrite unix - - y - - trivial-rewrite',
  'bounce unix - - y - 0 bounce',
  'defer unix - - y - 0 bounce',
  'trace unix - - y - 0 bounce',
  'verify unix - - y - 1 verify',
  'flush unix n - y 1000? 0 flush',
  'proxymap unix - - n - - proxymap',
  'smtp unix - - y - - smtp',
  'relay unix - - y - - smtp',
  'showq unix n - y - - showq',
  'error unix - - y - - error',
  'retry unix - - y - - error',
  'discard unix - - y - - discard',
  'lmtp unix - - y - - lmtp',
  'anvil unix - - y - 1 anvil',
  'scache unix - - y - 1 scache',
  'tlsmgr unix - - y 1000? 1 tlsmgr',
  'postlog unix-dgram n - n - 1 postlogd',
];

/** A master.cf: the given smtpd lines, then Debian's services. */
export function masterCf(smtpdLines: string[]): string {
  return [...smtpdLines, ...services, ''].join('\n');
}

/**
 * A private Postfix instance: a directory with etc, spool and data (data owned by postfix,
 * as Postfix wants it) and the test's own extra folders, and what the tests do with it.
 */
export interface PostfixInstance {
  dir: string;
  postfixUid: number;
  /** The main.cf lines every private instance starts with; the test adds its own after them. */
  mainCf(extra: string[]): string;
  /** `postfix -c DIR/etc ARGS…`. */
  run(...args: string[]): SpawnSyncReturns<string>;
  /** Its log so far ('' before it wrote one). */
  maillog(): string;
  /** `postfix stop`, waiting until its master has gone. */
  stop(): Promise<void>;
}

export function postfixInstance(parent: string, prefix: string, extraFolders: string[] = []): PostfixInstance {
  const dir = mkdtempSync(join(parent, prefix));
  chmodSync(dir, 0o755);
  for (const sub of ['etc', 'spool', 'data', ...extraFolders]) mkdirSync(join(dir, sub));
  const postfixUid = Number(spawnSync('id', ['-u', 'postfix'], { encoding: 'utf8' }).stdout);
  chownSync(join(dir, 'data'), postfixUid, 0);
  const run = (...args: string[]) => spawnSync('/usr/sbin/postfix', ['-c', join(dir, 'etc'), ...args], { encoding: 'utf8', timeout: 30_000 });
  return {
    dir,
    postfixUid,
    mainCf: (extra) =>
      [
        'compatibility_level = 3.6',
        `queue_directory = ${dir}/spool`,
        `data_directory = ${dir}/data`,
        'mail_owner = postfix',
        'setgid_group = postdrop',
        'myhostname = mx.example.test',
        'mydestination =',
        'alias_maps =',
        'alias_database =',
        'local_recipient_maps =',
        'inet_interfaces = 127.0.0.1',
        'inet_protocols = ipv4',
        `maillog_file = ${dir}/maillog`,
        `maillog_file_prefixes = ${dir}`,
        'recipient_delimiter = +',
        ...extra,
        '',
      ].join('\n'),
    run,
    maillog: () => (existsSync(join(dir, 'maillog')) ? readFileSync(join(dir, 'maillog'), 'utf8') : ''),
    async stop() {
      run('stop');
      await stopByPidFile(join(dir, 'spool', 'pid', 'master.pid'), 'Postfix');
    },
  };
}

export const POSTMAP = process.env.POSTMAP ?? '/usr/sbin/postmap';

export interface PostmapRun {
  code: number;
  stdout: Buffer;
  stderr: string;
}

/** Runs postmap with `args`, `input` on its stdin; resolves with its exit code and output. */
export function postmap(args: string[], input?: Buffer): Promise<PostmapRun> {
  return new Promise((resolve, reject) => {
    const child = execFile(POSTMAP, args, { encoding: 'buffer', timeout: 30_000, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      if (err && typeof (err as { code?: unknown }).code !== 'number') return reject(err);
      resolve({ code: err ? (err as unknown as { code: number }).code : 0, stdout, stderr: stderr.toString('utf8') });
    });
    // `postmap -q KEY` exits without reading stdin: the pipe may be closed already.
    child.stdin!.on('error', () => {});
    child.stdin!.end(input ?? Buffer.alloc(0));
  });
}

/**
 * `postmap -q - TABLE` over `keys` (one process, keys on stdin): key → value of every key
 * found. Throws when postmap complains or fails (a TEMP or a query error ends the batch).
 */
export async function postmapBatch(table: string, keys: readonly string[]): Promise<Map<string, string>> {
  const r = await postmap(['-q', '-', table], Buffer.from(keys.map((k) => `${k}\n`).join('')));
  if (r.stderr !== '' || r.code > 1) throw new Error(`postmap -q - ${table} exited ${r.code}: ${r.stderr}`);
  const found = new Map<string, string>();
  for (const line of r.stdout.toString('utf8').split('\n')) {
    const tab = line.indexOf('\t');
    if (tab >= 0) found.set(line.slice(0, tab), line.slice(tab + 1));
  }
  return found;
}

/** What `postmap -q KEY TABLE` says: the value, undefined for not found, or TEMP when the lookup failed. */
export async function postmapOne(table: string, key: string): Promise<string | undefined> {
  const r = await postmap(['-q', key, table]);
  if (r.code === 0) return r.stdout.toString('utf8').replace(/\n$/, '');
  if (r.code === 1 && r.stderr === '') return undefined;
  if (/fatal: table .*: query error/.test(r.stderr)) return 'TEMP';
  throw new Error(`postmap -q ${key} ${table} exited ${r.code}: ${r.stderr}`);
}
