"""`medinfra drill failover`: fail the leading member of a database pair on purpose and measure what clients saw.

Steps (each on the hosts through the audit's transport, `run_one`): preflight that changes nothing (Patroni's
view, pg_stat_replication on the leader, the proxy on the service host); heartbeats through the service address;
the leader made to fail (Patroni stopped, or the member isolated by nftables); the wait for the other member to
lead and the writes to come back; the figures (medinfra.drill.measure); the HIS probes as the monitoring server
sees them; redundancy restored (the old leader streams again); the record on both members.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import gevent

from medinfra.audit.targets import Target, load_targets, read_hosts
from medinfra.collector import collector_source
from medinfra.drill.measure import Measurement, measure, parse_attempts
from medinfra.package_data import hostside_source
from medinfra.problems import Problem, UserInputError

RECORD_FORMAT = "medinfra-failover-drill/1"
METHODS = ("stop", "isolate")
# Heartbeats acknowledged before the failure is made: the proxy and the path work, and the outage has a start.
WARM_UP_ACKS = 10
WARM_UP_SECONDS = 30
# Heartbeats acknowledged after the failure (sent after it) before the failover counts as done: 1 s of writes.
RECOVERED_ACKS = 10
POLL_SECONDS = 1.0
# How long the old leader may take to stream again as a standby before the drill says it did not.
RESTORE_SECONDS = 300
# How long to wait for Prometheus to scrape the HIS probes after the failover (scrape interval and a margin).
PROBE_SECONDS = 90


class DrillError(Exception):
    """The drill could not go on; `refused` when it changed nothing (preflight: exit 2)."""

    def __init__(self, message: str, refused: bool = False) -> None:
        super().__init__(message)
        self.refused = refused


@dataclass(frozen=True)
class Pair:
    """A database pair as the inventory declares it (medinfra_database_pair)."""

    name: str
    members: tuple[str, str]
    service_host: str
    service_port: int
    ports: tuple[int, ...]
    rto_seconds: int
    rpo_seconds: int


@dataclass(frozen=True)
class Preflight:
    leader: str
    standby: str
    problems: tuple[str, ...]
    notes: tuple[str, ...] = ()


@dataclass
class DrillResult:
    drill_id: str
    pair: Pair
    method: str
    started: datetime
    failed_host: str = ""
    new_primary: str = ""
    failed_at: float | None = None  # when the leader was failed, its own clock (seconds since the epoch)
    finished: datetime | None = None
    measurement: Measurement | None = None
    probe: dict[str, Any] = field(default_factory=dict)
    redundancy_restored: bool = False
    problems: list[str] = field(default_factory=list)
    attempts: list[dict[str, Any]] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        m = self.measurement
        return (m is not None and m.rto_seconds is not None and m.rto_seconds <= self.pair.rto_seconds
                and m.rpo_seconds <= self.pair.rpo_seconds and self.redundancy_restored and not self.problems)


def parse_pair(host: str, value: Any, where: str) -> Pair:
    """The pair of `host` from its medinfra_database_pair; refused (located) when it is not a member's."""
    if not isinstance(value, Mapping):
        raise UserInputError([Problem(where, (host, "medinfra_database_pair"),
                                      "is not set: the host is not in a database pair")])
    try:
        ports = value["ports"]
        pair = Pair(str(value["name"]), (str(value["primary"]), str(value["standby"])), str(value["service_host"]),
                    int(value["service_port"]),
                    tuple(int(ports[k]) for k in ("postgresql", "patroni", "etcd_client", "etcd_peer")),
                    int(value["rto_seconds"]), int(value["rpo_seconds"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise UserInputError([Problem(where, (host, "medinfra_database_pair"), f"malformed: {exc!r}")]) from None
    if host not in pair.members:
        message = f"{host} is the pair's service host; give a member: {' or '.join(pair.members)}"
        raise UserInputError([Problem(where, (host, "medinfra_database_pair"), message)])
    return pair


def host_call(source: str, function: str, **arguments: Any) -> str:
    """A host program and one call of it; the arguments travel as the Python literal of their JSON text."""
    return f"{source}\n\nprint(json.dumps({function}(**json.loads({json.dumps(arguments)!r}))))\n"


def answer(target: Target, program: str, timeout: float = 120) -> dict[str, Any]:
    """What the program printed on `target`; DrillError when the host could not run it."""
    # Imported here, not with the module: the transport patches the standard library for gevent (the CLI imports it
    # first), which must not happen to a process that only reads this module's pure parts (the unit tests).
    from medinfra.audit.pyinfra_transport import run_one

    result = run_one(target, program, timeout)
    if result.evidence is None:
        raise DrillError(f"{target.name}: {result.status}: {result.reason}")
    return dict(result.evidence)


def leader_of(members: Sequence[Mapping[str, Any]]) -> str | None:
    leaders = [str(m.get("Member")) for m in members if m.get("Role") == "Leader"]
    return leaders[0] if len(leaders) == 1 else None


def standby_row(replication: Mapping[str, Any], standby: str) -> Mapping[str, Any] | None:
    rows = [row for row in replication.get("standbys") or [] if row.get("name") == standby]
    return rows[0] if rows else None


def replication_problem(replication: Mapping[str, Any], leader: str, standby: str, rpo: int) -> str | None:
    """Why `standby` is not a standby to fail over to, from pg_stat_replication on `leader`, or None."""
    if not replication.get("ok"):
        return f"pg_stat_replication on {leader}: {replication.get('error')}"
    if replication.get("in_recovery"):
        return f"{leader} is in recovery: not the primary Patroni says it is"
    row = standby_row(replication, standby)
    if row is None:
        return f"{standby} is not replicating from {leader} (no row in pg_stat_replication)"
    if row.get("state") != "streaming":
        # Patroni shows lag 0 for a replica that does not stream yet; promoting it loses acknowledged writes.
        return f"{standby} is in state {row.get('state')!r} on {leader}, not streaming"
    lag = row.get("lag_seconds")
    if lag is None:
        return f"{standby}'s replay lag is unknown ({row.get('lag_bytes')} bytes behind)"
    if float(lag) >= rpo:
        return f"{standby} lags {float(lag):.1f} s behind {leader}, not below the RPO of {rpo} s"
    return None


def judge_preflight(pair: Pair, host: str, cluster: Mapping[str, Any], replication: Mapping[str, Any] | None,
                    proxy: Mapping[str, Any]) -> Preflight:
    """The pair's live state judged (pure): who leads, who stands by, and every reason not to fail it now."""
    problems: list[str] = []
    notes: list[str] = []
    if not proxy.get("ok"):
        problems.append(f"the service address 127.0.0.1:{pair.service_port} on {pair.service_host}: "
                        f"{proxy.get('error')}")
    if not cluster.get("ok"):
        return Preflight("", "", (f"patronictl list: {cluster.get('error')}", *problems))
    members = cluster.get("members") or []
    leader = leader_of(members)
    if leader not in pair.members:
        return Preflight("", "", (f"Patroni shows no single leader among {', '.join(pair.members)}: {members}",
                                  *problems))
    standby = next(m for m in pair.members if m != leader)
    if host != leader:
        notes.append(f"{host} is the standby now; the drill fails the current leader {leader}")
    state = {str(m.get("Member")): str(m.get("State")) for m in members}
    if standby not in state:
        problems.append(f"Patroni does not list {standby}")
    elif state[standby] not in ("streaming", "running"):
        problems.append(f"Patroni shows {standby} {state[standby]!r}")
    if replication is None:
        problems.append(f"pg_stat_replication on {leader}: not read")
    elif problem := replication_problem(replication, leader, standby, pair.rpo_seconds):
        problems.append(problem)
    return Preflight(leader, standby, tuple(problems), tuple(notes))


PROBE_QUERIES = {
    "probe": 'probe_success{{host="{host}"}}',
    "probe_time": 'timestamp(probe_success{{host="{host}"}})',
    "scrape": 'up{{instance="{host}"}}',
}


def probe_verdict(answers: Mapping[str, Any], after: float) -> tuple[bool, dict[str, Any]]:
    """(fresh, summary) of the monitoring server's answers: fresh once every probe was scraped after `after`;
    up when there are probes and every probe and scrape of the host succeeded."""
    if "unavailable" in answers:
        return True, {"up": False, "detail": str(answers["unavailable"])}
    probes = answers.get("probe") or []
    scrapes = answers.get("scrape") or []
    times = [float(series["value"]) for series in answers.get("probe_time") or []]
    seen = [(f"{series['labels'].get('service', '?')} ({series['labels'].get('module', '?')})", series.get("value"))
            for series in probes]
    seen += [(f"{series['labels'].get('job', '?')} scrape", series.get("value")) for series in scrapes]
    up = bool(probes) and all(value == "1" for _, value in seen)
    detail = ", ".join(f"{name} {'up' if value == '1' else 'DOWN'}" for name, value in seen) or "no probe of the host"
    fresh = bool(times) and min(times) >= after
    return fresh, {"up": up, "detail": detail, "series": {k: answers.get(k) for k in PROBE_QUERIES}}


def drill_record(result: DrillResult) -> dict[str, Any]:
    """The record on each member (failover-drill.json) and the `result` of the drill's evidence."""
    m = result.measurement
    return {
        "format": RECORD_FORMAT,
        "drill_id": result.drill_id,
        "cluster": result.pair.name,
        "started": result.started.isoformat(timespec="seconds"),
        "finished": (result.finished or datetime.now(UTC)).isoformat(timespec="seconds"),
        "failed_host": result.failed_host,
        "new_primary": result.new_primary,
        "method": result.method,
        "rto_seconds": None if m is None else m.rto_seconds,
        "rpo_seconds": None if m is None else m.rpo_seconds,
        "heartbeats_written": 0 if m is None else m.attempts,
        "heartbeats_acknowledged": 0 if m is None else m.acknowledged,
        "heartbeats_lost": 0 if m is None else len(m.lost),
        "declared_rto_seconds": result.pair.rto_seconds,
        "declared_rpo_seconds": result.pair.rpo_seconds,
        "redundancy_restored": result.redundancy_restored,
        "passed": result.passed,
    }


def evidence_result(result: DrillResult) -> dict[str, Any]:
    """The `result` of the drill's evidence: the record, and what lets a reader measure it again (every attempt,
    the failure's time, the outage found, the lost seqs), the HIS probes and the problems."""
    m = result.measurement
    return {
        **drill_record(result),
        "failed_at": result.failed_at,
        "outage": None if m is None else {"from": m.outage_from, "to": m.outage_to},
        "lost_seqs": [] if m is None else list(m.lost),
        "probe": result.probe,
        "problems": result.problems,
        "heartbeats": result.attempts,
    }


def result_text(result: DrillResult) -> str:
    m = result.measurement
    rto = "not recovered" if m is None or m.rto_seconds is None else f"{m.rto_seconds:.2f} s"
    rpo = "unknown" if m is None else f"{m.rpo_seconds:.2f} s"
    lines = [
        f"failover drill {result.drill_id} of {result.pair.name} ({result.method}): {result.failed_host} failed, "
        f"{result.new_primary or 'no member'} leads",
        f"  RTO achieved {rto:>14}   declared {result.pair.rto_seconds} s",
        f"  RPO achieved {rpo:>14}   declared {result.pair.rpo_seconds} s",
    ]
    if m is not None:
        lines.append(f"  heartbeats: {m.attempts} written, {m.acknowledged} acknowledged, {len(m.lost)} lost")
    if result.probe:
        lines.append(f"  HIS probes after the failover: {'UP' if result.probe.get('up') else 'DOWN'} "
                     f"({result.probe.get('detail')})")
    lines.append(f"  redundancy restored: {'yes' if result.redundancy_restored else 'NO'}")
    lines += [f"  problem: {problem}" for problem in result.problems]
    lines.append(f"  {'PASSED' if result.passed else 'FAILED'}")
    return "\n".join(lines)


class Drill:
    """One drill's hosts and programs."""

    def __init__(self, inventory: Path, host: str, vault_password_file: Path | None,
                 say: Callable[[str], None]) -> None:
        found = dict(read_hosts(inventory, host, vault_password_file, ("medinfra_database_pair",)))
        if host not in found:
            raise UserInputError([Problem(str(inventory), (host,), "no such host in the inventory")])
        self.pair = parse_pair(host, found[host].get("medinfra_database_pair"), str(inventory))
        targets = {t.name: t for t in load_targets(inventory, None, vault_password_file)}
        needed = (*self.pair.members, self.pair.service_host)
        broken = [f"{name}: {targets[name].problem}" for name in needed if name in targets and targets[name].problem]
        missing = [name for name in needed if name not in targets]
        if broken or missing:
            raise UserInputError([Problem(str(inventory), (name,), "not in the inventory") for name in missing]
                                 + [Problem(str(inventory), (), text) for text in broken])
        self.targets = targets
        self.monitors = [t for t in targets.values()
                         if "monitoring_server" in t.inventory["services"] and not t.problem]
        self.say = say
        self.member_source = hostside_source("failover_member.py")
        self.heartbeat_source = hostside_source("failover_heartbeat.py")

    def member(self, name: str, function: str, timeout: float = 120, **arguments: Any) -> dict[str, Any]:
        return answer(self.targets[name], host_call(self.member_source, function, **arguments), timeout)

    def service(self, function: str, timeout: float = 120, **arguments: Any) -> dict[str, Any]:
        return answer(self.targets[self.pair.service_host],
                      host_call(self.heartbeat_source, function, **arguments), timeout)

    @property
    def service_state(self) -> str:
        return str(self.targets[self.pair.service_host].inventory["paths"]["state"])

    def cluster(self, names: Sequence[str]) -> dict[str, Any]:
        """Patroni's view from the first of `names` that gives one."""
        last: dict[str, Any] = {"ok": False, "error": "no member asked"}
        for name in names:
            try:
                last = self.member(name, "cluster", timeout=30)
            except DrillError as exc:
                last = {"ok": False, "error": str(exc)}
            if last.get("ok"):
                return last
        return last

    def preflight(self, host: str) -> Preflight:
        cluster = self.cluster(self.pair.members)
        leader = leader_of(cluster.get("members") or []) if cluster.get("ok") else None
        replication = None
        if leader in self.pair.members:
            try:
                replication = self.member(leader, "replication", timeout=30)
            except DrillError as exc:
                replication = {"ok": False, "error": str(exc)}
        try:
            proxy = self.service("proxy", timeout=30, port=self.pair.service_port)
        except DrillError as exc:
            proxy = {"ok": False, "error": str(exc)}
        return judge_preflight(self.pair, host, cluster, replication, proxy)

    def heartbeat_progress(self, drill_id: str, since: float) -> dict[str, Any]:
        return self.service("progress", timeout=30, drill_id=drill_id, state=self.service_state, since=since)

    def wait(self, seconds: float, done: Callable[[], bool]) -> bool:
        deadline = time.monotonic() + seconds
        while True:
            if done():
                return True
            if time.monotonic() >= deadline:
                return False
            gevent.sleep(POLL_SECONDS)

    def probe(self, after: float) -> dict[str, Any]:
        if not self.monitors:
            return {"up": False, "detail": "no monitoring server in the inventory"}
        monitor = self.monitors[0]
        queries = {name: query.format(host=self.pair.service_host) for name, query in PROBE_QUERIES.items()}
        program = (f"{collector_source()}\n\nprint(json.dumps(safe(lambda: query_series("
                   f"json.loads({json.dumps(queries)!r}), {str(monitor.inventory['paths']['pki'])!r}))))\n")
        verdict: dict[str, Any] = {}

        def fresh() -> bool:
            nonlocal verdict
            try:
                is_fresh, verdict = probe_verdict(answer(monitor, program, timeout=60), after)
            except DrillError as exc:
                is_fresh, verdict = True, {"up": False, "detail": str(exc)}
            return is_fresh

        if not self.wait(PROBE_SECONDS, fresh):
            verdict["detail"] = f"{verdict.get('detail')} (not scraped since the failover within {PROBE_SECONDS} s)"
        return {"monitor": monitor.name, **verdict}

    def restored(self, leader: str, standby: str) -> bool:
        """Whether `standby` streams from `leader` within RESTORE_SECONDS; stops early when `standby` leads again."""
        taken_back = False

        def streaming() -> bool:
            nonlocal taken_back
            view = self.cluster([leader, standby])
            if view.get("ok") and leader_of(view.get("members") or []) == standby:
                taken_back = True
                return True
            try:
                state = self.member(leader, "replication", timeout=30)
            except DrillError:
                return False
            return replication_problem(state, leader, standby, self.pair.rpo_seconds) is None

        return self.wait(RESTORE_SECONDS, streaming) and not taken_back

    def run(self, host: str, method: str) -> DrillResult:
        """The drill; DrillError(refused=True) when the preflight finds the pair unfit (nothing changed)."""
        drill_id = secrets.token_hex(8)
        result = DrillResult(drill_id, self.pair, method, datetime.now(UTC))
        check = self.preflight(host)
        for line in check.notes:
            self.say(line)
        if check.problems:
            raise DrillError("preflight failed, nothing was changed:\n  " + "\n  ".join(check.problems), refused=True)
        leader, standby = check.leader, check.standby
        result.failed_host = leader
        self.say(f"preflight: {leader} leads, {standby} streams within the RPO, the proxy answers")
        max_seconds = self.pair.rto_seconds + WARM_UP_SECONDS + 60
        from medinfra.audit.pyinfra_transport import run_one  # see answer()

        heartbeat = gevent.spawn(
            run_one, self.targets[self.pair.service_host],
            host_call(self.heartbeat_source, "heartbeat", drill_id=drill_id, port=self.pair.service_port,
                      state=self.service_state, max_seconds=max_seconds),
            max_seconds + 30,
        )
        try:
            if not self.wait(WARM_UP_SECONDS,
                             lambda: self.heartbeat_progress(drill_id, 0)["acknowledged_after"] >= WARM_UP_ACKS):
                raise DrillError(f"heartbeats through {self.pair.service_host} were not acknowledged within "
                                 f"{WARM_UP_SECONDS} s: nothing was failed", refused=True)
            self.say(f"heartbeats acknowledged; failing {leader} ({method})")
            failed = self.member(leader, "fail", method=method, ports=list(self.pair.ports))
            if not failed.get("ok"):
                raise DrillError(f"{leader}: could not fail it: {failed.get('error')}")
            failed_at = result.failed_at = float(failed["at"])
            try:
                self.failover(result, leader, standby, failed_at)
            finally:
                self.say(f"restoring {leader} ({'start patroni' if method == 'stop' else 'remove the nftables table'})")
                undone = self.member(leader, "restore", method=method)
                if not undone.get("ok"):
                    result.problems.append(f"{leader}: could not undo the failure: {undone.get('error')}")
        finally:
            # The heartbeats stop in any case (they would otherwise run on to max_seconds).
            self.service("stop", timeout=30, drill_id=drill_id, state=self.service_state)
            heartbeat.join(timeout=30)
        self.measure(result, heartbeat.value, failed_at)
        if result.new_primary:
            self.say(f"waiting for {leader} to stream from {result.new_primary} again (at most {RESTORE_SECONDS} s)")
            result.redundancy_restored = self.restored(result.new_primary, leader)
            now = leader_of(self.cluster(self.pair.members).get("members") or [])
            if now == leader:
                # Seen on the lab after an isolation: the old leader took the lock back once it was reachable, a
                # second failover that rewinds what the new leader acknowledged in between.
                result.problems.append(f"{leader} took the lead back from {result.new_primary} after it was restored: "
                                       "a second, unplanned failover; writes acknowledged by "
                                       f"{result.new_primary} in between may be lost (counted below)")
            elif not result.redundancy_restored:
                result.problems.append(f"{leader} does not stream from {result.new_primary} within "
                                       f"{RESTORE_SECONDS} s: the pair has NO standby now; the pair is left as it is")
            if now in self.pair.members and result.measurement is not None:
                # The RPO counts what the pair holds once the drill is over, on whichever member leads then.
                self.count_lost(result, now, failed_at)
        result.finished = datetime.now(UTC)
        self.record(result)
        return result

    def failover(self, result: DrillResult, leader: str, standby: str, failed_at: float) -> None:
        """Wait (up to the declared RTO) for `standby` to lead and heartbeats to be acknowledged again."""
        def taken_over() -> bool:
            view = self.cluster([standby])
            if not (view.get("ok") and leader_of(view.get("members") or []) == standby):
                return False
            acknowledged: int = self.heartbeat_progress(result.drill_id, failed_at)["acknowledged_after"]
            return acknowledged >= RECOVERED_ACKS

        if self.wait(self.pair.rto_seconds, taken_over):
            result.new_primary = standby
            self.say(f"{standby} leads and heartbeats are acknowledged again")
        else:
            result.problems.append(f"{standby} did not take over within the declared RTO of {self.pair.rto_seconds} s")

    def measure(self, result: DrillResult, heartbeat: Any, failed_at: float) -> None:
        if heartbeat is None or heartbeat.evidence is None:
            reason = "no answer" if heartbeat is None else f"{heartbeat.status}: {heartbeat.reason}"
            result.problems.append(f"heartbeat log from {self.pair.service_host}: {reason}")
            return
        result.attempts = list(heartbeat.evidence.get("attempts") or [])
        self.count_lost(result, result.new_primary or result.failed_host, failed_at)
        if result.measurement is not None and result.new_primary and result.measurement.outage_to is not None:
            self.say("asking the monitoring server how the HIS probes look after the failover")
            result.probe = self.probe(result.measurement.outage_to)

    def count_lost(self, result: DrillResult, leader: str, failed_at: float) -> None:
        """The figures from the heartbeats and the rows `leader` holds of them."""
        rows = self.member(leader, "rows", timeout=60, drill_id=result.drill_id)
        if not rows.get("ok"):
            result.problems.append(f"heartbeat rows on {leader}: {rows.get('error')}")
            return
        result.measurement = measure(parse_attempts(result.attempts), {int(seq) for seq in rows["seqs"]}, failed_at)

    def record(self, result: DrillResult) -> None:
        record = drill_record(result)
        for name in self.pair.members:
            try:
                written = self.member(name, "write_record", timeout=30,
                                      state=str(self.targets[name].inventory["paths"]["state"]), record=record)
            except DrillError as exc:
                written = {"ok": False, "error": str(exc)}
            if not written.get("ok"):
                result.problems.append(f"{name}: the drill record was not written: {written.get('error')}")
