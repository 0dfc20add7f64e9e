"""What every area shares: running read-only commands, reading files below a host root, the shape of the document."""

from __future__ import annotations

import glob
import grp
import os
import pwd
import stat
import subprocess
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

COLLECTOR_VERSION = "1.7.0"

EVIDENCE_SCHEMA = "medinfra-evidence/1"

COMMAND_TIMEOUT = 10.0

Json = Any

PROGRAM_DIRS = ("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin")


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


def at_root(path: str, root: str) -> str:
    """Where a host path is read: itself on the host, below `root` for a tree recorded from a host."""
    return path if root == "/" else os.path.join(root, path.lstrip("/"))


def on_host(path: str, root: str) -> str:
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


def user_name(uid: int) -> str:
    """The name of a user id; the number as text when no account has it."""
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def group_name(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


def file_facts(path: str) -> dict[str, Json]:
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
