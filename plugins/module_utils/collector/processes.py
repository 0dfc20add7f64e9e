"""Running programs found in /proc, with their command-line flags."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterable, Mapping
from typing import NamedTuple

from .base import at_root, read_text

COMM_LENGTH = 15


class Process(NamedTuple):
    argv: list[str]
    cwd: str  # the working directory, against which relative paths on the command line are resolved
    uid: int | None  # effective user id (/proc/<pid>/status); None when not readable


def process_uid(status: str | None) -> int | None:
    """The effective user id in the text of /proc/<pid>/status (`Uid: real effective saved fs`)."""
    for line in (status or "").splitlines():
        if line.startswith("Uid:"):
            fields = line.split()
            return int(fields[2]) if len(fields) > 2 and fields[2].isdigit() else None
    return None


def find_processes(programs: Mapping[str, Iterable[str]], proc: str = "/proc") -> dict[str, list[Process]]:
    """Running processes of each program, in pid order, matched on comm or on the executable's name.

    comm is readable for every process; /proc/<pid>/exe only as root, so it is the second way.
    Kernel threads and zombies (empty command line) are not programs and are left out.
    """
    by_comm = {name[:COMM_LENGTH]: key for key, names in programs.items() for name in names}
    by_exe = {name: key for key, names in programs.items() for name in names}
    found: dict[str, list[Process]] = {key: [] for key in programs}
    proc = at_root(proc)
    try:
        pids = sorted((entry for entry in os.listdir(proc) if entry.isdigit()), key=int)
    except OSError:
        return found
    for pid in pids:
        base = os.path.join(proc, pid)
        key = by_comm.get((read_text(f"{base}/comm") or "").strip())
        if key is None:
            try:
                exe = os.readlink(f"{base}/exe").removesuffix(" (deleted)")
            except OSError:
                continue
            key = by_exe.get(os.path.basename(exe))
            if key is None:
                continue
        argv = (read_text(f"{base}/cmdline") or "").split("\0")
        if argv and argv[-1] == "":
            argv.pop()
        if not argv:
            continue
        try:
            cwd = os.readlink(f"{base}/cwd")
        except OSError:
            cwd = "/"
        found[key].append(Process(argv, cwd, process_uid(read_text(f"{base}/status"))))
    return found


def command_flags(arguments: Iterable[str]) -> dict[str, list[str]]:
    """`--name=value` and `--name value` flags (kingpin's syntax, as Prometheus programs use it), by name.

    A flag followed by another flag or by nothing is a switch and gets the value "".
    """
    flags: dict[str, list[str]] = {}
    words = list(arguments)
    index = 0
    while index < len(words):
        word = words[index]
        index += 1
        if not word.startswith("-") or word in ("-", "--"):
            continue
        name, equals, value = word.lstrip("-").partition("=")
        if not equals and index < len(words) and not words[index].startswith("-"):
            value = words[index]
            index += 1
        flags.setdefault(name, []).append(value)
    return flags


def listens_everywhere(address: str) -> bool:
    """Whether a Go listen address (host:port) binds every interface: empty host, 0.0.0.0, ::, *."""
    host = (address.rpartition(":")[0] if ":" in address else address).strip("[]")
    if host in ("", "*"):
        return True
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            return not any(socket.inet_pton(family, host))
        except OSError:
            continue
    return False
