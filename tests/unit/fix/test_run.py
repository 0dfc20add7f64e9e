"""Running a fix: the window, the commands, and the verdict of the re-audit against the audit that was fixed."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, time
from pathlib import Path

import pytest

from medinfra.compliance.model import Bilingual, Finding, Status
from medinfra.fix.plan import FixPlan, LeftAlone, PlaybookRun
from medinfra.fix.run import (
    Window,
    compare,
    outcome_text,
    parse_window,
    plan_text,
    planned_failures,
    playbook_steps,
    reaudit_hosts,
    source_kind,
    window_refusal,
)
from medinfra.problems import UserInputError
from medinfra.topology import load_topology
from tests.conftest import LAB_TOPOLOGY

PLAN = FixPlan(
    runs=(
        PlaybookRun(("ws-01", "ws-02"), ("ssh",), ("sshd_root_login_disabled",), one_at_a_time=False),
        PlaybookRun(("his-app", "his-db"), ("auth", "ssh"), ("pam_auth_not_bypassed",), one_at_a_time=True),
    ),
    left_alone=(LeftAlone("secure_boot_enabled", ("ws-01",), Bilingual("manual: act", "人工")),),
)


@pytest.mark.parametrize(("text", "expected"), [
    ("22:00-04:00", Window(time(22, 0), time(4, 0))),
    ("00:30-23:59", Window(time(0, 30), time(23, 59))),
])
def test_windows_parse(text: str, expected: Window) -> None:
    assert parse_window(text) == expected


@pytest.mark.parametrize("text", ["22:00", "24:00-01:00", "22:00-22:00", "9:00-10:00", "22:00-04:00x", ""])
def test_bad_windows_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="HH:MM-HH:MM"):
        parse_window(text)


@pytest.mark.parametrize(("utc", "allowed"), [
    ("2026-12-06T14:30:00", True),  # 22:30 in Shanghai
    ("2026-12-06T19:59:00", True),  # 03:59
    ("2026-12-06T20:00:00", False),  # 04:00: the window has closed
    ("2026-12-06T05:00:00", False),  # 13:00
    ("2026-12-06T13:59:00", False),  # 21:59
])
def test_a_window_past_midnight_is_read_in_the_site_time_zone(utc: str, allowed: bool) -> None:
    now = datetime.fromisoformat(utc).replace(tzinfo=UTC)
    refusal = window_refusal(parse_window("22:00-04:00"), now, "Asia/Shanghai")
    assert (refusal is None) is allowed
    if refusal is not None:
        assert "Asia/Shanghai" in refusal and "outside the maintenance window 22:00-04:00" in refusal


def test_no_window_allows_and_a_site_without_time_zone_uses_utc() -> None:
    now = datetime(2026, 12, 6, 3, 0, tzinfo=UTC)
    assert window_refusal(None, now, "Asia/Shanghai") is None
    assert window_refusal(parse_window("02:00-04:00"), now, None) is None
    assert "it is 03:00 in UTC" in str(window_refusal(parse_window("04:00-05:00"), now, None))


def test_applied_round_the_clock_runs_go_host_by_host_and_checks_run_whole() -> None:
    applied = playbook_steps(PLAN, area_playbooks, Path("inv"), check=False, vault_password_file=Path("v"))
    assert [(s.run, s.hosts) for s in applied] == [(0, ("ws-01", "ws-02")), (1, ("his-app",)), (1, ("his-db",))]
    assert applied[1].argv == ("ansible-playbook", "-i", "inv", "hardening.yml", "--limit", "his-app", "--tags",
                               "auth,ssh", "--vault-password-file", "v")
    checked = playbook_steps(PLAN, area_playbooks, Path("inv"), check=True)
    assert [(s.run, s.hosts) for s in checked] == [(0, ("ws-01", "ws-02")), (1, ("his-app", "his-db"))]
    assert all(s.argv[-2:] == ("--check", "--diff") for s in checked)


def area_playbooks(tags: Sequence[str]) -> list[Path]:
    return [Path("hardening.yml")]


def finding(host: str, control: str, status: Status) -> Finding:
    return Finding(host, control, status, "", {})


def test_the_re_audit_says_fixed_still_failing_newly_failing_and_not_judged() -> None:
    before = [finding("a", "c1", Status.FAIL), finding("a", "c2", Status.FAIL), finding("a", "c3", Status.PASS),
              finding("b", "c1", Status.FAIL), finding("b", "c4", Status.FAIL), finding("z", "c5", Status.PASS)]
    after = [finding("a", "c1", Status.PASS), finding("a", "c2", Status.FAIL), finding("a", "c3", Status.FAIL),
             finding("b", "c1", Status.ERROR), finding("b", "c4", Status.FAIL), finding("z", "c5", Status.FAIL)]
    outcome = compare(before, after, ["a", "b"], [("a", "c1"), ("a", "c2"), ("b", "c1")])
    assert outcome.fixed == (("a", "c1"),)
    assert outcome.still_failing == (("a", "c2"),)
    assert outcome.newly_failing == (("a", "c3"),)  # b's c4 failed before (not planned); z was not re-audited
    assert outcome.not_judged == (("b", "c1"),)
    assert not outcome.clean
    assert outcome_text(outcome).splitlines()[-1] == "1 fixed, 1 still failing, 1 newly failing, 1 not judged"
    assert compare(before, [finding("a", "c1", Status.NOT_APPLICABLE)], ["a"], [("a", "c1")]).clean


def test_the_plan_text_names_every_command_and_what_is_left_alone_escaped() -> None:
    hostile = FixPlan((), (LeftAlone("c\x1b[31m", ("h\nost",), Bilingual("why", "为何")),))
    text = plan_text(hostile, [])
    assert "\x1b" not in text and "h\\x0aost" in text and "nothing a role can repair" in text
    steps = playbook_steps(PLAN, area_playbooks, Path("inv"), check=False)
    lines = plan_text(PLAN, steps).splitlines()
    assert lines[0] == "run 1: hosts ws-01, ws-02; tags ssh (all hosts together)"
    assert sum(line.startswith("  $ ansible-playbook") for line in lines) == 3
    assert lines[-1] == "left alone: secure_boot_enabled on ws-01: manual: act"
    assert planned_failures(PLAN)[:2] == [("ws-01", "sshd_root_login_disabled"), ("ws-02", "sshd_root_login_disabled")]


def test_sources_are_a_directory_a_file_a_run_number_or_a_run_uuid(tmp_path: Path) -> None:
    (tmp_path / "findings.json").write_text("{}")
    assert source_kind(str(tmp_path)) == "directory"
    assert source_kind(str(tmp_path / "findings.json")) == "file"
    assert source_kind("42") == "run-id"
    assert source_kind("0b0e6a3c-3f5e-4d7e-9f3a-1c2d3e4f5a6b") == "run-uuid"
    with pytest.raises(UserInputError, match="neither a report directory"):
        source_kind(str(tmp_path / "missing"))


def test_the_re_audit_takes_the_monitoring_server_the_audit_had() -> None:
    topology = load_topology(LAB_TOPOLOGY)
    assert reaudit_hosts(["ws-01"], topology, ["ws-01", "monitor-01", "his-db"]) == ["monitor-01", "ws-01"]
    assert reaudit_hosts(["ws-01"], topology, ["ws-01"]) == ["ws-01"]  # it was not audited: nor is it now
