"""`medinfra fix` refuses bad input before it runs anything, and plans nothing to run when no role can help."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from medinfra.audit.results import AuditRun, HostResult, findings_document
from medinfra.cli import main
from medinfra.compliance.catalog import load_catalog
from medinfra.compliance.model import Finding, Status
from medinfra.package_data import CATALOG_DIR
from medinfra.safe_output import OutputDirectory
from medinfra.signing import generate_keypair, sign_directory
from tests.conftest import LAB_TOPOLOGY

INVENTORY = str(LAB_TOPOLOGY.parent)
CATALOG = load_catalog(CATALOG_DIR)


def findings(directory: Path, failures: list[tuple[str, str]], site: str = "lab") -> Path:
    """A findings document of the lab with these (host, control) failures."""
    hosts = sorted({host for host, _ in failures})
    evidence = {"schema": "medinfra-evidence/1", "collector_version": "1", "collected_at": "2026-12-01T02:00:00Z"}
    results = [HostResult(host, "audited", "", evidence, 0.1) for host in hosts]
    found = [Finding(host, control, Status.FAIL, "bad", {}) for host, control in failures]
    views = {host: {"site": site, "zone": "his", "groups": []} for host in hosts}
    run = AuditRun("pyinfra", INVENTORY, datetime(2026, 12, 1, 2, 0, tzinfo=UTC), results, found, CATALOG, (), 1.0,
                   views=views)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "findings.json").write_text(json.dumps(findings_document(run)), encoding="utf-8")
    return directory


def fix(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["fix", "-i", INVENTORY, "--no-history", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_only_manual_and_legacy_failures_plan_no_run_and_run_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = findings(tmp_path / "run", [("his-db", "secure_boot_enabled"), ("lis-legacy", "sshd_root_login_disabled")])
    code, out, _ = fix(capsys, str(source), "--format", "json")
    assert code == 0
    record = json.loads(out)
    assert record["plan"]["runs"] == [] and record["commands"] == []
    assert [(i["control"], i["hosts"], i["reason"].split(":")[0]) for i in record["plan"]["left_alone"]] == [
        ("sshd_root_login_disabled", ["lis-legacy"], "legacy host"),
        ("secure_boot_enabled", ["his-db"], "no role repairs this by converging"),
    ]


def test_a_bad_window_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = findings(tmp_path / "run", [("his-db", "shadow_files_protected")])
    with pytest.raises(SystemExit) as exited:
        fix(capsys, str(source), "--apply", "--window", "25:00-01:00")
    assert exited.value.code == 2 and "expected HH:MM-HH:MM" in capsys.readouterr().err


def test_controls_the_run_did_not_judge_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = findings(tmp_path / "run", [("his-db", "shadow_files_protected")])
    code, _, err = fix(capsys, str(source), "--controls", "shadow_files_protected,no_such_control")
    assert code == 2 and "--controls names controls this run did not judge: no_such_control" in err


def test_findings_of_another_site_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = findings(tmp_path / "run", [("his-db", "shadow_files_protected")], site="other-hospital")
    code, _, err = fix(capsys, str(source))
    assert code == 2 and "holds findings of site 'other-hospital', the inventory is site 'lab'" in err


def test_a_signed_directory_needs_its_key_and_must_verify(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = findings(tmp_path / "run", [("his-db", "secure_boot_enabled")])
    private, public = generate_keypair(tmp_path / "keys" / "audit")
    with OutputDirectory.open(source) as out:
        sign_directory(out, private)
    code, _, err = fix(capsys, str(source))
    assert code == 2 and "is signed: give --pubkey" in err
    assert fix(capsys, str(source), "--pubkey", str(public))[0] == 0
    document = json.loads((source / "findings.json").read_text(encoding="utf-8"))
    document["findings"][0]["status"] = "pass"  # someone hides a failure from the fix
    (source / "findings.json").write_text(json.dumps(document), encoding="utf-8")
    code, out, err = fix(capsys, str(source), "--pubkey", str(public))
    assert code == 2 and "failed verification" in err and "findings.json" in err and out == ""


def test_a_source_that_is_nothing_known_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = fix(capsys, str(tmp_path / "nowhere"))
    assert code == 2 and "neither a report directory" in err
