// `mailmapd dkim-config`: what the signer (OpenDKIM as a Postfix milter, or rspamd) and
// Postfix need to sign with the keys the daemon keeps under dkim_dir, and what the daemon
// needs to make OpenDKIM read them again after a change.

import { join } from 'node:path';
import type { Config } from '../config.js';
import { keyTableFile, rspamdSelectorMapFile, signingTableFile } from '../dkim/signer-files.js';

export function dkimConfig(config: Config): string {
  const dir = config.dkim_dir;
  if (dir === '') return '# dkim_dir is empty: the daemon writes no signer files. Set dkim_dir (default /var/lib/mailmapd/dkim) first.\n';
  const group = config.dkim_group;
  return `# mailmapd keeps the signing keys of mailmapd.dkim_keys in ${dir} (dkim_dir): one key
# file per signing key (mode 0640, group ${group}), OpenDKIM's KeyTable and SigningTable
# and rspamd's selector map, rewritten when a key is added, rotated or removed.
# The daemon's user must be in the group ${group}: usermod -aG ${group} mailmapd
# OpenDKIM refuses keys under a directory anyone may write to: keep ${dir} and its
# parents 0755 or tighter (the systemd unit makes /var/lib/mailmapd 0711).

# --- OpenDKIM, as a Postfix milter: /etc/opendkim.conf ---
Mode                    sv
Socket                  local:/var/spool/postfix/opendkim/opendkim.sock
UMask                   007
KeyTable                file:${join(dir, keyTableFile)}
SigningTable            refile:${join(dir, signingTableFile)}
# A domain has an RSA and an Ed25519 key (RFC 8463): sign with both.
MultipleSignatures      yes
Canonicalization        relaxed/simple
OversignHeaders         From
# Mail submitted by logged-in users (SMTP AUTH) is signed; so is mail from these hosts.
InternalHosts           127.0.0.1, ::1
#   install -d -o opendkim -g opendkim -m 0750 /var/spool/postfix/opendkim
#   usermod -aG opendkim postfix

# --- Postfix: main.cf ---
smtpd_milters = unix:opendkim/opendkim.sock
non_smtpd_milters = $smtpd_milters
milter_default_action = accept

# --- Reloading OpenDKIM: it reads its tables only at start and on SIGUSR1 ---
# The daemon runs dkim_reload_command (now: ${config.dkim_reload_command === '' ? '(empty: none)' : config.dkim_reload_command})
# after each rewrite. As the mailmapd user, \`systemctl reload opendkim\` needs a polkit rule
# (the unit's NoNewPrivileges=yes rules out sudo): /etc/polkit-1/rules.d/50-mailmapd-opendkim.rules
#   polkit.addRule(function (action, subject) {
#     if (action.id == "org.freedesktop.systemd1.manage-units" && action.lookup("unit") == "opendkim.service" &&
#         action.lookup("verb") == "reload" && subject.user == "mailmapd") return polkit.Result.YES;
#   });

# --- rspamd instead of OpenDKIM: /etc/rspamd/local.d/dkim_signing.conf ---
# (rspamd re-reads the map by itself: set dkim_reload_command empty; dkim_group = _rspamd)
# path = "${dir}/$domain.$selector.key";
# selector_map = "${join(dir, rspamdSelectorMapFile)}";
# allow_username_mismatch = true;
`;
}
