"""medinfra drill failover: the figures from heartbeat logs, the preflight's judgement, the host programs' parts."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from medinfra.drill.evidence import DRILL_FORMAT, check_document
from medinfra.drill.failover import (
    DrillResult,
    Pair,
    drill_record,
    evidence_result,
    host_call,
    judge_preflight,
    parse_pair,
    probe_verdict,
    replication_problem,
)
from medinfra.drill.measure import Attempt, measure, parse_attempts
from medinfra.problems import UserInputError
from plugins.module_utils import failover_heartbeat, failover_member

DATA = Path(__file__).parent / "fixtures" / "failover"
PAIR = Pair("his-db", ("his-db", "his-db-2"), "his-app", 5432, (5432, 8008, 2379, 2380), 3600, 900)
INVENTORY_PAIR = {
    "name": "his-db", "primary": "his-db", "standby": "his-db-2", "service_host": "his-app", "service_port": 5432,
    "addresses": {"his-db": "10.231.20.11", "his-db-2": "10.231.21.11", "his-app": "10.231.20.10"},
    "ports": {"postgresql": 5432, "patroni": 8008, "etcd_client": 2379, "etcd_peer": 2380},
    "rpo_seconds": 900, "rto_seconds": 3600,
}


def log(*spans: tuple[int, int, bool], start: float = 1000.0, took: float = 0.03) -> list[Attempt]:
    """Attempts every 100 ms: each span is (first seq, last seq, acknowledged)."""
    return [Attempt(seq, start + seq / 10, start + seq / 10 + took, ok, None if ok else "connection refused")
            for first, last, ok in spans for seq in range(first, last + 1)]


def test_no_outage_no_loss() -> None:
    attempts = log((1, 50, True))
    m = measure(attempts, range(1, 51), failed_at=1002.0)
    assert (m.attempts, m.acknowledged, m.lost, m.rpo_seconds) == (50, 50, (), 0.0)
    assert m.rto_seconds == pytest.approx(0.1)


def test_outage_measured_from_last_to_first_acknowledgement() -> None:
    # Acknowledged to seq 20, refused 21-45 (2.5 s), acknowledged again from 46.
    attempts = log((1, 20, True), (21, 45, False), (46, 80, True))
    m = measure(attempts, [a.seq for a in attempts if a.ok], failed_at=1002.05)
    assert m.rto_seconds == pytest.approx(2.6)
    assert (m.outage_from, m.outage_to) == (pytest.approx(1002.03), pytest.approx(1004.63))
    assert (m.attempts, m.acknowledged, m.lost, m.rpo_seconds) == (80, 55, (), 0.0)


def test_a_slow_attempt_before_the_failure_is_not_the_outage() -> None:
    # A 2 s stall before the failure (acknowledged 1001.03, then 1003.03), none after it.
    attempts = log((1, 10, True)) + log((11, 40, True), start=1001.9)
    m = measure(attempts, range(1, 41), failed_at=1004.0)
    assert m.rto_seconds == pytest.approx(0.1)


def test_lost_acknowledged_writes_give_the_rpo_span() -> None:
    # 17-20 were acknowledged by the old leader but never reached the standby that took over.
    attempts = log((1, 20, True), (21, 30, False), (31, 40, True))
    m = measure(attempts, [*range(1, 17), *range(31, 41)], failed_at=1002.0)
    assert m.lost == (17, 18, 19, 20)
    assert m.rpo_seconds == pytest.approx(0.33)  # sent 1001.7 .. acknowledged 1002.03


def test_no_acknowledgement_after_the_failure_is_no_rto() -> None:
    m = measure(log((1, 20, True), (21, 60, False)), range(1, 21), failed_at=1002.05)
    assert m.rto_seconds is None and m.outage_to is None


def test_parse_attempts_names_the_bad_record() -> None:
    assert parse_attempts([{"seq": 2, "sent": 1, "done": 2, "ok": True}, {"seq": 1, "sent": 0, "done": 1,
                                                                          "ok": False, "error": "x"}])[0].seq == 1
    with pytest.raises(ValueError, match="heartbeat attempt 1"):
        parse_attempts([{"seq": 1, "sent": 0, "done": 1, "ok": True}, {"seq": "x"}])


def test_parse_pair_refuses_the_service_host_and_hosts_outside_pairs() -> None:
    assert parse_pair("his-db-2", INVENTORY_PAIR, "inv") == PAIR
    with pytest.raises(UserInputError, match="service host"):
        parse_pair("his-app", INVENTORY_PAIR, "inv")
    with pytest.raises(UserInputError, match="not in a database pair"):
        parse_pair("pacs-01", None, "inv")
    with pytest.raises(UserInputError, match="malformed"):
        parse_pair("his-db", {**INVENTORY_PAIR, "ports": {}}, "inv")


def patroni(leader: str, replica_state: str = "streaming") -> dict[str, Any]:
    other = "his-db-2" if leader == "his-db" else "his-db"
    return {"ok": True, "members": [
        {"Cluster": "his-db", "Member": leader, "Host": "10.231.20.11", "Role": "Leader", "State": "running", "TL": 3},
        {"Cluster": "his-db", "Member": other, "Host": "10.231.21.11", "Role": "Replica", "State": replica_state,
         "TL": 3, "Lag in MB": 0},
    ]}


def replication(name: str = "his-db-2", state: str = "streaming", lag: float | None = 0) -> dict[str, Any]:
    return {"ok": True, "in_recovery": False,
            "standbys": [{"name": name, "state": state, "client": "10.231.21.11", "lag_seconds": lag, "lag_bytes": 0}]}


PROXY_OK = {"ok": True, "error": None}


def test_preflight_passes_a_healthy_pair_and_says_when_host_is_the_standby() -> None:
    check = judge_preflight(PAIR, "his-db", patroni("his-db"), replication(), PROXY_OK)
    assert (check.leader, check.standby, check.problems, check.notes) == ("his-db", "his-db-2", (), ())
    check = judge_preflight(PAIR, "his-db", patroni("his-db-2"), replication("his-db"), PROXY_OK)
    assert (check.leader, check.standby, check.problems) == ("his-db-2", "his-db", ())
    assert check.notes == ("his-db is the standby now; the drill fails the current leader his-db-2",)


def test_preflight_refuses_a_replica_patroni_shows_at_lag_0_that_is_not_streaming() -> None:
    # platform.md: Patroni showed lag 0 for a replica still catching up; promoting it lost 99 acknowledged rows.
    check = judge_preflight(PAIR, "his-db", patroni("his-db"), replication(state="catchup", lag=None), PROXY_OK)
    assert check.problems == ("his-db-2 is in state 'catchup' on his-db, not streaming",)


def test_preflight_refuses_a_stopped_standby_lag_and_a_dead_proxy() -> None:
    stopped = {"ok": True, "members": patroni("his-db")["members"][:1]}
    nothing = {"ok": True, "in_recovery": False, "standbys": []}
    check = judge_preflight(PAIR, "his-db", stopped, nothing, {"ok": False, "error": "server closed the connection"})
    assert check.problems == (
        "the service address 127.0.0.1:5432 on his-app: server closed the connection",
        "Patroni does not list his-db-2",
        "his-db-2 is not replicating from his-db (no row in pg_stat_replication)",
    )
    assert replication_problem(replication(lag=901.5), "his-db", "his-db-2", 900) == (
        "his-db-2 lags 901.5 s behind his-db, not below the RPO of 900 s")
    assert judge_preflight(PAIR, "his-db", {"ok": False, "error": "etcd down"}, None, PROXY_OK).problems == (
        "patronictl list: etcd down",)
    no_leader = {"ok": True, "members": [{**m, "Role": "Replica"} for m in patroni("his-db")["members"]]}
    assert "no single leader" in judge_preflight(PAIR, "his-db", no_leader, None, PROXY_OK).problems[0]


def series(value: str, **labels: str) -> dict[str, Any]:
    return {"labels": labels, "value": value}


def test_probe_verdict_waits_for_a_scrape_after_the_failover() -> None:
    answers = {"probe": [series("1", service="his_app", module="https")],
               "probe_time": [series("1005.2", service="his_app")], "scrape": [series("1", job="node")]}
    assert probe_verdict(answers, 1006.0)[0] is False
    fresh, verdict = probe_verdict(answers, 1005.0)
    assert fresh and verdict["up"] and verdict["detail"] == "his_app (https) up, node scrape up"
    down = {**answers, "probe": [series("0", service="his_app", module="https")]}
    assert probe_verdict(down, 1005.0)[1]["detail"] == "his_app (https) DOWN, node scrape up"
    assert probe_verdict({"probe": [], "probe_time": [], "scrape": []}, 0) == (
        False, {"up": False, "detail": "no probe of the host", "series": {"probe": [], "probe_time": [], "scrape": []}})
    assert probe_verdict({"unavailable": "not readable"}, 0) == (True, {"up": False, "detail": "not readable"})


def test_the_record_has_the_contracts_fields() -> None:
    result = DrillResult("ab12", PAIR, "stop", datetime(2026, 12, 6, tzinfo=UTC), "his-db", "his-db-2",
                         finished=datetime(2026, 12, 6, 0, 1, tzinfo=UTC),
                         measurement=measure(log((1, 20, True)), range(1, 21), 0))
    result.redundancy_restored = True
    record = drill_record(result)
    assert {"format", "drill_id", "cluster", "started", "finished", "failed_host", "new_primary", "method",
            "rto_seconds", "rpo_seconds", "heartbeats_acknowledged", "heartbeats_lost", "declared_rto_seconds",
            "declared_rpo_seconds", "redundancy_restored", "passed"} <= set(record)
    assert (record["format"], record["passed"], record["heartbeats_lost"]) == ("medinfra-failover-drill/1", True, 0)
    result.failed_at = 1001.0
    evidence = evidence_result(result)
    check_document({"format": DRILL_FORMAT, "kind": "failover", "site": "lab", "started": record["started"],
                    "finished": record["finished"], "passed": result.passed, "result": evidence})
    assert evidence["outage"] == {"from": 1001.93, "to": 1002.03} and evidence["lost_seqs"] == []
    result.redundancy_restored = False
    assert drill_record(result)["passed"] is False


def run_program(source: str, function: str, **arguments: Any) -> Any:
    done = subprocess.run(["python3", "-I", "-S", "-c", host_call(source, function, **arguments)],
                          capture_output=True, text=True, check=True)
    return json.loads(done.stdout)


def test_heartbeat_progress_and_stop_on_a_log(tmp_path: Path) -> None:
    source = Path(failover_heartbeat.__file__).read_text(encoding="utf-8")
    lines = [json.dumps({"seq": n, "sent": 10.0 + n, "done": 10.1 + n, "ok": n != 2, "error": None}) for n in (1, 2, 3)]
    Path(failover_heartbeat.log_path(str(tmp_path), "ab12cd34")).write_text("\n".join(lines) + "\n{\"seq\"")
    answer = run_program(source, "progress", drill_id="ab12cd34", state=str(tmp_path), since=11.5)
    assert (answer["attempts"], answer["acknowledged_after"]) == (3, 1)
    run_program(source, "stop", drill_id="ab12cd34", state=str(tmp_path))
    assert Path(failover_heartbeat.stop_path(str(tmp_path), "ab12cd34")).exists()
    with pytest.raises(ValueError, match="not hexadecimal"):
        failover_heartbeat.insert_command(5432, "x'; DROP TABLE heartbeat; --", 1)


def test_write_record_is_0640_and_replaced_whole(tmp_path: Path) -> None:
    failover_member.write_record(str(tmp_path / "state"), {"passed": False})
    answer = failover_member.write_record(str(tmp_path / "state"), {"passed": True})
    path = Path(answer["path"])
    assert json.loads(path.read_text()) == {"passed": True}
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert os.listdir(tmp_path / "state") == ["failover-drill.json"]


@pytest.mark.skipif(shutil.which("nft") is None or shutil.which("unshare") is None, reason="needs nft and unshare")
def test_isolation_table_applies_twice_and_keeps_ssh(tmp_path: Path) -> None:
    rules = failover_member.isolation_rules([5432, 8008, 2379, 2380])
    script = f"nft -f - <<'EOF'\n{rules}EOF\nnft -f - <<'EOF'\n{rules}EOF\nnft list ruleset"
    done = subprocess.run(["unshare", "-n", "sh", "-c", script], capture_output=True, text=True, check=False)
    if done.returncode != 0 and "Operation not permitted" in done.stderr:
        pytest.skip("no network namespace here")
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("table inet medinfra_drill_isolation") == 1
    assert "tcp dport { 2379, 2380, 5432, 8008 } drop" in done.stdout and " 22" not in done.stdout


def test_preflight_on_patronictl_of_a_pair_with_no_leader() -> None:
    # Recorded from Patroni 3.0.2 (`patronictl list -f json`) on a lab pair whose members had failed to start.
    members = json.loads((DATA / "patronictl-start-failed.json").read_text(encoding="utf-8"))
    check = judge_preflight(PAIR, "his-db", {"ok": True, "members": members}, None, PROXY_OK)
    assert check.leader == "" and len(check.problems) == 1
    assert check.problems[0].startswith("Patroni shows no single leader among his-db, his-db-2")


def recorded(name: str) -> Any:
    return json.loads((DATA / name).read_text(encoding="utf-8"))


def test_preflight_on_recorded_answers_of_a_streaming_pair() -> None:
    members = {"ok": True, "members": recorded("patronictl-streaming.json")}
    check = judge_preflight(PAIR, "his-db", members, recorded("replication-streaming.json"), PROXY_OK)
    assert (check.leader, check.standby, check.problems) == ("his-db", "his-db-2", ())


def test_preflight_on_recorded_answers_with_the_standby_stopped() -> None:
    # Just after `systemctl stop patroni` on the standby Patroni still listed it running with lag 0; only
    # pg_stat_replication on the leader showed it gone. A moment later Patroni said stopped.
    nothing = recorded("replication-standby-stopped.json")
    stopping = judge_preflight(PAIR, "his-db-2", {"ok": True, "members": recorded("patronictl-standby-stopping.json")},
                               nothing, PROXY_OK)
    assert stopping.problems == ("his-db-2 is not replicating from his-db (no row in pg_stat_replication)",)
    stopped = judge_preflight(PAIR, "his-db-2", {"ok": True, "members": recorded("patronictl-standby-stopped.json")},
                              nothing, PROXY_OK)
    assert stopped.problems == ("Patroni shows his-db-2 'stopped'",
                                "his-db-2 is not replicating from his-db (no row in pg_stat_replication)")


def test_figures_of_a_drill_recorded_on_the_lab() -> None:
    drill = recorded("drill-stop-lab.json")
    attempts = parse_attempts(drill["attempts"])
    m = measure(attempts, drill["present_on_new_leader"], drill["failed_at"])
    assert (m.rto_seconds, m.rpo_seconds, m.attempts, m.acknowledged, len(m.lost)) == (
        drill["measured"]["rto_seconds"], drill["measured"]["rpo_seconds"], drill["measured"]["heartbeats_written"],
        drill["measured"]["heartbeats_acknowledged"], drill["measured"]["heartbeats_lost"])
    assert (m.outage_from, m.outage_to) == (drill["outage"]["from"], drill["outage"]["to"])
    # 2.1 s after the last acknowledgement the proxy refused, then attempts hung on the stopping member until the
    # standby took over: every attempt in the outage failed, none was acknowledged.
    inside = [a for a in attempts if m.outage_from < a.done < m.outage_to]
    assert inside and not any(a.ok for a in inside)
    # Had the new leader lacked the last three writes acknowledged before the outage, they would be the RPO.
    last = sorted((a for a in attempts if a.ok and a.done <= m.outage_from), key=lambda a: a.seq)[-3:]
    lossy = measure(attempts, set(drill["present_on_new_leader"]) - {a.seq for a in last}, drill["failed_at"])
    assert lossy.lost == tuple(a.seq for a in last)
    assert lossy.rpo_seconds == round(last[-1].done - last[0].sent, 3)


def test_reading_the_drill_module_leaves_the_standard_library_unpatched() -> None:
    """Only running a drill may patch the standard library for gevent: a patched process deadlocks threads that
    block in flock (test_backup_runner's, after this file is collected in the same pytest run)."""
    check = ("import gevent.monkey, medinfra.drill.failover; "
             "raise SystemExit(gevent.monkey.is_module_patched('threading'))")
    assert subprocess.run([sys.executable, "-c", check], check=False).returncode == 0
