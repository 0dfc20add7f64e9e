#!/usr/bin/env python3
"""Record what the collector's readers read on a lab host, into tests/fixtures/hostroots/<host>/ (read-only on it).

    PYTHONPATH=src .venv/bin/python scripts/record-host-root.py his-db turn lis-legacy

The collector itself runs in the container (`podman exec -i lab-<host> python3 -`), traced: every path it opens,
lists, stats or whose link it reads, every command it runs with its exit code and output, and the metadata
`file_facts` gave. So the recording holds what the readers need and nothing else, and stays right as they change.
The host is never changed: the collector only reads, and the trace only watches.

Written per host: `root/` (the files below the host's `/`: texts, links, empty placeholders for what is only
stat'ed or is not text), `commands.json` (argv, rc, stdout, stderr of each command) and `files.json` (host path ->
file_facts) and `digests.json` (host path -> md5 of each program the collector checksums: no binaries are
kept). Secrets are replaced before anything is written (`scrub`); see tests/fixtures/hostroots/README.md.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
from pathlib import Path
from typing import Any

from medinfra.collector import collector_source, default_paths
from medinfra.lab.podman import podman
from medinfra.package_data import hostside_module

FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "hostroots"

# Run after the collector's definitions (its `from __future__` import must come first): trace, collect, report.
TRACE = r'''
import sys as _sys

_TOUCHED: dict[str, set[str]] = {}
_TRACING = [True]
_OWN = {str(os.getpid()), "self", "thread-self"}


def _note(path, how):
    if isinstance(path, bytes):
        path = os.fsdecode(path)
    if not (_TRACING[0] and isinstance(path, str) and path.startswith("/")):
        return
    path = os.path.normpath(path)
    parts = path.split("/")
    if path.startswith("/usr/lib/python3") or (len(parts) > 2 and parts[1] == "proc" and parts[2] in _OWN
                                                and path != "/proc/self/mounts"):
        return  # the interpreter's own modules and process
    _TOUCHED.setdefault(path, set()).add(how)


def _hook(event, args):
    if event == "open" and args:
        _note(args[0], "open")
    elif event in ("os.listdir", "os.scandir") and args:
        _note(args[0], "list")


def _traced(function, how):
    def traced(path, *args, **kwargs):
        _note(path, how)
        return function(path, *args, **kwargs)
    return traced


import hashlib

_sys.addaudithook(_hook)
os.stat, os.lstat, os.readlink = _traced(os.stat, "stat"), _traced(os.lstat, "stat"), _traced(os.readlink, "link")
_COMMANDS = []
_METADATA = {}
_READ = {}
_live_run, _live_file_facts, _live_file_md5, _live_read_text = run, file_facts, file_md5, read_text


def run(argv, timeout=COMMAND_TIMEOUT):
    result = _live_run(argv, timeout)
    _COMMANDS.append({"argv": list(argv), "rc": result[0], "stdout": result[1], "stderr": result[2]})
    return result


def file_facts(path):
    facts = _live_file_facts(path)
    _METADATA[path] = facts
    return facts


def read_text(path):
    text = _live_read_text(path)
    if text is not None and isinstance(path, str):
        _READ[os.path.normpath(path)] = text  # as the collector read it: /proc changes a moment later
    return text


def file_md5(path, root="/"):
    _note(path, "checksum")  # only its digest is kept, binary or not
    return _live_file_md5(path, root)


_DOCUMENT = collect(PATHS)
_TRACING[0] = False
for _path in ("/etc/passwd", "/etc/group"):  # read through NSS by libc on a host: not traced, but needed
    _TOUCHED.setdefault(_path, set()).add("open")


def _entry(path, how):
    try:
        info = os.lstat(path)
    except OSError:
        return None
    if path in _READ and "checksum" not in how:
        return {"text": _READ[path]}
    if stat.S_ISLNK(info.st_mode) and "open" in how and os.path.isfile(path):
        info = os.stat(path)  # a file read through a link (/etc/os-release): recorded as the file it leads to
    elif stat.S_ISLNK(info.st_mode):
        try:
            return {"link": os.readlink(path)}
        except OSError:
            return None  # unreadable for the collector too (another user's /proc/<pid>/exe)
    if stat.S_ISDIR(info.st_mode):
        return {"dir": True}
    if ({"open", "checksum"} & how and stat.S_ISREG(info.st_mode)) or path.startswith("/proc/"):
        try:
            with open(path, "rb") as handle:
                data = handle.read()
        except OSError:
            return {"placeholder": True}
        binary = "checksum" in how or (b"\0" in data and not path.endswith("/cmdline"))
        try:
            return {"binary": hashlib.md5(data).hexdigest()} if binary else {"text": data.decode("utf-8")}
        except UnicodeDecodeError:
            return {"binary": hashlib.md5(data).hexdigest()}
    return {"placeholder": True}


_tree = {}
for _path, _how in sorted(_TOUCHED.items()):
    _tree[_path] = _entry(_path, _how)
    if "list" in _how and _tree[_path] and _tree[_path].get("dir"):
        # A listing's entries exist at the recorded root too (systemd's *.wants links are listed, never stat'ed).
        for _name in os.listdir(_path):
            _child = os.path.join(_path, _name)
            if _child not in _TOUCHED and not (_path == "/proc" and not _name.isdigit()) and _name not in _OWN:
                _tree[_child] = _entry(_child, set())
json.dump({"tree": _tree, "commands": _COMMANDS, "metadata": _METADATA, "document": _DOCUMENT}, _sys.stdout)
'''

# Secrets replaced by obviously fake values (README.md beside the fixtures): bcrypt hashes and `password: x` values
# anywhere, coturn's shared secret and static users in its configuration, whole files that hold only a secret.
FAKE_BCRYPT = "$2b$12$FAKE.FAKE.FAKE.FAKE.FAKE.FAKE.FAKE.FAKE.FAKE.FAKE.FA"
SCRUBS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"\$2[aby]\$\d\d\$[./A-Za-z0-9]{53}"), FAKE_BCRYPT),
    (re.compile(r"(password\s*[=:]\s*)\S+", re.I), r"\1fake-not-real"),
)
TURN_SCRUBS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"^(\s*static-auth-secret\b[\s=]*).+$", re.M), r"\1fake-turn-secret-not-real"),
    (re.compile(r"^(\s*(?:cli-password|user)(?=[\s=])[\s=]*).+$", re.M), r"\1fake-not-real"),
)
SECRET_FILES = re.compile(r"(^/etc/prometheus/secrets/|/repository-password$|\.key$|/ssh_host_\w+_key$)")


def shadow_scrubbed(text: str) -> str:
    """shadow/gshadow with each hash replaced by a fake one of the same scheme (what the collector reports of it)."""
    lines = []
    for line in text.splitlines():
        fields = line.split(":")
        if len(fields) > 1 and fields[1] not in ("", "*", "!", "!*", "x"):
            locked = "!" if fields[1].startswith("!") else ""
            hashed = fields[1].lstrip("!")
            scheme = re.match(r"^\$\w+\$", hashed)
            fields[1] = locked + (f"{scheme.group(0)}FAKE$FAKE-HASH-NOT-REAL" if scheme else "FAKEFAKEFAKE" + "F")
        lines.append(":".join(fields))
    return "\n".join(lines) + "\n"


def dpkg_trimmed(text: str) -> str:
    """dpkg's status with only the fields the collector reads (Package, Status, Version): a tenth of the size."""
    return "".join(line + "\n" for line in text.splitlines() if not line or line.startswith(("Package:", "Status:",
                                                                                              "Version:")))


def md5sums_trimmed(text: str) -> str:
    """A package's md5sums with only the lines the collector checks (its programs and PAM modules)."""
    program = hostside_module("collector.updates").PROGRAM_PATH
    return "".join(line + "\n" for line in text.splitlines() if program.match(line.partition("  ")[2]))


def scrub(path: str, text: str) -> str:
    if "PRIVATE KEY" in text or SECRET_FILES.search(path):
        return "fake-secret-not-real\n"
    if path in ("/etc/shadow", "/etc/gshadow", "/etc/shadow-", "/etc/gshadow-"):
        return shadow_scrubbed(text)
    if path == "/var/lib/dpkg/status":
        return dpkg_trimmed(text)
    if path.startswith("/var/lib/dpkg/info/") and path.endswith(".md5sums"):
        return md5sums_trimmed(text)
    for pattern, replacement in (*SCRUBS, *(TURN_SCRUBS if path.endswith("turnserver.conf") else ())):
        text = pattern.sub(replacement, text)
    return text


def resolved(path: str, links: dict[str, str]) -> str:
    """The path with its recorded directory links followed (/lib/systemd -> /usr/lib/systemd on merged /usr), so that
    the tree holds each file once, where its link leads."""
    parts = path.split("/")
    for index in range(2, len(parts)):
        ancestor = "/".join(parts[:index])
        if ancestor in links:
            target = os.path.normpath(os.path.join(os.path.dirname(ancestor), links[ancestor]))
            return resolved("/".join([target, *parts[index:]]), links)
    return path


def safe_to_follow(link: str) -> bool:
    """Whether a recorded link may be kept: whatever copies the checkout or walks it follows links (mutmut's copy,
    pytest's directory walk), and a link to "/" (a process's cwd), /dev/urandom or /proc and /sys files (a
    process's open files) then reads this machine without end. /dev/null stays: it is how systemd masks a unit.
    The readers give the same facts without the others (a missing cwd reads as "/")."""
    target = os.path.normpath(link)
    return target == "/dev/null" or not (target == "/" or target.startswith(("/dev/", "/proc/", "/sys/")))


def write_tree(root: Path, tree: dict[str, Any]) -> None:
    links = {path: entry["link"] for path, entry in tree.items() if entry and "link" in entry}
    for path, entry in sorted(tree.items()):
        if entry is None:
            continue
        target = root / resolved(path, links).lstrip("/")
        if target.is_symlink() or target.exists():
            continue  # reached through a link and already written
        if entry.get("dir"):
            target.mkdir(parents=True, exist_ok=True)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        if "link" in entry:
            if safe_to_follow(entry["link"]):
                target.symlink_to(entry["link"])
        elif "text" in entry:
            target.write_text(scrub(path, entry["text"]), encoding="utf-8")
        elif "binary" not in entry:
            target.write_text("", encoding="utf-8")  # exists on the host; its content is not read (or is a secret)


def keep_empty_directories(root: Path) -> None:
    """A `.keep` file in every empty directory, which git would drop (readers glob no dotfiles, and skip them in
    the lists they read: sudo's includedir, /proc and its fd directories)."""
    for directory in sorted(path for path in root.rglob("*") if path.is_dir() and not path.is_symlink()):
        if not any(directory.iterdir()):
            (directory / ".keep").write_text("", encoding="utf-8")


def record(host: str) -> Path:
    """Run the traced collector on lab-<host> and write its recording (replacing an earlier one)."""
    program = f"{collector_source()}\n\nPATHS = {json.dumps(default_paths())!r}\nPATHS = json.loads(PATHS)\n{TRACE}"
    done = podman("exec", "-i", f"lab-{host}", "python3", "-", stdin=program)
    recording = json.loads(done.stdout)
    target = FIXTURES / host
    shutil.rmtree(target, ignore_errors=True)
    write_tree(target / "root", recording["tree"])
    keep_empty_directories(target / "root")
    commands = [{**command, "stdout": scrub("", command["stdout"])} for command in recording["commands"]]
    document = recording["document"]
    # What the collector reported on the host, to compare with the readers on the recording: all but the TLS
    # handshakes, which are made live with the host's listeners and not recorded, and the installed packages,
    # which root/var/lib/dpkg/status holds already.
    collected = {**document, "facts": {name: facts for name, facts in document["facts"].items() if name != "tls"}}
    collected["facts"]["packages"].pop("installed", None)
    digests = {path: entry["binary"] for path, entry in recording["tree"].items() if entry and "binary" in entry}
    for name, content in (("commands", commands), ("files", recording["metadata"]), ("digests", digests),
                          ("collected", collected)):
        (target / f"{name}.json").write_text(json.dumps(content, indent=0, sort_keys=True) + "\n", encoding="utf-8")
    return target


def main(hosts: list[str]) -> int:
    if not hosts:
        print(__doc__, file=sys.stderr)
        return 2
    for host in hosts:
        print(f"{host}: {record(host)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
