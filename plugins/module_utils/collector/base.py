"""What every area shares: running read-only commands, reading files below a host root, the shape of the document."""

from __future__ import annotations

import contextlib
import glob
import grp
import os
import pwd
import stat
import subprocess
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

COLLECTOR_VERSION = "1.7.0"

EVIDENCE_SCHEMA = "medinfra-evidence/1"

COMMAND_TIMEOUT = 10.0

Json = Any

PROGRAM_DIRS = ("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin")


class HostSource:
    """Where the collector reads its host. On a host: "/", the host's programs, its account database and lstat.
    In tests (`recorded_host`): a tree recorded from a lab host, the outputs its programs gave (argv -> rc, stdout,
    stderr), its files' metadata (host path -> file_facts), since a checkout keeps neither owners nor modes, and the
    md5 of the programs whose checksums are verified (host path -> digest): the fixtures hold no binaries."""

    def __init__(self) -> None:
        self.root = "/"
        self.commands: Mapping[tuple[str, ...], tuple[int, str, str]] | None = None
        self.files: Mapping[str, dict[str, Any]] = {}
        self.digests: Mapping[str, str] = {}


HOST = HostSource()

# What a recorded host cannot answer: the collector's own connections to its listeners (TLS handshakes, Prometheus).
NOT_RECORDED = "a live connection, not in a recorded host"


@contextlib.contextmanager
def recorded_host(
    root: str, commands: Mapping[tuple[str, ...], tuple[int, str, str]], files: Mapping[str, dict[str, Any]],
    digests: Mapping[str, str],
) -> Iterator[None]:
    """Every reader reads the recorded host while this lasts (tests only; a command not recorded is not installed)."""
    saved = (HOST.root, HOST.commands, HOST.files, HOST.digests)
    HOST.root, HOST.commands, HOST.files, HOST.digests = root, commands, files, digests
    try:
        yield
    finally:
        HOST.root, HOST.commands, HOST.files, HOST.digests = saved


def unavailable(reason: str) -> dict[str, str]:
    return {"unavailable": reason}


def iso_utc(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def which(program: str) -> str | None:
    """The program's path in the system directories (sshd and auditctl live in sbin)."""
    for directory in PROGRAM_DIRS:
        path = os.path.join(directory, program)
        if os.access(path, os.X_OK):
            return path
    return None


def run(argv: list[str], timeout: float = COMMAND_TIMEOUT) -> tuple[int, str, str]:
    """Run a read-only command; (rc, stdout, stderr). rc 127 when the program is missing."""
    if HOST.commands is not None:
        return HOST.commands.get(tuple(argv), (127, "", f"{argv[0]}: not installed"))
    program = which(argv[0])
    if program is None:
        return 127, "", f"{argv[0]}: not installed"
    argv = [program, *argv[1:]]
    env = dict(os.environ, LC_ALL="C", SYSTEMD_COLORS="0", SYSTEMD_PAGER="")
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return 126, "", str(exc)
    return done.returncode, done.stdout, done.stderr


def command_failure(argv: list[str], rc: int, stderr: str) -> dict[str, str]:
    detail = stderr.strip().splitlines()[-1] if stderr.strip() else f"exit {rc}"
    return unavailable(f"{' '.join(argv)}: {detail}")


def read_text(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return handle.read()
    except OSError:
        return None


def config_lines(text: str | None, comment: str = "#") -> list[str]:
    """Lines of a config file without comments and blanks."""
    if text is None:
        return []
    lines = []
    for raw in text.splitlines():
        line = raw.split(comment, 1)[0].strip() if comment else raw.strip()
        if line:
            lines.append(line)
    return lines


def sorted_files(pattern: str, root: str = "/") -> list[str]:
    """Files matching a pattern, by their path on the host (`root` is where the host's tree is: "/" but in tests)."""
    return sorted(on_host(path, root) for path in glob.glob(at_root(pattern, root)) if os.path.isfile(path))


def host_root(root: str) -> str:
    """The tree a reader reads: the one it was given, or for "/" the host's (HOST.root: "/" on a host)."""
    return HOST.root if root == "/" else root


def at_root(path: str, root: str = "/") -> str:
    """Where a host path is read: itself on the host, below the root for a tree recorded from a host."""
    root = host_root(root)
    return path if root == "/" else os.path.join(root, path.lstrip("/"))


def on_host(path: str, root: str = "/") -> str:
    root = host_root(root)
    return path if root == "/" else "/" + os.path.relpath(path, root)


def key_values(paths: Iterable[str], separator: str | None = None) -> dict[str, str]:
    """Merge `key value` (or `key=value`) files in order; later files win, like drop-in directories."""
    values: dict[str, str] = {}
    for path in paths:
        for line in config_lines(read_text(path)):
            if line.startswith("["):
                continue
            parts = line.split(None, 1) if separator is None else [part.strip() for part in line.split(separator, 1)]
            if parts and parts[0]:
                values[parts[0]] = parts[1].strip() if len(parts) > 1 else ""
    return values


def safe(section: Callable[[], Json]) -> Json:
    """A section that breaks is recorded as unavailable; the document is still produced."""
    try:
        return section()
    except Exception as exc:
        return unavailable(f"collector error: {type(exc).__name__}: {exc}")


def passwd_entries() -> list[pwd.struct_passwd]:
    """The host's accounts: NSS on a host, /etc/passwd of a recorded tree."""
    if HOST.root == "/":
        return pwd.getpwall()
    lines = config_lines(read_text(at_root("/etc/passwd")), comment="")
    fields = [line.split(":") for line in lines]
    return [pwd.struct_passwd((f[0], f[1], int(f[2]), int(f[3]), *f[4:7])) for f in fields if len(f) == 7]


def group_entries() -> list[grp.struct_group]:
    if HOST.root == "/":
        return grp.getgrall()
    fields = [line.split(":") for line in config_lines(read_text(at_root("/etc/group")), comment="")]
    return [grp.struct_group((f[0], f[1], int(f[2]), [m for m in f[3].split(",") if m])) for f in fields if len(f) == 4]


def user_name(uid: int) -> str:
    """The name of a user id; the number as text when no account has it."""
    if HOST.root != "/":
        return next((entry.pw_name for entry in passwd_entries() if entry.pw_uid == uid), str(uid))
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def group_name(gid: int) -> str:
    if HOST.root != "/":
        return next((entry.gr_name for entry in group_entries() if entry.gr_gid == gid), str(gid))
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


def modified_at(path: str) -> str | None:
    """When a host file last changed (None when it is missing)."""
    facts = file_facts(path)
    return facts.get("modified_at") if facts.get("exists") else None


def file_facts(path: str) -> dict[str, Json]:
    """Type, mode, owner and time of a host path (`path` is the host's path: on_host of what a glob found)."""
    if HOST.root != "/":
        return dict(HOST.files.get(path, {"path": path, "exists": False}))
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return {"path": path, "exists": False}
    except OSError as exc:
        return {"path": path, **unavailable(str(exc))}
    kind = "directory" if stat.S_ISDIR(info.st_mode) else "link" if stat.S_ISLNK(info.st_mode) else "file"
    return {
        "path": path,
        "exists": True,
        "type": kind,
        "mode": f"{stat.S_IMODE(info.st_mode):04o}",
        "owner": user_name(info.st_uid),
        "group": group_name(info.st_gid),
        "modified_at": iso_utc(info.st_mtime),
    }
