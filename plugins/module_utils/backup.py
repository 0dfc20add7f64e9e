#!/usr/bin/python3
"""medinfra's backup runner: restic over SFTP, PostgreSQL dumps, integrity checks, restore drills, metrics.

Standard library only: role backup installs this file as `medinfra-backup` on every backup client, and its systemd
units run `backup`, `check` and `drill` for one backup set each. Every run records its outcome in a state file and
rewrites the set's node exporter textfile from it (a temporary file, then a rename), so a failed run never erases
the time of the last good one.

The repository password reaches restic as a file (RESTIC_PASSWORD_FILE, a systemd credential): never on a command
line, in the environment or in the journal.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# The directories the role configured (medinfra_paths.backup_config and backup_state), in a file it writes beside
# the installed program: the units and an operator's manual run find the same sets without a path in this code.
SETTINGS_SUFFIX = ".json"
# restic exit code 3: the snapshot was written but some source files could not be read.
RESTIC_INCOMPLETE = 3
CHECK_SUBSET_DAYS = 30

HELP = {
    "medinfra_backup_last_run_timestamp_seconds": "When the last backup run of the set started",
    "medinfra_backup_last_run_success": "1 if the last backup run of the set succeeded (dumps, snapshot, retention)",
    "medinfra_backup_last_success_timestamp_seconds": "When the last successful backup run of the set started",
    "medinfra_backup_duration_seconds": "How long the last successful backup run took",
    "medinfra_backup_added_bytes": "Bytes the last successful backup added to the repository",
    "medinfra_backup_snapshots": "Snapshots of the set in the repository after the last successful run",
    "medinfra_backup_check_success": "1 if the last restic check of the repository passed",
    "medinfra_backup_check_timestamp_seconds": "When the last restic check ran",
    "medinfra_backup_restore_drill_success": "1 if the last restore drill restored and verified every file and dump",
    "medinfra_backup_restore_drill_timestamp_seconds": "When the last restore drill ran",
    "medinfra_backup_restore_drill_duration_seconds": (
        "How long the last passing restore drill took to restore, verify and load the set: the RTO a restore from "
        "backup achieved"
    ),
    "medinfra_backup_rto_seconds": "The RTO of the host's SLA class, which a restore of the set must meet",
}


class BackupError(Exception):
    """A step failed; the message says which and why (never a secret)."""


@dataclass(frozen=True)
class BackupSet:
    """One backup set as the role writes it (medinfra_paths.backup_config/sets/NAME.json)."""

    name: str
    host: str
    repository: str
    ssh_config: str
    paths: tuple[str, ...]
    databases: tuple[str, ...] = ()
    dump_directory: str = ""
    keep: Mapping[str, int] = field(default_factory=dict)
    textfile_directory: str = "/var/lib/prometheus/node-exporter"
    scratch_directory: str = "/var/tmp/medinfra-backup-drill"
    cache_directory: str = "/var/cache/medinfra-backup"
    sanity_query: str = "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"
    # Read by the audit (collector), not the runner: the backup server and the RPO the set must meet.
    server: str = ""
    server_address: str = ""
    rpo_minutes: int = 1440
    rto_minutes: int = 1440
    # Where the runner keeps the set's outcomes and lock (medinfra_paths.backup_state; the collector reads it there).
    state_directory: str = ""

    @classmethod
    def load(cls, path: Path) -> BackupSet:
        data = json.loads(path.read_text(encoding="utf-8"))
        data["paths"] = tuple(data.get("paths", ()))
        data["databases"] = tuple(data.get("databases", ()))
        return cls(**data)

    @property
    def sources(self) -> list[str]:
        """What goes into a snapshot: the paths, and the dump directory when there are databases."""
        return [*self.paths, *([self.dump_directory] if self.databases else [])]

    def textfile(self) -> Path:
        return Path(self.textfile_directory) / f"medinfra_backup_{self.name}.prom"


def check_subset(day_of_month: int) -> str:
    """The part of the pack files `restic check` reads today: a different thirtieth each day, all of them in a
    month (day 31 reads the thirtieth again)."""
    return f"{min(day_of_month, CHECK_SUBSET_DAYS)}/{CHECK_SUBSET_DAYS}"


def label_value(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def sample(value: float) -> str:
    """A metric value in full (`1`, `0.25`, `1800000123`), never rounded to six digits."""
    number = float(value)
    return str(int(number)) if number.is_integer() else repr(number)


def render_metrics(set_name: str, state: Mapping[str, float]) -> str:
    """The set's textfile: every metric the state holds, in HELP order, labelled with the set."""
    lines = []
    for name, help_text in HELP.items():
        if name in state:
            lines += [f"# HELP {name} {help_text}", f"# TYPE {name} gauge",
                      f'{name}{{set="{label_value(set_name)}"}} {sample(state[name])}']
    return "\n".join(lines) + "\n"


def write_atomically(path: Path, text: str, mode: int) -> None:
    """Written beside the target, then renamed: a reader (the node exporter) never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.chmod(temporary, mode)
    os.replace(temporary, path)


def load_state(path: Path) -> dict[str, float]:
    try:
        return {str(k): float(v) for k, v in json.loads(path.read_text(encoding="utf-8")).items()}
    except FileNotFoundError:
        return {}


def record(backup_set: BackupSet, updates: Mapping[str, float]) -> None:
    """Merge ``updates`` into the set's state, then rewrite its textfile from the whole state."""
    state_path = Path(backup_set.state_directory) / f"{backup_set.name}.json"
    state = {**load_state(state_path), **updates}
    write_atomically(state_path, json.dumps(state, sort_keys=True) + "\n", 0o600)
    write_atomically(backup_set.textfile(), render_metrics(backup_set.name, state), 0o644)


class Restic:
    """restic against the set's repository over SFTP; the password comes from RESTIC_PASSWORD_FILE."""

    def __init__(self, backup_set: BackupSet) -> None:
        self.backup_set = backup_set

    def command(self, *arguments: str) -> list[str]:
        return ["restic", "--repo", self.backup_set.repository, "--cache-dir", self.backup_set.cache_directory,
                "--option", f"sftp.command=ssh -F {self.backup_set.ssh_config} medinfra-backup-server -s sftp",
                *arguments]

    def run(self, *arguments: str, ok: Sequence[int] = (0,)) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(self.command(*arguments), capture_output=True, text=True, check=False)
        if result.returncode not in ok:
            raise BackupError(f"restic {arguments[0]} exited {result.returncode}: {result.stderr.strip()[-2000:]}")
        return result

    def selection(self) -> list[str]:
        return ["--host", self.backup_set.host, "--tag", self.backup_set.name]

    def snapshots(self) -> list[dict[str, Any]]:
        return list(json.loads(self.run("snapshots", "--json", *self.selection()).stdout or "[]"))


def require_password_file() -> None:
    path = os.environ.get("RESTIC_PASSWORD_FILE", "")
    if not path or not os.path.isfile(path):
        raise BackupError("RESTIC_PASSWORD_FILE does not name a readable file (run through the systemd units)")


def as_postgres(*command: str, **kwargs: Any) -> subprocess.CompletedProcess[Any]:
    return subprocess.run(["runuser", "-u", "postgres", "--", *command], check=False, **kwargs)


def dump_database(database: str, directory: Path) -> Path:
    """`pg_dump -Fc` as the postgres user into a file; a dump is only kept if pg_dump says it succeeded."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    target = directory / f"{database}.dump"
    partial = directory / f".{database}.dump.partial"
    with partial.open("wb") as handle:
        result = as_postgres("pg_dump", "--format=custom", database, stdout=handle, stderr=subprocess.PIPE)
    if result.returncode != 0:
        partial.unlink(missing_ok=True)
        target.unlink(missing_ok=True)  # never back up yesterday's dump as if it were today's
        raise BackupError(f"pg_dump of {database} exited {result.returncode}: {result.stderr.decode().strip()}")
    partial.replace(target)
    return target


def run_init(backup_set: BackupSet) -> int:
    """Create the repository if it does not exist; prints `created` or `exists` for the role's changed_when."""
    require_password_file()
    restic = Restic(backup_set)
    if restic.run("cat", "config", ok=(0, 1, 10)).returncode == 0:
        print("exists")
        return 0
    restic.run("init")
    print("created")
    return 0


def run_backup(backup_set: BackupSet) -> int:
    started = time.time()
    record(backup_set, {"medinfra_backup_last_run_timestamp_seconds": round(started)})
    try:
        require_password_file()
        restic = Restic(backup_set)
        restic.run("unlock")  # only locks left by a killed run: restic removes none a live process holds
        for database in backup_set.databases:
            dump_database(database, Path(backup_set.dump_directory))
        result = restic.run("backup", "--json", "--one-file-system", *restic.selection(), *backup_set.sources)
        messages = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
        summary: dict[str, Any] = next((m for m in messages if m.get("message_type") == "summary"), {})
        keep = [f"--keep-{period}={count}" for period, count in sorted(backup_set.keep.items()) if count > 0]
        if keep:
            restic.run("forget", "--prune", "--group-by", "host,tags", *restic.selection(), *keep)
        snapshots = len(restic.snapshots())
    except BackupError as exc:
        record(backup_set, {"medinfra_backup_last_run_success": 0})
        print(f"backup of set {backup_set.name} failed: {exc}", file=sys.stderr)
        return 1
    record(backup_set, {
        "medinfra_backup_last_run_success": 1,
        "medinfra_backup_last_success_timestamp_seconds": round(started),
        "medinfra_backup_duration_seconds": round(time.time() - started, 3),
        "medinfra_backup_added_bytes": float(summary.get("data_added", 0)),
        "medinfra_backup_snapshots": snapshots,
    })
    print(json.dumps({"set": backup_set.name, "snapshot": summary.get("snapshot_id", ""),
                      "added_bytes": summary.get("data_added", 0), "snapshots": snapshots}))
    return 0


def run_check(backup_set: BackupSet, subset: str) -> int:
    started = time.time()
    try:
        require_password_file()
        Restic(backup_set).run("check", f"--read-data-subset={subset}")
        success = 1
    except BackupError as exc:
        print(f"check of set {backup_set.name} ({subset}) failed: {exc}", file=sys.stderr)
        success = 0
    record(backup_set, {"medinfra_backup_check_success": success,
                        "medinfra_backup_check_timestamp_seconds": round(started)})
    return 0 if success else 1


def restore_latest(backup_set: BackupSet, target: Path) -> list[dict[str, Any]]:
    """Restore the newest snapshot of the set under ``target`` with restic's own verification of every blob,
    then check that every file the snapshot lists is there with its size. Returns the snapshot's files."""
    restic = Restic(backup_set)
    restic.run("restore", "latest", *restic.selection(), "--target", str(target), "--verify")
    listing = restic.run("ls", "--json", "latest", *restic.selection()).stdout.splitlines()
    files = [node for node in map(json.loads, listing[1:]) if node.get("type") == "file"]
    wrong = [node["path"] for node in files
             if not (target / node["path"].lstrip("/")).is_file()
             or (target / node["path"].lstrip("/")).stat().st_size != node.get("size", 0)]
    if wrong:
        raise BackupError(f"{len(wrong)} of {len(files)} restored files missing or of the wrong size: {wrong[:5]}")
    return files


def drill_database(backup_set: BackupSet, database: str, dump: Path, socket: str | None = None) -> None:
    """pg_restore the restored dump into a scratch database and run the sanity query; the scratch database goes.
    ``socket``: the socket directory of a throw-away cluster to restore into instead of the local server."""
    scratch = f"medinfra_drill_{database}"
    where = ["--host", socket] if socket else []
    as_postgres("dropdb", *where, "--if-exists", scratch, capture_output=True)
    try:
        created = as_postgres("createdb", *where, scratch, capture_output=True, text=True)
        if created.returncode != 0:
            raise BackupError(f"createdb {scratch} exited {created.returncode}: {created.stderr.strip()}")
        with dump.open("rb") as handle:
            restored = as_postgres("pg_restore", *where, "--no-owner", "--exit-on-error", "--dbname", scratch,
                                   stdin=handle, capture_output=True)
        if restored.returncode != 0:
            raise BackupError(f"pg_restore of {database} exited {restored.returncode}: {restored.stderr.decode()}")
        answer = as_postgres("psql", *where, "--no-psqlrc", "--tuples-only", "--no-align", "--dbname", scratch,
                             "--command", backup_set.sanity_query, capture_output=True, text=True)
        if answer.returncode != 0 or not answer.stdout.strip().isdigit() or int(answer.stdout.strip()) == 0:
            raise BackupError(f"sanity query on the restored {database} answered {answer.stdout.strip()!r}"
                              f" {answer.stderr.strip()}")
    finally:
        as_postgres("dropdb", *where, "--if-exists", scratch, capture_output=True)


def in_recovery() -> bool:
    """Whether the local PostgreSQL is a hot standby (a database pair's standby): read-only, so no scratch database
    can be created in it, while pg_dump works there as on a primary."""
    answer = as_postgres("psql", "--no-psqlrc", "--tuples-only", "--no-align", "--dbname", "postgres",
                         "--command", "SELECT pg_is_in_recovery()", capture_output=True, text=True)
    return answer.returncode == 0 and answer.stdout.strip() == "t"


def postgresql_bindir() -> str:
    """The newest installed PostgreSQL's programs (Debian keeps initdb and pg_ctl out of PATH)."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parts[-3]))
    if not found:
        raise BackupError("no /usr/lib/postgresql/*/bin/initdb for a throw-away cluster")
    return str(found[-1].parent)


@contextlib.contextmanager
def scratch_cluster(directory: Path) -> Iterator[str]:
    """A throw-away PostgreSQL cluster in ``directory``, owned by postgres and reachable only on its own socket
    there (no TCP); yields that socket directory, then stops the cluster and removes it."""
    bindir = postgresql_bindir()
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(mode=0o700)
    shutil.chown(directory, "postgres", "postgres")
    data, log = directory / "data", directory / "server.log"
    initialised = as_postgres(f"{bindir}/initdb", "--auth=peer", "--username=postgres", "--encoding=UTF8",
                              "--locale=C.UTF-8", "--no-sync", "-D", str(data), capture_output=True, text=True)
    try:
        if initialised.returncode != 0:
            raise BackupError(f"initdb of a throw-away cluster exited {initialised.returncode}: "
                              f"{initialised.stderr.strip()}")
        options = f"-c listen_addresses='' -c unix_socket_directories='{directory}' -c fsync=off"
        started = as_postgres(f"{bindir}/pg_ctl", "-D", str(data), "-l", str(log), "-w", "-o", options, "start",
                              capture_output=True, text=True)
        if started.returncode != 0:
            raise BackupError(f"the throw-away cluster did not start: {started.stderr.strip() or started.stdout}")
        yield str(directory)
    finally:
        as_postgres(f"{bindir}/pg_ctl", "-D", str(data), "-m", "immediate", "-w", "stop", capture_output=True)
        shutil.rmtree(directory, ignore_errors=True)


def drill_databases(backup_set: BackupSet, dumps: Path) -> None:
    """Restore every dump of the set and query it: into scratch databases of the local server, or on a hot standby
    (read-only) into a throw-away cluster beside the scratch files."""
    if not backup_set.databases:
        return
    if not in_recovery():
        for database in backup_set.databases:
            drill_database(backup_set, database, dumps / f"{database}.dump")
        return
    cluster = Path(backup_set.scratch_directory) / f".{backup_set.name}-cluster"
    print(f"restore drill of set {backup_set.name}: the local PostgreSQL is a hot standby (read-only), so the dumps "
          f"are restored into a throw-away cluster in {cluster}", file=sys.stderr)
    with scratch_cluster(cluster) as socket:
        for database in backup_set.databases:
            drill_database(backup_set, database, dumps / f"{database}.dump", socket)


def drill_outcome(backup_set: BackupSet, success: bool, started: float, finished: float) -> dict[str, float]:
    """What a drill records: its outcome and, when it passed, how long the restore took (the RTO achieved) beside
    the RTO declared; a failed drill keeps the duration of the last one that passed."""
    outcome: dict[str, float] = {
        "medinfra_backup_restore_drill_success": 1 if success else 0,
        "medinfra_backup_restore_drill_timestamp_seconds": round(started),
        "medinfra_backup_rto_seconds": backup_set.rto_minutes * 60,
    }
    if success:
        outcome["medinfra_backup_restore_drill_duration_seconds"] = round(finished - started, 3)
    return outcome


def run_drill(backup_set: BackupSet) -> int:
    started = time.time()
    scratch = Path(backup_set.scratch_directory) / backup_set.name
    try:
        require_password_file()
        shutil.rmtree(scratch, ignore_errors=True)
        scratch.mkdir(mode=0o700, parents=True)
        files = restore_latest(backup_set, scratch)
        drill_databases(backup_set, scratch / backup_set.dump_directory.lstrip("/"))
        success, finished = True, time.time()
        print(json.dumps({"set": backup_set.name, "files_verified": len(files),
                          "databases_restored": list(backup_set.databases),
                          "restore_seconds": round(finished - started, 3),
                          "rto_seconds": backup_set.rto_minutes * 60}))
    except BackupError as exc:
        print(f"restore drill of set {backup_set.name} failed: {exc}", file=sys.stderr)
        success, finished = False, time.time()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    record(backup_set, drill_outcome(backup_set, success, started, finished))
    return 0 if success else 1


def run_restore(backup_set: BackupSet, target: Path) -> int:
    """For people: restore the newest snapshot under ``target`` and verify it, nothing recorded."""
    require_password_file()
    files = restore_latest(backup_set, target)
    print(json.dumps({"set": backup_set.name, "target": str(target), "files_verified": len(files)}))
    return 0


@contextlib.contextmanager
def set_lock(backup_set: BackupSet) -> Iterator[None]:
    """One job of a set at a time on this host: `restic check` and `forget --prune` lock the repository exclusively,
    so a drill or check that started while a backup ran would otherwise fail instead of waiting its turn."""
    name, directory = backup_set.name, Path(backup_set.state_directory)
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    with open(directory / f"{name}.lock", "w", encoding="utf-8") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"medinfra-backup: waiting for another job of set {name} to finish", file=sys.stderr)
            fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def configured_sets_directory(program: Path) -> Path | None:
    """The sets directory in the settings the role wrote beside the program (PROGRAM.json), if there are any."""
    try:
        settings = json.loads((program.parent / (program.name + SETTINGS_SUFFIX)).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    return Path(settings["config_directory"]) / "sets"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config-directory", type=Path, default=configured_sets_directory(Path(__file__)),
                        help="directory of the backup sets (default: the one the role configured)")
    commands = parser.add_subparsers(dest="command", required=True)
    for name, text in (("init", "create the set's repository unless it exists"),
                       ("run", "dump the databases, back up, apply retention, record metrics"),
                       ("check", "restic check (a rotating thirtieth of the data), record the result"),
                       ("drill", "restore the newest snapshot into scratch space and verify it, record the result"),
                       ("restore", "restore the newest snapshot under --target and verify it")):
        command = commands.add_parser(name, help=text)
        command.add_argument("set", help="backup set name")
        if name == "check":
            command.add_argument("--subset", default="", help="restic's n/t (default: today's thirtieth)")
        if name == "restore":
            command.add_argument("--target", type=Path, required=True)
    arguments = parser.parse_args(argv)
    if arguments.config_directory is None:
        parser.error(f"--config-directory is needed: no settings beside {__file__} (role backup writes them)")
    config = arguments.config_directory / f"{arguments.set}.json"
    if not config.is_file():
        print(f"medinfra-backup: no backup set {arguments.set!r} ({config} does not exist)", file=sys.stderr)
        return 2
    backup_set = BackupSet.load(config)
    with set_lock(backup_set):
        return run_command(arguments, backup_set)


def run_command(arguments: argparse.Namespace, backup_set: BackupSet) -> int:
    try:
        if arguments.command == "init":
            return run_init(backup_set)
        if arguments.command == "run":
            return run_backup(backup_set)
        if arguments.command == "check":
            return run_check(backup_set, arguments.subset or check_subset(time.localtime().tm_mday))
        if arguments.command == "drill":
            return run_drill(backup_set)
        return run_restore(backup_set, arguments.target)
    except BackupError as exc:
        print(f"medinfra-backup {arguments.command} {backup_set.name}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
