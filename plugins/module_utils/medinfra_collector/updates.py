"""Packages and updates: dpkg's version order, installed packages, pending security updates, and the apt and
unattended-upgrades settings as apt reads them.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

from .base import Json, at_root, config_lines, iso_utc, read_text, sorted_files, unavailable

# apt ignores these in apt.conf.d (Dir::Ignore-Files-Silently), and names with other characters.
APT_IGNORED = re.compile(r"(~|\.disabled|\.bak|\.dpkg-[a-z]+|\.ucf-[a-z]+|\.save|\.orig|\.distUpgrade)$")

SECURITY_PACKAGE_LISTS = "/var/lib/apt/lists/*security*_Packages"

def _order(char: str) -> int:
    if char == "~":
        return -1
    if char.isdigit():
        return 0
    if char.isalpha():
        return ord(char)
    return ord(char) + 256

def _compare_part(left: str, right: str) -> int:
    i = j = 0
    while i < len(left) or j < len(right):
        first_diff = 0
        while (i < len(left) and not left[i].isdigit()) or (j < len(right) and not right[j].isdigit()):
            lc = _order(left[i]) if i < len(left) and not left[i].isdigit() else 0
            rc = _order(right[j]) if j < len(right) and not right[j].isdigit() else 0
            if lc != rc:
                return lc - rc
            i += 1
            j += 1
        while i < len(left) and left[i] == "0":
            i += 1
        while j < len(right) and right[j] == "0":
            j += 1
        while i < len(left) and left[i].isdigit() and j < len(right) and right[j].isdigit():
            if not first_diff:
                first_diff = ord(left[i]) - ord(right[j])
            i += 1
            j += 1
        if i < len(left) and left[i].isdigit():
            return 1
        if j < len(right) and right[j].isdigit():
            return -1
        if first_diff:
            return first_diff
    return 0

def compare_debian_versions(left: str, right: str) -> int:
    """dpkg's ordering of two version strings: negative, zero or positive."""

    def split(version: str) -> tuple[int, str, str]:
        epoch, _, rest = version.rpartition(":") if ":" in version else ("0", "", version)
        upstream, _, revision = rest.rpartition("-") if "-" in rest else (rest, "", "0")
        return int(epoch or 0), upstream, revision

    left_epoch, left_upstream, left_revision = split(left)
    right_epoch, right_upstream, right_revision = split(right)
    if left_epoch != right_epoch:
        return left_epoch - right_epoch
    return _compare_part(left_upstream, right_upstream) or _compare_part(left_revision, right_revision)

def installed_packages() -> dict[str, str]:
    packages: dict[str, str] = {}
    name = version = status = ""
    for line in [*(read_text("/var/lib/dpkg/status") or "").splitlines(), ""]:
        if not line:
            if name and status.endswith(" installed"):
                packages[name] = version
            name = version = status = ""
        elif line.startswith("Package: "):
            name = line[9:].strip()
        elif line.startswith("Version: "):
            version = line[9:].strip()
        elif line.startswith("Status: "):
            status = line[8:].strip()
    return packages

def pending_security_updates(installed: dict[str, str]) -> list[str]:
    """Installed packages older than the version in a downloaded Debian security package list."""
    pending = set()
    for path in sorted_files(SECURITY_PACKAGE_LISTS):
        name = ""
        for line in (read_text(path) or "").splitlines():
            if line.startswith("Package: "):
                name = line[9:].strip()
            elif (
                line.startswith("Version: ")
                and name in installed
                and compare_debian_versions(installed[name], line[9:].strip()) < 0
            ):
                pending.add(name)
    return sorted(pending)

def collect_packages() -> Json:
    installed = installed_packages()
    if not installed:
        return unavailable("/var/lib/dpkg/status missing or empty (not a Debian-family host)")
    return {"installed": installed, "count": len(installed)}

def parse_apt_config(text: str, into: dict[str, list[str]]) -> None:
    """apt.conf syntax (`A::B "v";`, `A { B "v"; };`, comments, `#clear`) into lower-case key -> values, in order.

    Read directly because `apt-config dump` costs a process and most of the collector's time.
    """
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    # `#clear Name;` is a directive, not a comment: it empties Name and everything below it.
    lines = (
        re.sub(r"^\s*#clear\s+", "\x00clear ", line) for line in text.splitlines()
    )
    lines = (line for line in lines if not line.lstrip().startswith("#"))
    tokens = re.findall(r'\x00clear [^;\s]+|"[^"]*"|//[^\n]*|[{};]|[^\s{};"]+', "\n".join(lines))
    scopes: list[str] = []
    name: str | None = None
    for token in tokens:
        if token.startswith("//"):
            continue
        if token.startswith("\x00clear "):
            cleared = token.split(" ", 1)[1].lower()
            for key in [k for k in into if k == cleared or k.startswith(cleared + "::")]:
                del into[key]
            continue
        if token == "{":
            scopes.append(name or "")
            name = None
        elif token == "}":
            if scopes:
                scopes.pop()
        elif token == ";":
            name = None
        elif token.startswith('"') or name is not None:
            key = "::".join(part for part in [*scopes, name or ""] if part).lower()  # apt's keys ignore case
            into.setdefault(key, []).append(token.strip('"'))
            name = None
        else:
            name = token

def apt_config(root: str = "/") -> dict[str, list[str]]:
    parts = sorted(
        path
        for path in sorted_files("/etc/apt/apt.conf.d/*", root)
        if re.fullmatch(r"[A-Za-z0-9_.\-]+", os.path.basename(path)) and not APT_IGNORED.search(path)
    )
    config: dict[str, list[str]] = {}
    for path in ["/etc/apt/apt.conf", *parts]:
        text = read_text(at_root(path, root))
        if text is not None:
            parse_apt_config(text, config)
    return config

def unattended_settings(config: Mapping[str, list[str]]) -> dict[str, Json]:
    """The settings unattended-upgrades runs with (the last value of each key wins, as in apt)."""
    return {
        "periodic_update_lists": (config.get("apt::periodic::update-package-lists") or [""])[-1],
        "periodic_unattended_upgrade": (config.get("apt::periodic::unattended-upgrade") or [""])[-1],
        "origins_patterns": [v for v in config.get("unattended-upgrade::origins-pattern", []) if v],
        "auto_reboot": (config.get("unattended-upgrade::automatic-reboot") or ["false"])[-1],
    }

def collect_updates(installed: dict[str, str]) -> Json:
    lists = sorted_files("/var/lib/apt/lists/*_Packages")
    config = apt_config()
    sources = [
        line
        for path in ["/etc/apt/sources.list", *sorted_files("/etc/apt/sources.list.d/*")]
        for line in config_lines(read_text(path))
    ]
    return {
        "package_lists_updated_at": iso_utc(max(os.path.getmtime(p) for p in lists)) if lists else None,
        "security_source_configured": any("security" in line for line in sources),
        "security_lists_present": bool(sorted_files(SECURITY_PACKAGE_LISTS)),
        "pending_security": pending_security_updates(installed),
        "unattended_upgrades_installed": "unattended-upgrades" in installed,
        **unattended_settings(config),
    }
