#!/usr/bin/python3
"""Metrics of one member of a PostgreSQL pair under Patroni, for the node exporter's textfile collector.

Standard library only: role database_ha runs this file from a timer on both members. It asks the local PostgreSQL
with `psql` as postgres over the Unix socket and writes `medinfra_database.prom` atomically:

- medinfra_database_up, medinfra_database_primary, medinfra_database_receiving (a standby's WAL receiver streams);
- on the primary: medinfra_database_standbys_streaming and medinfra_database_replication_lag_seconds for the pair's
  other member - 0 when it has replayed the current WAL position, its replay lag while it streams behind, and the
  seconds since it last was caught up (kept in a state file) when it does not stream, so the lag grows while
  replication is cut;
- medinfra_database_rpo_seconds (declared) and medinfra_database_metrics_timestamp_seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

# One row per fact, `|`-separated: what it is, then its fields. The current position is the primary's; a standby
# (in recovery) has no rows in pg_stat_replication, so pg_current_wal_lsn() is never evaluated there.
QUERY = """
SELECT 'node', pg_is_in_recovery()::int::text, '', ''
UNION ALL
SELECT 'replica', application_name, state, CASE WHEN replay_lsn = pg_current_wal_lsn() THEN '0'
       ELSE coalesce(extract(epoch FROM replay_lag)::text, '') END
  FROM pg_stat_replication
UNION ALL
SELECT 'receiver', status, '', '' FROM pg_stat_wal_receiver
"""


@dataclass(frozen=True)
class Replica:
    name: str
    state: str
    # Seconds behind: 0 when caught up, None when PostgreSQL does not know (behind, no replay_lag sample yet).
    lag: float | None


@dataclass(frozen=True)
class Snapshot:
    primary: bool
    replicas: tuple[Replica, ...] = ()
    receiver_status: str = ""


class ParseError(ValueError):
    pass


def parse(output: str) -> Snapshot:
    """Read the answer of `psql -AtX -c QUERY` (fields separated by `|`)."""
    primary: bool | None = None
    replicas: list[Replica] = []
    receiver = ""
    for line in output.splitlines():
        if not line.strip():
            continue
        kind, _separator, rest = line.partition("|")
        fields = rest.split("|")
        if kind == "node" and fields[0] in ("0", "1"):
            primary = fields[0] == "0"
        elif kind == "replica" and len(fields) == 3:
            lag = float(fields[2]) if fields[2] else None
            replicas.append(Replica(fields[0], fields[1], lag))
        elif kind == "receiver":
            receiver = fields[0]
    if primary is None:
        raise ParseError(f"no recovery state in psql's answer: {output[:200]!r}")
    return Snapshot(primary, tuple(replicas), receiver)


def replication_lag(snapshot: Snapshot, standby: str, now: float, caught_up_at: float) -> tuple[float, float]:
    """The standby's lag in seconds and when it was last caught up (for the state file)."""
    for replica in snapshot.replicas:
        if replica.name == standby and replica.state == "streaming":
            if replica.lag == 0:
                return 0.0, now
            if replica.lag is not None:
                return replica.lag, caught_up_at
    return max(0.0, now - caught_up_at), caught_up_at


def render(cluster: str, rpo_seconds: int, now: float, snapshot: Snapshot | None, lag: float | None,
           standby: str) -> str:
    """The textfile: None as snapshot means PostgreSQL did not answer."""
    label = f'cluster="{escape(cluster)}"'
    lines = [
        "# HELP medinfra_database_up 1 if the local PostgreSQL answered.",
        "# TYPE medinfra_database_up gauge",
        f"medinfra_database_up{{{label}}} {0 if snapshot is None else 1}",
        "# HELP medinfra_database_primary 1 if this member is primary (not in recovery).",
        "# TYPE medinfra_database_primary gauge",
        f"medinfra_database_primary{{{label}}} {int(snapshot is not None and snapshot.primary)}",
    ]
    if snapshot is not None and snapshot.primary:
        streaming = sum(1 for replica in snapshot.replicas if replica.state == "streaming")
        lines += [
            "# HELP medinfra_database_standbys_streaming Standbys whose replication state is streaming.",
            "# TYPE medinfra_database_standbys_streaming gauge",
            f"medinfra_database_standbys_streaming{{{label}}} {streaming}",
        ]
        if lag is not None:
            lines += [
                "# HELP medinfra_database_replication_lag_seconds Replay lag of the standby; while it does not "
                "stream, seconds since it last was caught up.",
                "# TYPE medinfra_database_replication_lag_seconds gauge",
                f'medinfra_database_replication_lag_seconds{{{label},standby="{escape(standby)}"}} {lag:.3f}',
            ]
    if snapshot is not None and not snapshot.primary:
        lines += [
            "# HELP medinfra_database_receiving 1 if this standby's WAL receiver is streaming.",
            "# TYPE medinfra_database_receiving gauge",
            f"medinfra_database_receiving{{{label}}} {int(snapshot.receiver_status == 'streaming')}",
        ]
    lines += [
        "# HELP medinfra_database_rpo_seconds Recovery point objective declared for the pair.",
        "# TYPE medinfra_database_rpo_seconds gauge",
        f"medinfra_database_rpo_seconds{{{label}}} {rpo_seconds}",
        "# HELP medinfra_database_metrics_timestamp_seconds When this file was written.",
        "# TYPE medinfra_database_metrics_timestamp_seconds gauge",
        f"medinfra_database_metrics_timestamp_seconds{{{label}}} {now:.3f}",
    ]
    return "\n".join(lines) + "\n"


def escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def read_state(path: Path, standby: str, now: float) -> float:
    """When the standby was last caught up; now when never recorded (the lag counts from the first run)."""
    try:
        value = json.loads(path.read_text()).get(standby)
    except (OSError, ValueError, AttributeError):
        return now
    return float(value) if isinstance(value, (int, float)) else now


def write_atomically(path: Path, text: str, mode: int) -> None:
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(handle, "w") as stream:
            stream.write(text)
        os.chmod(temporary, mode)
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise


def ask_postgresql(timeout: float) -> str | None:
    """psql's answer as postgres over the local socket, or None if PostgreSQL did not answer."""
    try:
        result = subprocess.run(
            ["psql", "-AtX", "-v", "ON_ERROR_STOP=1", "-d", "postgres", "-c", QUERY],
            user="postgres", group="postgres", extra_groups=[], cwd="/",
            capture_output=True, text=True, timeout=timeout, check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return result.stdout if result.returncode == 0 else None


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cluster", required=True, help="the pair's name (label cluster)")
    parser.add_argument("--standby", required=True, help="the pair's other member (label standby of the lag)")
    parser.add_argument("--rpo-seconds", type=int, required=True)
    parser.add_argument("--output", type=Path, required=True, help="the .prom file to write")
    parser.add_argument("--state", type=Path, required=True, help="JSON file: when the standby was last caught up")
    parser.add_argument("--timeout", type=float, default=10.0)
    args = parser.parse_args(argv)
    now = time.time()
    answer = ask_postgresql(args.timeout)
    snapshot: Snapshot | None = None
    if answer is not None:
        try:
            snapshot = parse(answer)
        except ParseError as error:
            print(f"medinfra-database-metrics: {error}", file=sys.stderr)
    lag = None
    if snapshot is not None and snapshot.primary:
        lag, caught_up_at = replication_lag(snapshot, args.standby, now, read_state(args.state, args.standby, now))
        write_atomically(args.state, json.dumps({args.standby: caught_up_at}) + "\n", 0o640)
    write_atomically(args.output, render(args.cluster, args.rpo_seconds, now, snapshot, lag, args.standby), 0o644)
    return 0 if snapshot is not None else 1


if __name__ == "__main__":
    sys.exit(main())
