"""The collector's database section: replication parsed from what psql printed on a real PostgreSQL 15 pair, the
failover drill record validated, and both judged through the derived view the controls read."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from medinfra.collector import collector_module
from medinfra.compliance.database import database_view

collector = collector_module()

# psql -X -A -t -c REPLICATION_QUERY as postgres on the local socket, recorded on two containers of the lab image:
# a primary (10.242.1.11) and a standby made by pg_basebackup -R with sslmode=require (10.242.1.12); under load, with
# the standby stopped, and on the standby with the primary stopped.
RECORDED = Path(__file__).parent / "fixtures" / "database"
PAIR = {
    "name": "his-db", "primary": "his-db", "standby": "his-db-2", "service_host": "his-app", "service_port": 5432,
    "addresses": {"his-db": "10.242.1.11", "his-db-2": "10.242.1.12", "his-app": "10.242.1.10"},
    "ports": {"postgresql": 5432, "patroni": 8008, "etcd_client": 2379, "etcd_peer": 2380},
    "rpo_seconds": 900, "rto_seconds": 3600,
}
DRILL = {
    "format": "medinfra-failover-drill/1", "drill_id": "d1", "cluster": "his-db", "started": "2026-12-01T03:00:00Z",
    "finished": "2026-12-01T03:06:40Z", "failed_host": "his-db", "new_primary": "his-db-2", "method": "stop",
    "rto_seconds": 31.4, "rpo_seconds": 0.0, "heartbeats_acknowledged": 412, "heartbeats_lost": 0,
    "declared_rto_seconds": 3600, "declared_rpo_seconds": 900, "redundancy_restored": True, "passed": True,
}
DRILL_PATH = "/var/lib/medinfra/failover-drill.json"


def recorded(name: str) -> Any:
    return collector.parse_replication((RECORDED / f"{name}.json").read_text(encoding="utf-8"))


def judged(name: str, host: str, **pair: Any) -> dict[str, Any]:
    view = database_view({"replication": recorded(name)}, {"database_pair": {**PAIR, **pair}}, host)
    replication: dict[str, Any] = view["replication"]
    return replication


def test_a_caught_up_primary_has_no_lag() -> None:
    parsed = recorded("primary-streaming")
    assert parsed == {
        "running": True,
        "role": "primary",
        "current_wal_lsn": "0/3000060",
        "senders": [{"application_name": "his-db-2", "client_addr": "10.242.1.12", "state": "streaming",
                     "sync_state": "async", "caught_up": True, "replay_lag_seconds": 0.0, "ssl": True}],
        "wal_receiver": None,
    }
    assert judged("primary-streaming", "his-db") == {
        "role": "primary", "streaming": True, "ssl": True, "lag_seconds": 0.0, "problems": []
    }


def test_a_primary_under_load_reports_the_measured_lag() -> None:
    sender = recorded("primary-lagging")["senders"][0]
    assert (sender["caught_up"], sender["replay_lag_seconds"]) == (False, 1.472)
    assert judged("primary-lagging", "his-db")["problems"] == []
    assert judged("primary-lagging", "his-db", rpo_seconds=1)["problems"] == [
        "his-db-2's replay lag of 1.472 s exceeds the pair's RPO of 1 s"
    ]


def test_a_caught_up_standby_has_no_lag_whatever_the_last_measure() -> None:
    """Recorded by a second run of record.sh: the standby had replayed the load when asked, yet pg_stat_replication
    still showed the last lag it measured (0.54 s); replay_lsn equal to the current position is what counts."""
    sender = recorded("primary-caught-up-after-load")["senders"][0]
    assert (sender["caught_up"], sender["replay_lag_seconds"]) == (True, 0.0)


def test_a_primary_whose_standby_stopped_is_not_replicating() -> None:
    assert recorded("primary-standby-gone")["senders"] == []
    assert judged("primary-standby-gone", "his-db") == {
        "role": "primary", "streaming": False, "ssl": None, "lag_seconds": None,
        "problems": ["his-db-2 (10.242.1.12) is not replicating from this primary: pg_stat_replication lists none"],
    }


def test_a_standby_streams_from_the_other_member_with_ssl_required() -> None:
    assert recorded("standby-streaming")["wal_receiver"] == {
        "status": "streaming", "sender_host": "10.242.1.11", "sender_port": 5432, "sslmode": "require", "ssl": True
    }
    assert judged("standby-streaming", "his-db-2") == {"role": "standby", "streaming": True, "ssl": True,
                                                       "problems": []}
    # Judged as if this standby belonged to a pair whose other member is elsewhere: the sender is not its partner.
    other = judged("standby-streaming", "his-db-2", addresses={"his-db": "10.242.1.50"})
    assert other["problems"] == ["it receives WAL from 10.242.1.11, not from his-db (10.242.1.50)"]


def test_a_standby_whose_primary_stopped_receives_nothing() -> None:
    assert recorded("standby-primary-gone")["wal_receiver"] is None
    problems = judged("standby-primary-gone", "his-db-2")["problems"]
    assert problems == ["no WAL receiver runs: this standby receives no WAL"]


def test_after_a_failover_the_live_role_is_judged() -> None:
    """The declared standby leads: it is judged as a primary, its partner the declared primary."""
    streaming = recorded("primary-streaming")
    streaming["senders"][0].update(application_name="his-db", client_addr="10.242.1.11")
    view = database_view({"replication": streaming}, {"database_pair": PAIR}, "his-db-2")
    assert view["partner"] == "his-db" and view["replication"]["problems"] == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "psql printed no JSON document: ''"),
        ("[]", "psql's document has no in_recovery"),
        ('{"in_recovery": "t"}', "psql's document has no in_recovery"),
    ],
)
def test_output_that_is_not_the_query_s_document_is_unavailable(text: str, expected: str) -> None:
    assert collector.parse_replication(text) == {"unavailable": expected}


def test_psql_failing_names_its_first_line_not_the_query() -> None:
    stderr = (RECORDED / "server-down.stderr").read_text(encoding="utf-8")
    assert collector.psql_failure(2, stderr) == {
        "unavailable": 'psql as postgres on /var/run/postgresql: psql: error: connection to server on socket '
        '"/var/run/postgresql/.s.PGSQL.5432" failed: No such file or directory'
    }


def test_hosts_outside_a_pair_and_service_hosts_are_no_members() -> None:
    assert database_view({}, {"database_pair": None}, "ws-01") == {"member": False}
    assert database_view({}, {"database_pair": PAIR}, "his-app") == {"member": False}
    unavailable = {"unavailable": "collector error: OSError: x"}
    assert database_view(unavailable, {"database_pair": PAIR}, "his-db")["replication"] == unavailable


def test_a_passed_drill_is_kept_whole() -> None:
    record = collector.drill_record(json.dumps(DRILL), DRILL_PATH)
    assert record == {"path": DRILL_PATH, "present": True, "well_formed": True, **DRILL, "problems": []}


@pytest.mark.parametrize(
    ("change", "problems"),
    [
        ({"rto_seconds": 4100.0, "passed": False},
         ["recovery took 4100.0 s, over the RTO of 3600 s", "the drill did not pass"]),
        ({"rpo_seconds": 1200.5}, ["1200.5 s of writes were lost, over the RPO of 900 s"]),
        ({"redundancy_restored": False}, ["redundancy was not restored after the failover"]),
    ],
)
def test_a_failed_drill_says_why(change: dict[str, Any], problems: list[str]) -> None:
    record = collector.drill_record(json.dumps({**DRILL, **change}), DRILL_PATH)
    assert record["well_formed"] is True
    assert record["problems"] == problems


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (None, f"no failover drill record at {DRILL_PATH}"),
        ('{"format": "medinfra-failover-drill/1", "dri', f"{DRILL_PATH} is not JSON: Unterminated string starting "
         "at: line 1 column 41 (char 40)"),
        ("[1]", f"{DRILL_PATH} holds a list, not an object"),
        (json.dumps({**DRILL, "passed": "yes"}), f"{DRILL_PATH}: passed is str, not bool"),
        (json.dumps({**DRILL, "heartbeats_lost": True}), f"{DRILL_PATH}: heartbeats_lost is bool, not int"),
        (json.dumps({k: v for k, v in DRILL.items() if k != "cluster"}), f"{DRILL_PATH}: cluster is NoneType, not str"),
        (json.dumps({**DRILL, "format": "medinfra-failover-drill/2"}),
         f"{DRILL_PATH}: format is 'medinfra-failover-drill/2', not 'medinfra-failover-drill/1'"),
        (json.dumps({**DRILL, "method": "pull-the-plug"}),
         f"{DRILL_PATH}: method is 'pull-the-plug', not one of ['stop', 'isolate']"),
        (json.dumps({**DRILL, "finished": "yesterday"}),
         f"{DRILL_PATH}: started and finished are not ISO 8601 times with a zone"),
        (json.dumps({**DRILL, "finished": "2026-11-30T00:00:00Z"}),
         f"{DRILL_PATH}: finished 2026-11-30T00:00:00Z before it started 2026-12-01T03:00:00Z"),
    ],
)
def test_a_malformed_record_is_evidence_not_a_crash(text: str | None, problem: str) -> None:
    record = collector.drill_record(text, DRILL_PATH)
    assert record["well_formed"] is False
    assert problem in record["problems"]
    assert "finished" not in record  # a malformed record's fields are not taken for a drill's


def test_the_section_reads_the_drill_record_from_the_state_directory(tmp_path: Path) -> None:
    (tmp_path / "failover-drill.json").write_text(json.dumps(DRILL), encoding="utf-8")
    section = collector.collect_database(str(tmp_path))
    assert section["failover_drill"]["passed"] is True
    assert section["failover_drill"]["path"] == f"{tmp_path}/failover-drill.json"
    assert "running" in section["replication"] or "unavailable" in section["replication"]
