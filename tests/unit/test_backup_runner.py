"""The backup runner's pure parts: the rotating check subset, metrics from state, state kept across failures."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from medinfra.hostside import backup as runner


def backup_set(tmp_path: Path, **fields: object) -> object:
    values = {"name": "data", "host": "his-db", "repository": "sftp:medinfra-backup-server:/repo/data",
              "ssh_config": "/etc/medinfra/backup/ssh_config", "paths": ("/srv/his",),
              "textfile_directory": str(tmp_path / "textfile"), "state_directory": str(tmp_path / "state"), **fields}
    return runner.BackupSet(**values)


def test_check_reads_every_thirtieth_over_a_month() -> None:
    subsets = {runner.check_subset(day) for day in range(1, 32)}
    assert subsets == {f"{n}/30" for n in range(1, 31)}
    assert runner.check_subset(31) == "30/30"


def test_metrics_carry_the_set_and_full_values() -> None:
    text = runner.render_metrics("data", {"medinfra_backup_last_run_success": 1,
                                          "medinfra_backup_last_success_timestamp_seconds": 1_800_000_123})
    assert 'medinfra_backup_last_run_success{set="data"} 1\n' in text
    assert 'medinfra_backup_last_success_timestamp_seconds{set="data"} 1800000123\n' in text
    assert "# TYPE medinfra_backup_last_run_success gauge" in text
    assert "medinfra_backup_check_success" not in text  # no check has run: no metric, not a made-up value


def test_label_values_are_escaped() -> None:
    assert 'set="a\\"b\\\\c"' in runner.render_metrics('a"b\\c', {"medinfra_backup_snapshots": 3})


def test_a_failed_run_keeps_the_last_success_time(tmp_path: Path) -> None:
    data = backup_set(tmp_path)
    runner.record(data, {"medinfra_backup_last_run_success": 1,
                         "medinfra_backup_last_success_timestamp_seconds": 1000})
    runner.record(data, {"medinfra_backup_last_run_success": 0})
    text = (tmp_path / "textfile" / "medinfra_backup_data.prom").read_text()
    assert 'medinfra_backup_last_run_success{set="data"} 0' in text
    assert 'medinfra_backup_last_success_timestamp_seconds{set="data"} 1000' in text
    assert oct((tmp_path / "state" / "data.json").stat().st_mode & 0o777) == "0o600"
    assert list((tmp_path / "textfile").iterdir()) == [tmp_path / "textfile" / "medinfra_backup_data.prom"]


def test_dump_directory_is_backed_up_only_with_databases(tmp_path: Path) -> None:
    assert backup_set(tmp_path, dump_directory="/var/backups/x").sources == ["/srv/his"]
    with_db = backup_set(tmp_path, databases=("hisdb",), dump_directory="/var/backups/x")
    assert with_db.sources == ["/srv/his", "/var/backups/x"]


def test_unknown_set_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert runner.main(["--config-directory", str(tmp_path), "run", "nosuch"]) == 2
    assert "no backup set 'nosuch'" in capsys.readouterr().err


def test_the_sets_directory_is_the_one_the_role_configured(tmp_path: Path) -> None:
    """The role writes its medinfra_paths.backup_config beside the program; without that file there is no default."""
    program = tmp_path / "medinfra-backup"
    assert runner.configured_sets_directory(program) is None
    (tmp_path / "medinfra-backup.json").write_text('{"config_directory": "/srv/conf/backup"}')
    assert runner.configured_sets_directory(program) == Path("/srv/conf/backup/sets")


def test_without_a_sets_directory_the_runner_says_what_is_needed(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        runner.main(["run", "data"])
    assert exited.value.code == 2 and "--config-directory is needed" in capsys.readouterr().err


def test_without_password_file_nothing_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RESTIC_PASSWORD_FILE", raising=False)
    data = backup_set(tmp_path)
    assert runner.run_check(data, "1/30") == 1
    assert 'medinfra_backup_check_success{set="data"} 0' in data.textfile().read_text()


def test_jobs_of_a_set_take_turns(tmp_path: Path) -> None:
    data, other = backup_set(tmp_path), backup_set(tmp_path, name="other")
    entered = threading.Event()

    def second_job() -> None:
        with runner.set_lock(data):
            entered.set()

    with runner.set_lock(data):
        waiting = threading.Thread(target=second_job)
        waiting.start()
        assert not entered.wait(0.5), "a second job of the set ran while the first held the set"
        with runner.set_lock(other):  # another set is not held up
            pass
    assert entered.wait(5)
    waiting.join()


def test_a_passing_drill_records_the_rto_it_achieved_beside_the_declared(tmp_path: Path) -> None:
    data = backup_set(tmp_path, rto_minutes=60)
    runner.record(data, runner.drill_outcome(data, True, 1000.0, 1042.5))
    text = data.textfile().read_text()
    assert 'medinfra_backup_restore_drill_duration_seconds{set="data"} 42.5\n' in text
    assert 'medinfra_backup_rto_seconds{set="data"} 3600\n' in text
    assert "the RTO a restore from backup achieved" in text
    # A drill that fails measures no restore: the last achieved one stays, the outcome says 0.
    runner.record(data, runner.drill_outcome(data, False, 2000.0, 2001.0))
    text = data.textfile().read_text()
    assert 'medinfra_backup_restore_drill_success{set="data"} 0\n' in text
    assert 'medinfra_backup_restore_drill_duration_seconds{set="data"} 42.5\n' in text


def test_a_hot_standby_restores_its_dumps_into_a_throw_away_cluster(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A standby is read-only (createdb: cannot execute CREATE DATABASE in a read-only transaction): its drill loads
    the dumps into a cluster of its own, on that cluster's socket; a primary restores into the local server."""
    restored: list[tuple[str, str | None]] = []
    clusters: list[Path] = []

    @contextlib.contextmanager
    def cluster(directory: Path) -> Iterator[str]:
        clusters.append(directory)
        yield str(directory)

    monkeypatch.setattr(runner, "drill_database", lambda _set, name, dump, socket=None: restored.append((name, socket)))
    monkeypatch.setattr(runner, "scratch_cluster", cluster)
    data = backup_set(tmp_path, databases=("his", "lis"), scratch_directory=str(tmp_path / "scratch"))
    monkeypatch.setattr(runner, "in_recovery", lambda: True)
    runner.drill_databases(data, tmp_path / "dumps")
    assert clusters == [tmp_path / "scratch" / ".data-cluster"]
    assert restored == [("his", str(clusters[0])), ("lis", str(clusters[0]))]
    assert "hot standby (read-only)" in capsys.readouterr().err
    restored.clear()
    monkeypatch.setattr(runner, "in_recovery", lambda: False)
    runner.drill_databases(data, tmp_path / "dumps")
    assert restored == [("his", None), ("lis", None)] and len(clusters) == 1
