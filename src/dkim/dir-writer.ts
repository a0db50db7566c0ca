// Writes the signer's files into dkim_dir: the directory 0750 and every file 0640, both of
// the signer's group; each file atomically (a temporary file made 0600 and only then given
// its group and mode, written, fsynced, renamed over the old one), so that the signer never
// reads half a key or a table naming a key not yet written. Files whose content is already
// right are left alone, and key files no key names any more are removed. Errors name files,
// never their content.

import { constants } from 'node:fs';
import { chmod, chown, lstat, mkdir, open, readdir, readFile, rename, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { keyFileSuffix } from './signer-files.js';

export interface DirChanges {
  written: string[];
  removed: string[];
}

const dirMode = 0o750;
const fileMode = 0o640;

async function currentContent(path: string, gid: number | undefined): Promise<string | undefined> {
  try {
    const st = await lstat(path);
    if (!st.isFile() || (st.mode & 0o777) !== fileMode || (gid !== undefined && st.gid !== gid)) return undefined;
    return await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

async function writeAtomically(dir: string, name: string, content: string, gid: number | undefined): Promise<void> {
  const tmp = join(dir, `.${name}.tmp-${process.pid}`);
  await rm(tmp, { force: true });
  // O_EXCL|O_NOFOLLOW: never through a link someone left in the directory.
  const fh = await open(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
  try {
    if (gid !== undefined) await fh.chown(-1, gid);
    await fh.chmod(fileMode);
    await fh.writeFile(content);
    await fh.sync();
  } catch (err) {
    await fh.close();
    await rm(tmp, { force: true });
    throw err;
  }
  await fh.close();
  await rename(tmp, join(dir, name));
}

async function syncDirectory(dir: string): Promise<void> {
  const fh = await open(dir, constants.O_RDONLY | constants.O_DIRECTORY);
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** The directory, made if missing (its parent must exist), with its group and mode. */
async function prepareDir(dir: string, gid: number | undefined): Promise<void> {
  await mkdir(dir, { mode: dirMode }).catch((err: NodeJS.ErrnoException) => {
    if (err.code !== 'EEXIST') throw err;
  });
  const st = await lstat(dir);
  if (!st.isDirectory()) throw new Error(`${dir} is not a directory`);
  if (gid !== undefined && st.gid !== gid) await chown(dir, -1, gid);
  if ((st.mode & 0o777) !== dirMode) await chmod(dir, dirMode);
}

/** Makes dir hold exactly `files` (and no other key files); says what it changed. */
export async function writeSignerDir(dir: string, files: ReadonlyMap<string, string>, gid: number | undefined): Promise<DirChanges> {
  await prepareDir(dir, gid);
  const written: string[] = [];
  for (const [name, content] of files) {
    if ((await currentContent(join(dir, name), gid)) === content) continue;
    await writeAtomically(dir, name, content, gid);
    written.push(name);
  }
  const removed: string[] = [];
  for (const name of await readdir(dir)) {
    const stale = (name.endsWith(keyFileSuffix) && !files.has(name)) || /^\..+\.tmp-\d+$/.test(name);
    if (!stale) continue;
    await rm(join(dir, name), { force: true });
    removed.push(name);
  }
  if (written.length > 0 || removed.length > 0) await syncDirectory(dir);
  return { written, removed };
}

/** The first of dir's parents anyone may write to: OpenDKIM refuses keys below one (it tempfails every message). */
export async function worldWritableParent(dir: string): Promise<string | undefined> {
  for (let p = dirname(dir); ; p = dirname(p)) {
    try {
      if (((await lstat(p)).mode & 0o002) !== 0) return p;
    } catch {
      return undefined;
    }
    if (p === dirname(p)) return undefined;
  }
}
