// sd_notify without a native library: Node has no AF_UNIX datagram sockets, so the
// message goes through systemd's own `systemd-notify`, with our PID so that systemd
// attributes it to the main process (the unit sets NotifyAccess=all for the helper).

import { execFile } from 'node:child_process';
import type { Logger } from '../log.js';

export function notifySystemd(message: string, logger: Logger): void {
  if (!process.env.NOTIFY_SOCKET) return;
  const args = [`--pid=${process.pid}`, ...message.split('\n')];
  execFile('systemd-notify', args, (err) => {
    if (err) logger.warn('systemd-notify failed', { error: err.message });
  });
}
