#!/bin/sh
# Generate the common-* PAM stacks from the profiles in /usr/share/pam-configs into a reference directory.
# pam-auth-update runs in an empty root (--root), so it builds each stack from Debian's pristine template
# (/usr/share/pam/common-*): run on /etc/pam.d it would keep whatever a live file holds outside its managed
# block, e.g. an "auth sufficient pam_permit.so" line added at the top. Its records (/var/lib/pam) are installed
# too, so a package's own later pam-auth-update run finds the stacks unmodified and merges its profile.
# Usage: pam-stacks.sh REFERENCE_DIR SOURCE_DIGEST PROFILE...
set -eu
reference=$1
digest=$2
shift 2
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root/etc/pam.d" "$root/var/lib/pam" "$root/usr/share" "$reference"
cp -a /usr/share/pam-configs "$root/usr/share/"
if [ -e /var/lib/pam/seen ]; then
  cp /var/lib/pam/seen "$root/var/lib/pam/"
fi
DEBIAN_FRONTEND=noninteractive pam-auth-update --package --force --root "$root" --enable "$@"
for type in auth account password session session-noninteractive; do
  install -m 0644 "$root/etc/pam.d/common-$type" "$reference/common-$type"
  install -m 0644 "$root/var/lib/pam/$type" "/var/lib/pam/$type"
done
install -m 0644 "$root/var/lib/pam/seen" /var/lib/pam/seen
printf '%s\n' "$digest" > "$reference/source"
