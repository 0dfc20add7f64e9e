"""The collector's backup section: sets and runner state as the backup role leaves them, judged by the catalog."""

from __future__ import annotations

import datetime as dt
import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

from medinfra.collector import collector_module
from medinfra.compliance.catalog import load_catalog
from medinfra.compliance.evaluate import evaluate
from medinfra.compliance.model import HostEvidence, Status

collector = collector_module()

NOW = time.time()
BACKUP_CONTROLS = ("backup_set_configured", "backup_within_rpo", "backup_repository_encrypted",
                   "backup_target_off_host", "backup_restore_drill_recent", "backup_integrity_checked")
RUNNING_TIMERS = {f"medinfra-backup-{job}@data.timer": {"enabled": "enabled", "active": "active", "sub": "waiting"}
                  for job in ("run", "check", "drill")}


@pytest.fixture
def client(tmp_path: Path) -> dict[str, Path]:
    """A client as the backup role writes it, after a backup, a check and a drill that passed minutes ago."""
    config, state = tmp_path / "etc", tmp_path / "state"
    (config / "sets").mkdir(parents=True)
    state.mkdir()
    (config / "sets" / "data.json").write_text(json.dumps({
        "name": "data", "host": "his-db", "server": "backup-01", "server_address": "10.231.10.12", "rpo_minutes": 15,
        "repository": "sftp:medinfra-backup-server:/repo/data", "ssh_config": "/etc/medinfra/backup/ssh_config",
        "paths": [], "databases": ["hisdb"],
    }))
    password = config / "repository-password"
    password.write_text("not-a-real-password-0123456789")
    os.chmod(password, 0o600)
    (state / "data.json").write_text(json.dumps({
        "medinfra_backup_last_run_timestamp_seconds": NOW - 300,
        "medinfra_backup_last_run_success": 1,
        "medinfra_backup_last_success_timestamp_seconds": NOW - 300,
        "medinfra_backup_check_success": 1,
        "medinfra_backup_check_timestamp_seconds": NOW - 240,
        "medinfra_backup_restore_drill_success": 1,
        "medinfra_backup_restore_drill_timestamp_seconds": NOW - 180,
    }))
    return {"config": config, "state": state}


def collect(client: dict[str, Path], units: dict[str, Any] | None = None) -> dict[str, Any]:
    services = {"units": RUNNING_TIMERS if units is None else units}
    network = collector.collect_network()  # this machine's own addresses: 127.0.0.1 is local, as on a host
    section: dict[str, Any] = collector.collect_backup(
        services, network, str(client["config"]), str(client["state"]), now=NOW
    )
    return section


def update_state(client: dict[str, Path], **changes: float) -> None:
    path = client["state"] / "data.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))


def judge(backup: dict[str, Any], services: list[str] | None = None) -> dict[str, Status]:
    evidence = {"schema": "medinfra-evidence/1", "facts": {"backup": backup}}
    inventory = {"services": services or ["his_db"], "legacy": False, "data_classification": "phi"}
    host = HostEvidence("his-db", evidence, inventory)
    findings = evaluate([host], load_catalog(), [], dt.datetime.now(dt.UTC))
    return {f.control: f.status for f in findings if f.control in BACKUP_CONTROLS}


def test_a_client_after_a_good_backup_check_and_drill(client: dict[str, Path]) -> None:
    section = collect(client)
    (backup_set,) = section["sets"]
    assert backup_set["last_success_age_minutes"] == 5.0
    assert backup_set["within_rpo"] is True
    assert backup_set["off_host"] is True
    assert backup_set["last_drill"] == collector.iso_utc(NOW - 180)
    assert section["password_file"]["mode"] == "0600"
    assert judge(section) == {control: Status.PASS for control in BACKUP_CONTROLS}


def test_the_backup_server_itself_is_not_judged(client: dict[str, Path]) -> None:
    assert set(judge(collect(client), services=["backup_server"]).values()) == {Status.NOT_APPLICABLE}


def test_older_than_the_rpo(client: dict[str, Path]) -> None:
    update_state(client, medinfra_backup_last_success_timestamp_seconds=NOW - 16 * 60)
    section = collect(client)
    assert section["sets"][0]["within_rpo"] is False
    assert judge(section)["backup_within_rpo"] is Status.FAIL


def test_a_failed_run_fails_even_with_a_recent_success(client: dict[str, Path]) -> None:
    update_state(client, medinfra_backup_last_run_success=0)
    section = collect(client)
    assert section["sets"][0]["last_run_success"] is False
    assert judge(section)["backup_within_rpo"] is Status.FAIL


def test_never_ran(client: dict[str, Path]) -> None:
    (client["state"] / "data.json").unlink()
    section = collect(client)
    backup_set = section["sets"][0]
    assert (backup_set["last_success"], backup_set["within_rpo"], backup_set["drill_success"]) == (None, False, None)
    statuses = judge(section)
    assert statuses["backup_within_rpo"] is Status.FAIL
    assert statuses["backup_restore_drill_recent"] is Status.FAIL
    assert statuses["backup_integrity_checked"] is Status.FAIL


def test_failed_check_and_drill(client: dict[str, Path]) -> None:
    update_state(client, medinfra_backup_check_success=0, medinfra_backup_restore_drill_success=0)
    statuses = judge(collect(client))
    assert statuses["backup_integrity_checked"] is Status.FAIL
    assert statuses["backup_restore_drill_recent"] is Status.FAIL
    assert statuses["backup_within_rpo"] is Status.PASS


def test_a_repository_on_this_host_is_not_off_host(client: dict[str, Path]) -> None:
    document = json.loads((client["config"] / "sets" / "data.json").read_text())
    document["server_address"] = "127.0.0.1"
    (client["config"] / "sets" / "data.json").write_text(json.dumps(document))
    section = collect(client)
    assert section["sets"][0]["off_host"] is False
    assert judge(section)["backup_target_off_host"] is Status.FAIL


def test_stopped_timer_and_readable_password(client: dict[str, Path]) -> None:
    os.chmod(client["config"] / "repository-password", 0o644)
    section = collect(client, units={})
    assert section["sets"][0]["timers"]["run"] == {"enabled": "absent", "active": "absent"}
    statuses = judge(section)
    assert statuses["backup_set_configured"] is Status.FAIL
    assert statuses["backup_repository_encrypted"] is Status.FAIL


def test_no_sets_and_a_broken_set_file(client: dict[str, Path]) -> None:
    (client["config"] / "sets" / "data.json").unlink()
    assert collect(client)["sets"] == []
    assert judge(collect(client))["backup_set_configured"] is Status.FAIL
    (client["config"] / "sets" / "broken.json").write_text("{not json")
    (broken,) = collect(client)["sets"]
    assert broken["name"] == "broken" and "not JSON" in broken["unavailable"]


def test_the_password_never_leaves_the_host(client: dict[str, Path]) -> None:
    assert "not-a-real-password" not in json.dumps(collect(client))


def test_the_rto_a_restore_achieved_beside_the_declared(client: dict[str, Path]) -> None:
    """The runner's last passing drill duration (medinfra_backup_restore_drill_duration_seconds) against the set's
    rto_minutes (the host's SLA class, written by the role); unknown until both are there."""
    (backup_set,) = collect(client)["sets"]
    assert (backup_set["rto_minutes"], backup_set["drill_restore_seconds"], backup_set["drill_within_rto"]) == (
        None, None, None)
    document = client["config"] / "sets" / "data.json"
    document.write_text(json.dumps({**json.loads(document.read_text()), "rto_minutes": 60}))
    update_state(client, medinfra_backup_restore_drill_duration_seconds=42.5)
    (backup_set,) = collect(client)["sets"]
    assert (backup_set["rto_minutes"], backup_set["drill_restore_seconds"], backup_set["drill_within_rto"]) == (
        60, 42.5, True)
    update_state(client, medinfra_backup_restore_drill_duration_seconds=3600.5)
    assert collect(client)["sets"][0]["drill_within_rto"] is False
