#!/bin/sh
# Turns a debootstrapped bookworm tree ($1) into the base image of medinfra's execution environment.
set -eu
root="$1"
# Security updates beside the release, for what ansible-builder's bindep step installs with apt-get.
printf 'deb http://deb.debian.org/debian bookworm main\ndeb http://deb.debian.org/debian-security bookworm-security main\n' \
    > "$root/etc/apt/sources.list"
# Debootstrap's package lists and caches are not needed in the image: the bindep step updates the lists first.
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb
# Like dnf's install_weak_deps=0 in ansible-builder's RPM bases: what bindep asks for, not what it recommends.
printf 'APT::Install-Recommends "false";\n' > "$root/etc/apt/apt.conf.d/90-no-recommends"
