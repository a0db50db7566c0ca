#!/usr/bin/env bash
# Makes a Debian 13 (trixie) root holding Dovecot 2.4, its Lua auth module, its LMTP
# server and its IMAP server, in which the Dovecot 2.4 interop tests (test/interop/dovecot-lua.test.ts,
# test/interop/postfix-delivery.test.ts, test/interop/oauth2.test.ts) run Dovecot with chroot: Debian 12 packages only Dovecot
# 2.3. Needs root, debootstrap (installed when missing) and Debian's
# mirror. Does nothing when the root is already there; `.ci/run` calls it.
#   scripts/dovecot24-root.sh [DIR]    default: $MAILMAPD_DOVECOT24_ROOT or /var/cache/mailmapd/dovecot24
set -euo pipefail
dir="${1:-${MAILMAPD_DOVECOT24_ROOT:-/var/cache/mailmapd/dovecot24}}"
if [ -x "$dir/usr/sbin/dovecot" ] && [ -e "$dir/usr/lib/dovecot/modules/auth/libauthdb_lua.so" ] && [ -x "$dir/usr/lib/dovecot/lmtp" ]; then
  [ -x "$dir/usr/lib/dovecot/imap" ] && exit 0
  # A root made before the IMAP server was needed (test/oauth2.test.ts): add it in place.
  echo "dovecot24-root: adding dovecot-imapd to $dir" >&2
  cp /etc/resolv.conf "$dir/etc/resolv.conf" 2>/dev/null || true
  chroot "$dir" env DEBIAN_FRONTEND=noninteractive sh -c 'apt-get update -qq && apt-get install -y -qq dovecot-imapd' >&2
  exit 0
fi
if ! command -v debootstrap >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq debootstrap >/dev/null
fi
# Built aside and moved into place whole, so that an interrupted run leaves no half root.
mkdir -p "$(dirname "$dir")"
partial="$dir.partial"
rm -rf "$partial"
echo "dovecot24-root: installing Debian 13 with dovecot-core, dovecot-auth-lua, dovecot-lmtpd and dovecot-imapd into $dir (a few minutes)" >&2
debootstrap --variant=minbase --include=dovecot-core,dovecot-auth-lua,dovecot-lmtpd,dovecot-imapd trixie "$partial" http://deb.debian.org/debian >"$partial.log" 2>&1 ||
  { echo "dovecot24-root: debootstrap failed; its log: $partial.log" >&2; exit 1; }
rm -rf "$dir" "$partial.log"
mv "$partial" "$dir"
chroot "$dir" dovecot --version >&2
