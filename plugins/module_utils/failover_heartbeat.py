"""Heartbeats of `medinfra drill failover`, run on the database pair's service host: standard library only.

`heartbeat` writes one row every INTERVAL seconds into medinfra_drill.public.heartbeat through the service
address (127.0.0.1:<service port>, the proxy to whichever member leads), one `psql` per attempt with the drill's
password file, started on time even while earlier ones wait for a member that hangs, and appends each attempt
as it ends to a JSON-lines log: {seq, sent, done, ok, error} (times in seconds since
the epoch, this host's clock). It stops when the stop file appears or after `max_seconds`, and prints
{"attempts": [...]}. `progress` reads that log while the drill runs; `stop` makes the stop file.
The controller appends the call (medinfra.drill.failover.host_call): no value reaches a command line but the drill id,
which the controller makes of hexadecimal digits only.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from typing import Any

INTERVAL = 0.1
# libpq waits at least 2 s for a connection; an INSERT sent to an isolated member would hang far longer.
ATTEMPT_TIMEOUT = 2.0
PGPASSFILE = "/etc/medinfra/database-ha/drill.pgpass"
DRILL_ID = re.compile(r"^[0-9a-f]{8,64}$")


def log_path(state: str, drill_id: str) -> str:
    return os.path.join(state, f"failover-heartbeat-{drill_id}.jsonl")


def stop_path(state: str, drill_id: str) -> str:
    return os.path.join(state, f"failover-heartbeat-{drill_id}.stop")


def psql_command(port: int, sql: str) -> list[str]:
    """psql through the service address as the drill's user; -A -t: bare values."""
    conninfo = (f"host=127.0.0.1 port={int(port)} dbname=medinfra_drill user=medinfra_drill sslmode=require "
                "connect_timeout=2")
    return ["psql", conninfo, "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", sql]


def insert_command(port: int, drill_id: str, seq: int) -> list[str]:
    if not DRILL_ID.match(drill_id):
        raise ValueError(f"drill id {drill_id!r} is not hexadecimal")
    return psql_command(port, f"INSERT INTO public.heartbeat (drill_id, seq) VALUES ('{drill_id}', {int(seq)})")


PSQL_ENV = {"PATH": "/usr/bin:/bin", "PGPASSFILE": PGPASSFILE}
# Attempts in flight at once: a member that hangs holds each for ATTEMPT_TIMEOUT, and the next ones still start on
# time, so the log keeps its 100 ms resolution through the outage.
MAX_IN_FLIGHT = int(ATTEMPT_TIMEOUT / INTERVAL) + 5


def run_psql(command: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, env=PSQL_ENV, timeout=ATTEMPT_TIMEOUT, check=False)


def psql_error(returncode: int, stderr: str) -> str:
    """psql's first line of complaint (the later ones are hints), without its `psql: error: ` prefix."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    return lines[0].removeprefix("psql: error: ")[:300] if lines else f"psql exit {returncode}"


def proxy(port: int) -> dict[str, Any]:
    """Whether the service address answers as the drill's user: a primary (not in recovery) holding the table."""
    try:
        done = run_psql(psql_command(port, "SELECT pg_is_in_recovery(), (SELECT count(*) FROM public.heartbeat)"))
    except FileNotFoundError:
        return {"ok": False, "error": "psql is not installed on this host (package postgresql-client)"}
    except subprocess.TimeoutExpired:
        return {"ok": False, "error": f"no answer within {ATTEMPT_TIMEOUT} s"}
    if done.returncode != 0:
        return {"ok": False, "error": psql_error(done.returncode, done.stderr)}
    in_recovery = done.stdout.strip().split("|")[0]
    return {"ok": in_recovery == "f", "error": None if in_recovery == "f" else "the proxy leads to a standby"}


class Attempt:
    """One heartbeat under way: acknowledged when psql says the INSERT committed (exit 0)."""

    def __init__(self, port: int, drill_id: str, seq: int) -> None:
        self.seq, self.sent, self.started = seq, time.time(), time.monotonic()
        self.process = subprocess.Popen(insert_command(port, drill_id, seq), stdin=subprocess.DEVNULL,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=PSQL_ENV)

    def finished(self) -> dict[str, Any] | None:
        """The attempt's record once psql has exited or been given up on, else None."""
        timed_out = time.monotonic() - self.started > ATTEMPT_TIMEOUT
        if self.process.poll() is None and not timed_out:
            return None
        if self.process.poll() is None:
            self.process.kill()
        _stdout, stderr = self.process.communicate()
        ok = not timed_out and self.process.returncode == 0
        error = f"no answer within {ATTEMPT_TIMEOUT} s" if timed_out else psql_error(self.process.returncode, stderr)
        return {"seq": self.seq, "sent": round(self.sent, 6), "done": round(time.time(), 6), "ok": ok,
                "error": None if ok else error}


def heartbeat(drill_id: str, port: int, state: str, max_seconds: float) -> dict[str, Any]:
    if shutil.which("psql", path=PSQL_ENV["PATH"]) is None:
        return {"attempts": [], "error": "psql is not installed on this host (package postgresql-client)"}
    os.makedirs(state, mode=0o750, exist_ok=True)
    attempts: list[dict[str, Any]] = []
    running: list[Attempt] = []
    started = time.monotonic()
    due, seq = started, 0
    stop = stop_path(state, drill_id)
    with open(log_path(state, drill_id), "a", encoding="utf-8") as log:
        while True:
            now = time.monotonic()
            stopping = os.path.exists(stop) or now - started >= max_seconds
            if stopping and not running:
                break
            if not stopping and now >= due and len(running) < MAX_IN_FLIGHT:
                seq += 1
                running.append(Attempt(port, drill_id, seq))
                # Every INTERVAL; ticks missed while the host was too busy are skipped, not made up in a burst.
                due = max(due + INTERVAL, now)
            for attempt in list(running):
                record = attempt.finished()
                if record is not None:
                    running.remove(attempt)
                    attempts.append(record)
                    log.write(json.dumps(record) + "\n")
                    log.flush()
            time.sleep(0.005)
    if os.path.exists(stop):
        os.unlink(stop)
    return {"attempts": sorted(attempts, key=lambda record: record["seq"])}


def progress(drill_id: str, state: str, since: float) -> dict[str, Any]:
    """How the heartbeats go: attempts so far, and those acknowledged that were sent after `since`."""
    attempts = acked_after = 0
    try:
        with open(log_path(state, drill_id), encoding="utf-8") as log:
            for line in log:
                try:
                    record = json.loads(line)
                except ValueError:
                    continue  # the line being written
                attempts += 1
                acked_after += bool(record.get("ok") and record.get("sent", 0) > since)
    except FileNotFoundError:
        pass
    return {"attempts": attempts, "acknowledged_after": acked_after, "now": time.time()}


def stop(drill_id: str, state: str) -> dict[str, Any]:
    with open(stop_path(state, drill_id), "w", encoding="utf-8"):
        pass
    return {"stopped": True}
