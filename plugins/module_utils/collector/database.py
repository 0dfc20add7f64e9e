"""PostgreSQL replication as the local server reports it, and the failover drill record (database pairs)."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from datetime import datetime

from .base import Json, at_root, read_text, run, unavailable

# A pair's PostgreSQL (medinfra.topology.redundancy.POSTGRESQL_PORT; host programs import nothing from medinfra).
POSTGRESQL_PORT = 5432
SOCKET_DIRECTORY = "/var/run/postgresql"

# One JSON document: the role of the server, each standby it sends WAL to (with the SSL state of that connection) and,
# on a standby, its WAL receiver. The receiver's conninfo is reduced to its sslmode: nothing else of it is evidence.
REPLICATION_QUERY = r"""SELECT json_build_object(
  'in_recovery', pg_is_in_recovery(),
  'current_wal_lsn', CASE WHEN pg_is_in_recovery() THEN NULL ELSE pg_current_wal_lsn() END,
  'replication', (SELECT coalesce(json_agg(json_build_object(
      'application_name', r.application_name, 'client_addr', host(r.client_addr), 'state', r.state,
      'sync_state', r.sync_state, 'replay_lag_seconds', extract(epoch FROM r.replay_lag), 'replay_lsn', r.replay_lsn,
      'ssl', s.ssl) ORDER BY r.application_name), '[]') FROM pg_stat_replication r LEFT JOIN pg_stat_ssl s USING (pid)),
  'wal_receiver', (SELECT json_build_object('status', w.status, 'sender_host', w.sender_host,
      'sender_port', w.sender_port, 'sslmode', substring(w.conninfo FROM 'sslmode=(\S+)'))
    FROM pg_stat_wal_receiver w LIMIT 1))"""

PSQL = ["runuser", "-u", "postgres", "--", "psql", "-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1",
        "-h", SOCKET_DIRECTORY, "-p", str(POSTGRESQL_PORT), "-d", "postgres", "-c", REPLICATION_QUERY]

# libpq's sslmodes that refuse a connection without SSL: with `prefer` or `allow` it may run in the clear.
SSL_REQUIRED_MODES = ("require", "verify-ca", "verify-full")

DRILL_FORMAT = "medinfra-failover-drill/1"
DRILL_FIELDS: dict[str, tuple[type, ...]] = {
    "format": (str,), "drill_id": (str,), "cluster": (str,), "started": (str,), "finished": (str,),
    "failed_host": (str,), "new_primary": (str,), "method": (str,), "rto_seconds": (int, float),
    "rpo_seconds": (int, float), "heartbeats_acknowledged": (int,), "heartbeats_lost": (int,),
    "declared_rto_seconds": (int,), "declared_rpo_seconds": (int,), "redundancy_restored": (bool,), "passed": (bool,),
}
DRILL_METHODS = ("stop", "isolate")


def number(value: Json) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def sender(row: Mapping[str, Json], current_lsn: Json) -> dict[str, Json]:
    """One row of pg_stat_replication: its replay lag is 0 once it replayed the current WAL position (PostgreSQL
    then stops reporting a lag), the lag PostgreSQL measured otherwise, unknown (None) when it has none."""
    caught_up = current_lsn is not None and row.get("replay_lsn") == current_lsn
    lag = number(row.get("replay_lag_seconds"))
    return {
        "application_name": row.get("application_name"),
        "client_addr": row.get("client_addr"),
        "state": row.get("state"),
        "sync_state": row.get("sync_state"),
        "caught_up": caught_up,
        "replay_lag_seconds": 0.0 if caught_up else (round(lag, 3) if lag is not None else None),
        "ssl": row.get("ssl") is True,
    }


def parse_replication(text: str) -> Json:
    """The output of REPLICATION_QUERY as psql -A -t prints it."""
    try:
        document = json.loads(text)
    except ValueError:
        return unavailable(f"psql printed no JSON document: {text.strip()[:200]!r}")
    if not isinstance(document, dict) or not isinstance(document.get("in_recovery"), bool):
        return unavailable("psql's document has no in_recovery")
    rows = document.get("replication")
    receiver = document.get("wal_receiver")
    current = document.get("current_wal_lsn")
    return {
        "running": True,
        "role": "standby" if document["in_recovery"] else "primary",
        "current_wal_lsn": current,
        "senders": [sender(row, current) for row in rows if isinstance(row, dict)] if isinstance(rows, list) else [],
        "wal_receiver": None if not isinstance(receiver, dict) else {
            "status": receiver.get("status"),
            "sender_host": receiver.get("sender_host"),
            "sender_port": receiver.get("sender_port"),
            "sslmode": receiver.get("sslmode"),
            "ssl": receiver.get("sslmode") in SSL_REQUIRED_MODES,
        },
    }


def psql_failure(rc: int, stderr: str) -> Json:
    """Why psql gave no answer: its first line names the fault (the second is a hint), never the query."""
    lines = stderr.strip().splitlines()
    return unavailable(f"psql as postgres on {SOCKET_DIRECTORY}: {lines[0] if lines else f'exit {rc}'}")


def iso_moment(value: Json) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


def drill_shape_problems(record: Mapping[str, Json]) -> list[str]:
    """Why a drill record is not a medinfra-failover-drill/1 document (empty when it is one)."""
    problems = [
        f"{key} is {type(record.get(key)).__name__}, not {' or '.join(t.__name__ for t in types)}"
        for key, types in DRILL_FIELDS.items()
        # bool is an int in Python: a count or a time given as true is malformed all the same.
        if not isinstance(record.get(key), types) or (bool not in types and isinstance(record.get(key), bool))
    ]
    if problems:
        return problems
    if record["format"] != DRILL_FORMAT:
        problems.append(f"format is {record['format']!r}, not {DRILL_FORMAT!r}")
    if record["method"] not in DRILL_METHODS:
        problems.append(f"method is {record['method']!r}, not one of {list(DRILL_METHODS)}")
    started, finished = iso_moment(record["started"]), iso_moment(record["finished"])
    if started is None or finished is None:
        problems.append("started and finished are not ISO 8601 times with a zone")
    elif finished < started:
        problems.append(f"finished {record['finished']} before it started {record['started']}")
    return problems


def drill_outcome_problems(record: Mapping[str, Json]) -> list[str]:
    """Why a well-formed drill failed (empty when it passed)."""
    problems = []
    if record["rto_seconds"] > record["declared_rto_seconds"]:
        problems.append(f"recovery took {record['rto_seconds']} s, over the RTO of {record['declared_rto_seconds']} s")
    if record["rpo_seconds"] > record["declared_rpo_seconds"]:
        problems.append(
            f"{record['rpo_seconds']} s of writes were lost, over the RPO of {record['declared_rpo_seconds']} s"
        )
    if not record["redundancy_restored"]:
        problems.append("redundancy was not restored after the failover")
    if not record["passed"]:
        problems.append("the drill did not pass")
    return problems


def drill_record(text: str | None, path: str) -> Json:
    """The failover drill record `medinfra drill failover` leaves (format medinfra-failover-drill/1): its fields
    and `problems`, which say why it is malformed or the drill failed. A broken file is evidence, not a crash."""
    if text is None:
        problem = f"no failover drill record at {path}"
        return {"path": path, "present": False, "well_formed": False, "problems": [problem]}
    try:
        record = json.loads(text)
    except ValueError as exc:
        return {"path": path, "present": True, "well_formed": False, "problems": [f"{path} is not JSON: {exc}"]}
    if not isinstance(record, dict):
        problem = f"{path} holds a {type(record).__name__}, not an object"
        return {"path": path, "present": True, "well_formed": False, "problems": [problem]}
    shape = drill_shape_problems(record)
    if shape:
        return {"path": path, "present": True, "well_formed": False, "problems": [f"{path}: {p}" for p in shape]}
    fields = {key: record[key] for key in DRILL_FIELDS}
    return {"path": path, "present": True, "well_formed": True, **fields, "problems": drill_outcome_problems(record)}


def collect_database(state_directory: str) -> Json:
    """The local PostgreSQL's replication (when its socket is there) and the failover drill record."""
    if os.path.exists(at_root(f"{SOCKET_DIRECTORY}/.s.PGSQL.{POSTGRESQL_PORT}")):
        rc, out, err = run(PSQL)
        replication = parse_replication(out) if rc == 0 else psql_failure(rc, err)
    else:
        replication = {"running": False}
    path = f"{state_directory}/failover-drill.json"
    return {"replication": replication, "failover_drill": drill_record(read_text(at_root(path)), path)}
