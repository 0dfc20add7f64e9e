#!/usr/bin/env bash
# Install the Debian packages medinfra's lab and tests need. Idempotent: apt runs only when a
# package is missing. Needs root (or sudo).
set -euo pipefail

packages=(
  podman runc netavark aardvark-dns iptables uidmap debootstrap
  openssh-client iproute2 nftables python3 python3-venv ca-certificates make git
  # Reports: PDF printing and the HTML render tests (headless), the PostgreSQL history backend test.
  chromium fonts-noto-cjk postgresql
  # promtool and amtool: the alert rule and routing unit tests.
  prometheus prometheus-alertmanager
  # The become tests run medinfra's collector command line under a real sudo (root's: it does not prompt).
  sudo
  # The shell-completion tests source `medinfra completion bash|zsh` in both shells.
  zsh
  # The interface probe's C-ECHO tests run against dcmtk's storescp and dcmqrscp (real DICOM SCPs).
  dcmtk
)

sudo=()
[ "$(id -u)" -eq 0 ] || sudo=(sudo)

# ansible-navigator refuses to start podman containers without it (some container hosts boot without one).
[ -d /dev/mqueue ] || "${sudo[@]}" mkdir -p /dev/mqueue

missing=()
for pkg in "${packages[@]}"; do
  if ! dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null | grep -qx installed; then
    missing+=("$pkg")
  fi
done
[ "${#missing[@]}" -eq 0 ] && exit 0

echo "installing Debian packages: ${missing[*]}"
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
