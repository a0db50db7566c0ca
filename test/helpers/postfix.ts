// Debian's master.cf services for a private Postfix instance in tests, chrooted where Debian
// chroots them. A test puts its own smtpd listeners (on free loopback ports) in front.

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
