"""Packages and updates: dpkg's version order, installed packages, pending security updates, and the apt and
unattended-upgrades settings as apt reads them.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Mapping

from .base import HOST, Json, at_root, config_lines, host_root, modified_at, read_text, sorted_files, unavailable

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
        epoch, _sep, rest = version.rpartition(":") if ":" in version else ("0", "", version)
        upstream, _sep, revision = rest.rpartition("-") if "-" in rest else (rest, "", "0")
        return int(epoch or 0), upstream, revision

    left_epoch, left_upstream, left_revision = split(left)
    right_epoch, right_upstream, right_revision = split(right)
    if left_epoch != right_epoch:
        return left_epoch - right_epoch
    return _compare_part(left_upstream, right_upstream) or _compare_part(left_revision, right_revision)


def installed_packages() -> dict[str, str]:
    packages: dict[str, str] = {}
    name = version = status = ""
    for line in [*(read_text(at_root("/var/lib/dpkg/status")) or "").splitlines(), ""]:
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
        for line in (read_text(at_root(path)) or "").splitlines():
            if line.startswith("Package: "):
                name = line[9:].strip()
            elif (
                line.startswith("Version: ")
                and name in installed
                and compare_debian_versions(installed[name], line[9:].strip()) < 0
            ):
                pending.add(name)
    return sorted(pending)


# The packages whose programs decide who gets in (sshd, sudo, PAM, login, passwd): their programs and PAM modules
# are checked against dpkg's own checksums on every audit (hashing every package's files costs seconds per host).
VERIFIED_PACKAGES = (
    "openssh-server", "sudo", "libpam-modules", "libpam-modules-bin", "libpam-runtime", "login", "passwd",
)
# Their programs, PAM modules and PAM's own library: what a trojan would replace to let itself in unseen.
PROGRAM_PATH = re.compile(r"^(usr/)?(s?bin/|lib\w*/(\S+/)?(security/pam_\w+\.so|libpam\w*\.so))")
DPKG_INFO = "/var/lib/dpkg/info"


def parse_md5sums(text: str) -> list[tuple[str, str]]:
    """A package's `md5sums` file (`<md5>  <path without the leading slash>`): its programs and PAM modules."""
    entries = []
    for line in text.splitlines():
        digest, _sep, path = line.partition("  ")
        if re.fullmatch(r"[0-9a-f]{32}", digest) and PROGRAM_PATH.match(path):
            entries.append((digest, path))
    return entries


def file_md5(path: str, root: str = "/") -> str | None:
    """The md5 of a host file (of a recorded host's program, the digest recorded for it)."""
    if host_root(root) != "/" and path in HOST.digests:
        return HOST.digests[path]
    digest = hashlib.md5(usedforsecurity=False)
    try:
        with open(at_root(path, root), "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    except OSError:
        return None
    return digest.hexdigest()


def verify_packages(installed: Mapping[str, str], root: str = "/") -> Json:
    """What `dpkg --verify` says of the programs and PAM modules of VERIFIED_PACKAGES (changed or missing files),
    computed from dpkg's md5sums without the cost of verifying every file of every package."""
    checked: list[str] = []
    changed: list[dict[str, str]] = []
    for name in VERIFIED_PACKAGES:
        if name not in installed:
            continue
        candidates = (read_text(at_root(f"{DPKG_INFO}/{name}{arch}.md5sums", root)) for arch in ("", ":amd64"))
        sums = next((text for text in candidates if text is not None), None)
        if sums is None:
            continue
        checked.append(name)
        for digest, path in parse_md5sums(sums):
            actual = file_md5("/" + path, root)
            if actual != digest:
                change = "missing" if actual is None else "checksum"
                changed.append({"package": name, "path": "/" + path, "change": change})
    return {"packages": checked, "changed_files": changed}


def collect_packages(installed: dict[str, str]) -> Json:
    if not installed:
        return unavailable("/var/lib/dpkg/status missing or empty (not a Debian-family host)")
    return {"installed": installed, "count": len(installed), "verify": verify_packages(installed)}


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


# apt options that accept packages or lists nobody signed (each true disables a check).
APT_UNSIGNED_OPTIONS = (
    "apt::get::allowunauthenticated",
    "acquire::allowinsecurerepositories",
    "acquire::allowdowngradetoinsecurerepositories",
    "acquire::allowweakrepositories",
)


def apt_sources(root: str = "/") -> list[dict[str, Json]]:
    """Every source apt reads (one-line `deb` lines and deb822 `.sources` stanzas), with whether it is exempt
    from signature checks (`[trusted=yes]`, `Trusted: yes`, or `allow-insecure` / `allow-weak`)."""
    sources: list[dict[str, Json]] = []
    for path in ["/etc/apt/sources.list", *sorted_files("/etc/apt/sources.list.d/*.list", root)]:
        for line in config_lines(read_text(at_root(path, root))):
            options = re.match(r"^deb(?:-src)?\s+\[([^\]]*)\]", line)
            words = options.group(1).lower().split() if options else []
            sources.append({"file": path, "source": line, "unsigned_allowed": unsigned_allowed(words)})
    for path in sorted_files("/etc/apt/sources.list.d/*.sources", root):
        for stanza in re.split(r"\n\s*\n", read_text(at_root(path, root)) or ""):
            fields = dict(
                (key.strip().lower(), value.strip().lower())
                for key, _sep, value in (line.partition(":") for line in config_lines(stanza))
            )
            if fields.get("enabled", "yes") != "no" and "uris" in fields:
                words = [f"{key}={value}" for key, value in fields.items()]
                sources.append({"file": path, "source": fields["uris"], "unsigned_allowed": unsigned_allowed(words)})
    return sources


def unsigned_allowed(options: list[str]) -> bool:
    return any(re.fullmatch(r"(trusted|allow-insecure|allow-weak)=yes", option) for option in options)


def apt_unsigned_options(config: Mapping[str, list[str]]) -> list[str]:
    """The apt options that turn a signature check off, as apt reads its configuration (the last value wins)."""
    return [key for key in APT_UNSIGNED_OPTIONS if (config.get(key) or ["false"])[-1].lower() in ("1", "true", "yes")]


def apt_settings(root: str = "/") -> dict[str, Json]:
    """What apt's own configuration and sources say: the security source, unattended-upgrades' settings, and
    every exemption from signature checks."""
    config = apt_config(root)
    sources = apt_sources(root)
    return {
        "security_source_configured": any("security" in str(entry["source"]) for entry in sources),
        **unattended_settings(config),
        "unsigned_sources": [entry for entry in sources if entry["unsigned_allowed"]],
        "unsigned_options": apt_unsigned_options(config),
    }


def collect_updates(installed: dict[str, str]) -> Json:
    lists = sorted_files("/var/lib/apt/lists/*_Packages")
    return {
        "package_lists_updated_at": max((modified_at(path) or "" for path in lists), default=None) or None,
        "security_lists_present": bool(sorted_files(SECURITY_PACKAGE_LISTS)),
        "pending_security": pending_security_updates(installed),
        "unattended_upgrades_installed": "unattended-upgrades" in installed,
        **apt_settings(),
    }
