// Who runs the embedded PostgreSQL of a data directory. A fresh clone's `npm start` takes a
// few seconds to initialise and start it, and the README's next step is a CLI command: without
// a record of who is starting it, that command found nothing listening and started a second
// server on the same directory, and one of the two died (issue 29, item 7f).
//
// The record is a file beside the data directory, made with O_EXCL, holding the owner's pid
// and role. A daemon keeps its server for as long as it runs, so others wait for it to answer
// and use it; a command stops the server it started when it ends, so others wait for it to
// finish and then start their own (a daemon must not lean on a server about to go away).
// A file whose process is gone is stale and taken over.

import { closeSync, openSync, readFileSync, unlinkSync, writeSync } from 'node:fs';

export type OwnerRole = 'daemon' | 'command';

export interface Owner {
  pid: number;
  role: OwnerRole;
}

export interface Ownership {
  /** Gives up the record (after the server stopped); safe to call twice. */
  release(): void;
}

export const ownerFileOf = (dataDir: string): string => `${dataDir.replace(/\/+$/, '')}.owner`;

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: the process exists but belongs to another user.
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function parse(text: string): Owner | undefined {
  const m = /^(\d+) (daemon|command)\n?$/.exec(text);
  return m ? { pid: Number(m[1]), role: m[2] as OwnerRole } : undefined;
}

/** The live owner other than this process, if any; a stale or unreadable record is removed. */
export function currentOwner(dataDir: string): Owner | undefined {
  const file = ownerFileOf(dataDir);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
  const owner = parse(text);
  // A record being written is empty for an instant: treat it as held by an unknown live owner.
  if (text === '') return { pid: 0, role: 'command' };
  if (owner?.pid === process.pid) return undefined; // ours: not another owner, and kept
  if (owner !== undefined && alive(owner.pid)) return owner;
  try {
    unlinkSync(file);
  } catch {
    // Someone else removed it first.
  }
  return undefined;
}

/** Takes the record, or undefined when another live process holds it. */
export function takeOwnership(dataDir: string, role: OwnerRole): Ownership | undefined {
  const file = ownerFileOf(dataDir);
  if (currentOwner(dataDir) !== undefined) return undefined;
  let fd: number;
  try {
    fd = openSync(file, 'wx', 0o644);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return undefined;
    throw err;
  }
  try {
    writeSync(fd, `${process.pid} ${role}\n`);
  } finally {
    closeSync(fd);
  }
  let held = true;
  const release = (): void => {
    if (!held) return;
    held = false;
    process.off('exit', release);
    try {
      unlinkSync(file);
    } catch {
      // Already gone (removed by hand): nothing to give up.
    }
  };
  // A process that ends without stopping its server (a crash) leaves no record behind;
  // one that is killed leaves a record whose pid is dead, which the next reader removes.
  process.on('exit', release);
  return { release };
}
