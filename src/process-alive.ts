// Whether a process still runs, for files that name their writer's pid (a snapshot's temp
// file, the embedded database's owner record): a file whose process is gone is stale.

/** True while process `pid` exists; signal 0 checks without signalling. EPERM: it exists, another user's. */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
