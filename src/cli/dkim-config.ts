// `mailmapd dkim-config`: what the signer (OpenDKIM as a Postfix milter, or rspamd) and
// Postfix need to sign with the keys the daemon keeps under dkim_dir, and what the daemon
// needs to make OpenDKIM read them again after a change.

import { join } from 'node:path';
import type { Config } from '../config.js';
import { keyTableFile, rspamdSelectorMapFile, signingTableEd25519File, signingTableFile } from '../dkim/signer-files.js';

export function dkimConfig(config: Config): string {
  const dir = config.dkim_dir;
  if (dir === '') return '# dkim_dir is empty: the daemon writes no signer files. Set dkim_dir (default /var/lib/mailmapd/dkim) first.\n';
  const group = config.dkim_group;
  return `# mailmapd keeps the keys of mailmapd.dkim_keys in ${dir} (dkim_dir): one key
# file per published key (mode 0640, group ${group}), OpenDKIM's KeyTable and SigningTables
# and rspamd's selector map, rewritten when a key is added, rotated or removed.
# The daemon's user must be in the group ${group}: usermod -aG ${group} mailmapd
# Keep ${dir} and its parents writable by root and their owners only (0755 or tighter;
# the systemd unit makes /var/lib/mailmapd 0711 so that OpenDKIM may pass through it).

# --- OpenDKIM, as a Postfix milter: /etc/opendkim.conf (signs with the RSA keys) ---
Mode                    sv
Socket                  local:/var/spool/postfix/opendkim/opendkim.sock
UMask                   007
KeyTable                file:${join(dir, keyTableFile)}
SigningTable            refile:${join(dir, signingTableFile)}
Canonicalization        relaxed/simple
OversignHeaders         From
# Mail submitted by logged-in users (SMTP AUTH) is signed; so is mail from these hosts.
InternalHosts           127.0.0.1, ::1
UserID                  opendkim
# OpenDKIM's own check wants a key file owned by root or by opendkim, in a group nobody
# else is in. The files are written by the daemon's user and readable by ${group}, so the
# check cannot pass; without this line OpenDKIM tempfails every message.
RequireSafeKeys         false
# The socket's directory, setgid to postfix: the socket gets group postfix, so Postfix
# need not join ${group} (which reads the keys):
#   install -d -o opendkim -g postfix -m 2750 /var/spool/postfix/opendkim

# --- OpenDKIM for Ed25519 (RFC 8463): /etc/opendkim-ed25519.conf ---
# One OpenDKIM process signs with one algorithm, so the Ed25519 keys need a second one:
# the same lines as above but these (a unit: copy opendkim.service to
# opendkim-ed25519.service, its ExecStart with -x /etc/opendkim-ed25519.conf -P ${'/run/opendkim/opendkim-ed25519.pid'}).
Mode                    s
Socket                  local:/var/spool/postfix/opendkim/opendkim-ed25519.sock
SigningTable            refile:${join(dir, signingTableEd25519File)}
SignatureAlgorithm      ed25519-sha256
PidFile                 /run/opendkim/opendkim-ed25519.pid

# --- Postfix: main.cf (leave the second milter out without the Ed25519 instance) ---
smtpd_milters = unix:opendkim/opendkim.sock, unix:opendkim/opendkim-ed25519.sock
non_smtpd_milters = $smtpd_milters
milter_default_action = accept

# --- Reloading OpenDKIM: it reads its tables only at start and on SIGUSR1 ---
# The daemon runs dkim_reload_command (now: ${config.dkim_reload_command === '' ? '(empty: none)' : config.dkim_reload_command})
# after each rewrite (by /bin/sh -c; with both instances: systemctl reload opendkim opendkim-ed25519). As the mailmapd user, \`systemctl reload opendkim\` needs a polkit rule
# (the unit's NoNewPrivileges=yes rules out sudo): /etc/polkit-1/rules.d/50-mailmapd-opendkim.rules
#   polkit.addRule(function (action, subject) {
#     if (action.id == "org.freedesktop.systemd1.manage-units" &&
#         (action.lookup("unit") == "opendkim.service" || action.lookup("unit") == "opendkim-ed25519.service") &&
#         action.lookup("verb") == "reload" && subject.user == "mailmapd") return polkit.Result.YES;
#   });

# --- rspamd instead of OpenDKIM: /etc/rspamd/local.d/dkim_signing.conf ---
# (rspamd re-reads the map by itself: set dkim_reload_command empty; dkim_group = _rspamd)
# path = "${dir}/$domain.$selector.key";
# selector_map = "${join(dir, rspamdSelectorMapFile)}";
# allow_username_mismatch = true;
`;
}
