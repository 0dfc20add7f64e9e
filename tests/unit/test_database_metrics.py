"""medinfra-database-metrics (role database_ha): psql's answers recorded on a lab pair under Patroni, parsed and
rendered into the textfile; the lag of a standby that stops streaming grows from when it last was caught up."""

from __future__ import annotations

from pathlib import Path

import pytest

from plugins.module_utils import database_metrics as metrics

FIXTURES = Path(__file__).parent / "fixtures" / "database_metrics"


def recorded(name: str) -> metrics.Snapshot:
    return metrics.parse((FIXTURES / name).read_text())


def samples(text: str) -> dict[str, str]:
    return dict(line.rsplit(" ", 1) for line in text.splitlines() if not line.startswith("#"))


def test_a_primary_with_its_standby_streaming_and_caught_up() -> None:
    snapshot = recorded("primary_streaming.txt")
    assert snapshot.primary
    assert [(r.name, r.state, r.lag) for r in snapshot.replicas] == [("his-db-2", "streaming", 0.0)]
    lag, caught_up_at = metrics.replication_lag(snapshot, "his-db-2", now=1000.0, caught_up_at=900.0)
    assert (lag, caught_up_at) == (0.0, 1000.0)
    text = metrics.render("his-db", 900, 1000.0, snapshot, lag, "his-db-2")
    assert samples(text) == {
        'medinfra_database_up{cluster="his-db"}': "1",
        'medinfra_database_primary{cluster="his-db"}': "1",
        'medinfra_database_standbys_streaming{cluster="his-db"}': "1",
        'medinfra_database_replication_lag_seconds{cluster="his-db",standby="his-db-2"}': "0.000",
        'medinfra_database_rpo_seconds{cluster="his-db"}': "900",
        'medinfra_database_metrics_timestamp_seconds{cluster="his-db"}': "1000.000",
    }


def test_a_standby_receiving() -> None:
    snapshot = recorded("standby_receiving.txt")
    assert not snapshot.primary and snapshot.receiver_status == "streaming"
    text = samples(metrics.render("his-db", 900, 5.0, snapshot, None, "his-db"))
    assert text['medinfra_database_receiving{cluster="his-db"}'] == "1"
    assert text['medinfra_database_primary{cluster="his-db"}'] == "0"
    assert not any("lag" in name or "streaming" in name for name in text)


def test_the_lag_grows_while_the_standby_is_gone() -> None:
    snapshot = recorded("primary_alone.txt")
    assert snapshot.primary and snapshot.replicas == ()
    lag, caught_up_at = metrics.replication_lag(snapshot, "his-db-2", now=1300.0, caught_up_at=1000.0)
    assert (lag, caught_up_at) == (300.0, 1000.0)
    text = samples(metrics.render("his-db", 900, 1300.0, snapshot, lag, "his-db-2"))
    assert text['medinfra_database_standbys_streaming{cluster="his-db"}'] == "0"
    assert text['medinfra_database_replication_lag_seconds{cluster="his-db",standby="his-db-2"}'] == "300.000"


def test_a_standby_streaming_behind_reports_postgresql_replay_lag() -> None:
    snapshot = metrics.parse("node|0||\nreplica|his-db-2|streaming|2.5\n")
    assert metrics.replication_lag(snapshot, "his-db-2", now=50.0, caught_up_at=10.0) == (2.5, 10.0)
    behind_without_sample = metrics.parse("node|0||\nreplica|his-db-2|streaming|\n")
    assert metrics.replication_lag(behind_without_sample, "his-db-2", now=50.0, caught_up_at=10.0) == (40.0, 10.0)


def test_postgresql_down_leaves_only_up_primary_rpo_and_timestamp() -> None:
    text = samples(metrics.render("his-db", 900, 7.0, None, None, "his-db-2"))
    assert set(text) == {
        'medinfra_database_up{cluster="his-db"}', 'medinfra_database_primary{cluster="his-db"}',
        'medinfra_database_rpo_seconds{cluster="his-db"}', 'medinfra_database_metrics_timestamp_seconds{cluster="his-db"}',
    }
    assert text['medinfra_database_up{cluster="his-db"}'] == "0"


def test_an_answer_without_the_recovery_state_is_an_error() -> None:
    with pytest.raises(metrics.ParseError):
        metrics.parse("psql: warning\n")


def test_the_state_file_remembers_when_the_standby_was_caught_up(tmp_path: Path) -> None:
    state = tmp_path / "lag.json"
    assert metrics.read_state(state, "his-db-2", now=42.0) == 42.0
    metrics.write_atomically(state, '{"his-db-2": 12.5}\n', 0o640)
    assert metrics.read_state(state, "his-db-2", now=42.0) == 12.5
    state.write_text("not json")
    assert metrics.read_state(state, "his-db-2", now=42.0) == 42.0
