"""Owner, due date and repair of each open item: the rule the POA&M and the HTML's "what to do next" share."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

from medinfra.compliance.model import Finding, Status
from medinfra.fix.next_steps import DUE_DAYS, next_steps
from medinfra.report.model import Report
from medinfra.topology.load import load_topology
from medinfra.topology.model import Topology
from tests.unit.fix.test_plan import EXPIRED, IN_FORCE, fail, report

ROOT = Path(__file__).resolve().parents[3]
HOSTILE = 'sshd says <&"]]> and \x01, then stops'
NOW = datetime(2027, 1, 15, 9, 0, tzinfo=UTC)


def lab_topology() -> Topology:
    """his-app, his-db: 24x7-critical; ws-01: business hours; lis-legacy: a legacy appliance (business hours)."""
    return load_topology(ROOT / "inventories" / "lab" / "hospital.yml")


def open_report() -> Report:
    """Open items of every kind: fixable, manual, an expired waiver, a legacy host, hostile text."""
    return report([
        fail("his-app", "ssh_root", EXPIRED),
        fail("his-db", "ssh_root", EXPIRED),
        fail("ws-01", "ssh_root"),
        fail("lis-legacy", "ssh_root"),
        fail("his-app", "pam_stack"),
        Finding("his-db", "pam_stack", Status.WAIVED, "bad", {}, IN_FORCE),
        Finding("ws-01", "sysctl_fwd", Status.FAIL, HOSTILE, {"value": HOSTILE}),
        fail("ws-01", "secure_boot"),
        Finding("ws-01", "pam_stack", Status.PASS, "", {}),
    ])


def test_due_dates_owners_and_repairs_follow_the_rule() -> None:
    steps = {s.item.control.id: s for s in next_steps(open_report(), lab_topology(), NOW)}
    assert list(steps) == ["pam_stack", "ssh_root", "sysctl_fwd", "secure_boot"]
    # The expired waiver's approver owns it again, due when it expired, so overdue.
    ssh = steps["ssh_root"]
    assert (ssh.owners, ssh.due, ssh.overdue) == (("CIO",), date(2026, 1, 31), True)
    assert ssh.basis.en == "the waiver approved by CIO expired on 2026-01-31"
    # medinfra fix repairs the changeable hosts; the legacy appliance is left to people.
    assert ssh.fixed_hosts == ("his-app", "his-db", "ws-01")
    assert [(a.hosts, a.reason.en.split(":")[0]) for a in ssh.left_alone] == [(("lis-legacy",), "legacy host")]
    # Critical on a 24x7 host: the short column, counted from the audit's day (2026-12-01).
    pam = steps["pam_stack"]
    assert (pam.owners, pam.due, pam.overdue) == ((), date(2026, 12, 8), True)
    assert pam.fixed_hosts == ("his-app",) and pam.left_alone == ()
    assert DUE_DAYS["critical"] == (14, 7)
    # Business-hours hosts get the long column.
    assert (steps["sysctl_fwd"].due, steps["sysctl_fwd"].overdue) == (date(2027, 3, 1), False)
    assert steps["sysctl_fwd"].basis.en == "medium severity on business-hours hosts: 90 days from the audit"
    manual = steps["secure_boot"]
    assert manual.due == date(2027, 5, 30) and manual.fixed_hosts == ()
    assert [a.reason.en.split(":")[0] for a in manual.left_alone] == ["no role repairs this by converging"]


def test_without_the_topology_every_host_is_round_the_clock_and_changeable() -> None:
    steps = {s.item.control.id: s for s in next_steps(open_report(), None, NOW)}
    assert steps["sysctl_fwd"].due == date(2027, 1, 15)  # 45 days, not 90
    assert steps["ssh_root"].fixed_hosts == ("his-app", "his-db", "lis-legacy", "ws-01")


def test_nothing_is_overdue_on_the_day_it_is_due() -> None:
    due_day = datetime(2026, 12, 8, 23, 0, tzinfo=UTC)
    pam = next(s for s in next_steps(open_report(), lab_topology(), due_day) if s.item.control.id == "pam_stack")
    assert pam.due == due_day.date() and not pam.overdue
