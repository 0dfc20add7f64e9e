#!/bin/sh
# Turns a debootstrapped bookworm tree ($1) into a systemd container image for the lab, with the packages
# the roles install ($3...) added by apt-get (debootstrap's own dependency resolution is too weak for them).
# $2 is the control file of rtc_relay's telnet-client stub package. With $1 alone, the plain image: a stock Debian 12
# host with nothing the roles install, on which a test proves that the roles install what they need.
set -eu
root="$1"
shift

# Package scripts must not start services inside the build tree.
printf '#!/bin/sh\nexit 101\n' > "$root/usr/sbin/policy-rc.d"
chmod 0755 "$root/usr/sbin/policy-rc.d"
cp /etc/resolv.conf "$root/etc/resolv.conf"
mount -t proc proc "$root/proc"
trap 'umount "$root/proc"' EXIT
# Package lists, as a stock host has them.
chroot "$root" apt-get update -qq
if [ $# -gt 0 ]; then
  stub_control="$1"
  shift
  # coturn depends on "telnet | telnet-client" only for its CLI, which rtc_relay turns off. A stub providing telnet-client
  # (the role installs the same one on real hosts) keeps a plaintext telnet client out: baseline_hardening removes
  # telnet, and apt would remove coturn with it.
  stub="$root/tmp/telnet-client-stub"
  mkdir -p "$stub/DEBIAN" && cp "$stub_control" "$stub/DEBIAN/control"
  dpkg-deb --build --root-owner-group "$stub" "$root/tmp/telnet-client-stub.deb" >/dev/null
  chroot "$root" dpkg -i /tmp/telnet-client-stub.deb >/dev/null
  rm -rf "$stub" "$root/tmp/telnet-client-stub.deb"
  chroot "$root" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null

  # Installed for the roles but left as a stock install would leave them: off until a role configures them.
  chroot "$root" systemctl disable --quiet auditd.service acct.service dailyaidecheck.timer rsyslog.service \
      prometheus.service prometheus-alertmanager.service prometheus-blackbox-exporter.service \
      prometheus-node-exporter.service nginx.service coturn.service postgresql.service orthanc.service \
      patroni.service etcd.service haproxy.service
fi
chroot "$root" apt-get clean
rm -f "$root/usr/sbin/policy-rc.d"

# Each container gets its own machine id and SSH host keys at first boot.
: > "$root/etc/machine-id"
rm -f "$root"/etc/ssh/ssh_host_*
cat > "$root/etc/systemd/system/ssh-hostkeys.service" <<'UNIT'
[Unit]
Description=Generate this container's SSH host keys
ConditionPathExists=!/etc/ssh/ssh_host_ed25519_key
Before=ssh.service

[Service]
Type=oneshot
ExecStart=/usr/bin/ssh-keygen -A

[Install]
RequiredBy=ssh.service
UNIT
mkdir -p "$root/etc/systemd/system/ssh.service.requires"
ln -sf ../ssh-hostkeys.service "$root/etc/systemd/system/ssh.service.requires/ssh-hostkeys.service"

# Units that have nothing to do in a container and would only fail or wait.
for unit in getty@tty1.service console-getty.service systemd-logind.service \
    apt-daily.timer apt-daily-upgrade.timer systemd-remount-fs.service; do
  ln -sf /dev/null "$root/etc/systemd/system/$unit"
done

# The administrative account the controller uses (key installed per lab by `medinfra lab up`).
chroot "$root" useradd --create-home --shell /bin/bash --groups sudo medinfra
chroot "$root" install -d -m 0700 -o medinfra -g medinfra /home/medinfra/.ssh
printf 'medinfra ALL=(ALL:ALL) NOPASSWD: ALL\n' > "$root/etc/sudoers.d/medinfra"
chmod 0440 "$root/etc/sudoers.d/medinfra"

# apt caches are not needed inside the image.
rm -rf "$root"/var/cache/apt/archives/*.deb
