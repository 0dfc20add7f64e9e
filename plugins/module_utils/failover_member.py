"""What `medinfra drill failover` does on a member of a database pair, as root: standard library only.

- `cluster`: Patroni's view of the pair (`patronictl list -f json`).
- `replication`: this PostgreSQL's pg_stat_replication, each standby's state and replay lag in seconds (0 when it
  has replayed everything this primary wrote; a standby not streaming yet may show no lag at all, so callers
  judge `state` first).
- `fail` / `restore`: stop or start Patroni, or isolate the member with an nftables table of its own that drops
  the pair's ports (PostgreSQL, Patroni REST, etcd) in and out, SSH and loopback kept.
- `rows`: the heartbeat rows of one drill in this member's PostgreSQL.
- `write_record`: the drill's record (failover-drill.json, 0640) in the host's state directory, for the audit.
The controller appends the call (medinfra.drill.failover.host_call); every answer is one JSON document.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import tempfile
import time
from typing import Any

PATRONI_CONFIG = "/etc/patroni/config.yml"
ISOLATION_TABLE = "medinfra_drill_isolation"
RECORD_FILE = "failover-drill.json"
DRILL_ID = re.compile(r"^[0-9a-f]{8,64}$")
COMMAND_TIMEOUT = 60
REPLICATION_SQL = """SELECT coalesce(json_agg(json_build_object(
    'name', application_name, 'state', state, 'client', host(client_addr),
    'lag_seconds', CASE WHEN replay_lsn = pg_current_wal_lsn() THEN 0 ELSE extract(epoch FROM replay_lag) END,
    'lag_bytes', pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn))), '[]')
  FROM pg_stat_replication"""


def run(argv: list[str], stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=COMMAND_TIMEOUT, check=False)
    except FileNotFoundError:
        return subprocess.CompletedProcess(argv, 127, "", f"{argv[0]} is not installed on this host")
    except subprocess.TimeoutExpired:
        return subprocess.CompletedProcess(argv, 124, "", f"no answer within {COMMAND_TIMEOUT} s")


def failure(done: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    lines = done.stderr.strip().splitlines() or done.stdout.strip().splitlines() or [""]
    return {"ok": False, "error": f"{done.args[0]} exited {done.returncode}: {lines[-1][:300]}"}


def postgres(sql: str, database: str = "postgres") -> subprocess.CompletedProcess[str]:
    return run(["runuser", "-u", "postgres", "--", "psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
                "-d", database, "-c", sql])


def cluster() -> dict[str, Any]:
    done = run(["patronictl", "-c", PATRONI_CONFIG, "list", "-f", "json"])
    if done.returncode != 0:
        return failure(done)
    return {"ok": True, "members": json.loads(done.stdout or "[]")}


def replication() -> dict[str, Any]:
    done = postgres(f"SELECT pg_is_in_recovery(), ({REPLICATION_SQL})")
    if done.returncode != 0:
        return failure(done)
    in_recovery, _separator, standbys = done.stdout.strip().partition("|")
    return {"ok": True, "in_recovery": in_recovery == "t", "standbys": json.loads(standbys)}


def isolation_rules(ports: list[int]) -> str:
    """The table that cuts the member off from its pair: replaced whole, so a second `fail` changes nothing."""
    listed = ", ".join(str(int(port)) for port in ports)
    chains = "".join(
        f"  chain {name} {{\n    type filter hook {name} priority -10; policy accept;\n"
        f"    {interface} \"lo\" accept\n    tcp dport {{ {listed} }} drop\n    tcp sport {{ {listed} }} drop\n  }}\n"
        for name, interface in (("input", "iifname"), ("output", "oifname"))
    )
    return (f"table inet {ISOLATION_TABLE} {{}}\ndelete table inet {ISOLATION_TABLE}\n"
            f"table inet {ISOLATION_TABLE} {{\n{chains}}}\n")


def fail(method: str, ports: list[int]) -> dict[str, Any]:
    at = time.time()
    if method == "stop":
        done = run(["systemctl", "stop", "patroni"])
    else:
        done = run(["nft", "-f", "-"], stdin=isolation_rules(ports))
    return {"ok": True, "at": at} if done.returncode == 0 else failure(done)


def restore(method: str) -> dict[str, Any]:
    if method == "stop":
        done = run(["systemctl", "start", "patroni"])
    else:
        done = run(["nft", "delete", "table", "inet", ISOLATION_TABLE])
    return {"ok": True} if done.returncode == 0 else failure(done)


def rows(drill_id: str) -> dict[str, Any]:
    if not DRILL_ID.match(drill_id):
        return {"ok": False, "error": f"drill id {drill_id!r} is not hexadecimal"}
    done = postgres(f"SELECT coalesce(json_agg(seq), '[]') FROM public.heartbeat WHERE drill_id = '{drill_id}'",
                    "medinfra_drill")
    return {"ok": True, "seqs": json.loads(done.stdout)} if done.returncode == 0 else failure(done)


def write_record(state: str, record: dict[str, Any]) -> dict[str, Any]:
    os.makedirs(state, mode=0o750, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=state, prefix=".failover-drill.")
    try:
        os.fchmod(descriptor, 0o640)
        with os.fdopen(descriptor, "w", encoding="utf-8") as out:
            json.dump(record, out, indent=1)
            out.write("\n")
        os.replace(temporary, os.path.join(state, RECORD_FILE))
    except BaseException:
        os.unlink(temporary)
        raise
    return {"ok": True, "path": os.path.join(state, RECORD_FILE)}
