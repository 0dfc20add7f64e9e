"""The fix plan: which failures become which playbook runs, and which are left to people."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path

from medinfra.audit.results import AuditRun, HostResult, findings_document
from medinfra.compliance.catalog import load_catalog
from medinfra.compliance.model import Bilingual, Catalog, Control, Finding, Remediation, Status, Waiver
from medinfra.fix.plan import HostPolicy, PlaybookRun, open_items, plan_fix
from medinfra.fix.run import playbook_steps, with_current_remediation
from medinfra.report.model import Report, build_report
from tests.conftest import ROOT

STARTED = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)


def control(cid: str, severity: str, tags: tuple[str, ...], manual: bool = False) -> Control:
    return Control(cid, Bilingual(cid, cid), Bilingual("d", "d"), Bilingual("r", "r"), severity, "access_control",
                   {"fact": "x", "equals": 1}, None,
                   Remediation("baseline_hardening", (), Bilingual("fix", "修复"), tags, manual), {}, f"{cid}.yml")


CATALOG = Catalog(
    controls=(
        control("ssh_root", "high", ("ssh",)),
        control("pam_stack", "critical", ("auth",)),
        control("sysctl_fwd", "medium", ("sysctl",)),
        control("secure_boot", "low", (), manual=True),
    ),
    frameworks={},
)
EXPIRED = Waiver("ssh_root", ("his-*",), (), "migration", "CIO", "medium", "ticket", "none", date(2026, 1, 31))
IN_FORCE = Waiver("pam_stack", ("his-db",), (), "j", "a", "low", "r", "c", date(2027, 1, 1))
POLICIES = {
    "his-app": HostPolicy(legacy=False, one_at_a_time=True),
    "his-db": HostPolicy(legacy=False, one_at_a_time=True),
    "ws-01": HostPolicy(legacy=False, one_at_a_time=False),
    "ws-02": HostPolicy(legacy=False, one_at_a_time=False),
    "lis-legacy": HostPolicy(legacy=True, one_at_a_time=False),
}


def report(findings: list[Finding]) -> Report:
    hosts = sorted({f.host for f in findings})
    results = [HostResult(h, "audited", "", {"schema": "medinfra-evidence/1", "collector_version": "1",
                                             "collected_at": STARTED.isoformat()}, 0.1) for h in hosts]
    run = AuditRun("pyinfra", "inv", STARTED, results, findings, CATALOG, (EXPIRED, IN_FORCE), 1.0)
    return build_report(findings_document(run))


def fail(host: str, cid: str, expired: Waiver | None = None) -> Finding:
    return Finding(host, cid, Status.FAIL, "bad", {}, expired_waiver=expired)


FINDINGS = [
    fail("his-app", "ssh_root", EXPIRED),
    fail("his-db", "ssh_root", EXPIRED),
    fail("his-app", "pam_stack"),
    fail("ws-01", "ssh_root"),
    fail("ws-02", "ssh_root"),
    fail("ws-01", "sysctl_fwd"),
    fail("ws-01", "secure_boot"),
    fail("lis-legacy", "ssh_root"),
    Finding("ws-02", "pam_stack", Status.PASS, "", {}),
    Finding("ws-02", "sysctl_fwd", Status.ERROR, "no sysctl", {}),
    Finding("his-db", "pam_stack", Status.WAIVED, "bad", {}, IN_FORCE),
]


def test_open_items_are_failures_only_most_severe_first_with_expired_waivers() -> None:
    items = open_items(report(FINDINGS))
    assert [(i.control.id, i.hosts) for i in items] == [
        ("pam_stack", ("his-app",)),  # his-db's is waived, ws-02's passes
        ("ssh_root", ("his-app", "his-db", "lis-legacy", "ws-01", "ws-02")),
        ("sysctl_fwd", ("ws-01",)),  # ws-02's error is not a failure a converge is known to repair
        ("secure_boot", ("ws-01",)),
    ]
    assert items[1].expired_waivers == (EXPIRED,)
    assert [i.fixable for i in items] == [True, True, True, False]


def test_hosts_needing_the_same_tags_share_a_run_and_round_the_clock_hosts_come_last() -> None:
    plan = plan_fix(open_items(report(FINDINGS)), POLICIES)
    assert plan.runs == (
        PlaybookRun(("ws-02",), ("ssh",), ("ssh_root",), one_at_a_time=False),
        PlaybookRun(("ws-01",), ("ssh", "sysctl"), ("ssh_root", "sysctl_fwd"), one_at_a_time=False),
        PlaybookRun(("his-app",), ("auth", "ssh"), ("pam_stack", "ssh_root"), one_at_a_time=True),
        PlaybookRun(("his-db",), ("ssh",), ("ssh_root",), one_at_a_time=True),
    )
    assert [(a.control, a.hosts, a.reason.en.split(":")[0]) for a in plan.left_alone] == [
        ("ssh_root", ("lis-legacy",), "legacy host"),
        ("secure_boot", ("ws-01",), "no role repairs this by converging"),
    ]


def test_controls_and_host_patterns_narrow_the_plan() -> None:
    plan = plan_fix(open_items(report(FINDINGS)), POLICIES, controls=("ssh_root",), host_patterns=("his-*", "ws-0[2]"))
    assert [(r.hosts, r.tags) for r in plan.runs] == [(("ws-02",), ("ssh",)), (("his-app", "his-db"), ("ssh",))]
    assert plan.left_alone == ()


def test_hosts_missing_from_the_topology_are_left_alone_not_run() -> None:
    plan = plan_fix(open_items(report([fail("gone-01", "ssh_root")])), POLICIES)
    assert plan.runs == ()
    assert [(a.hosts, a.reason.en.split(":")[0]) for a in plan.left_alone] == [
        (("gone-01",), "not in the inventory's topology")
    ]


def test_nothing_failing_plans_nothing() -> None:
    plan = plan_fix(open_items(report([Finding("ws-01", "ssh_root", Status.PASS, "", {})])), POLICIES)
    assert plan == plan.__class__((), ())


def test_a_remediation_with_services_brings_their_hosts_into_every_command_of_its_run() -> None:
    """Backup controls: the client's play needs the backup server (it admits the client's key), so a fix of his-db
    alone limited to his-db would fail at the role's first task; the server joins each command, legacy hosts never."""
    backup = Control("backup_within_rpo", Bilingual("b", "b"), Bilingual("d", "d"), Bilingual("r", "r"), "high",
                     "availability", {"fact": "x", "equals": 1}, None,
                     Remediation("backup", (), Bilingual("fix", "修复"), ("backup",), with_services=("backup_server",)),
                     {}, "backup_within_rpo.yml")
    catalog = Catalog(controls=(*CATALOG.controls, backup), frameworks={})
    results = [HostResult(h, "audited", "", {"schema": "medinfra-evidence/1", "collector_version": "1",
                                             "collected_at": STARTED.isoformat()}, 0.1) for h in ("his-db", "ws-01")]
    findings = [fail("his-db", "backup_within_rpo"), fail("ws-01", "backup_within_rpo"), fail("ws-01", "ssh_root")]
    run = AuditRun("pyinfra", "inv", STARTED, results, findings, catalog, (), 1.0)
    server = frozenset({"backup_server"})
    policies = {**POLICIES, "backup-01": HostPolicy(legacy=False, one_at_a_time=False, services=server),
                "old-backup": HostPolicy(legacy=True, one_at_a_time=False, services=server)}
    recorded = build_report(findings_document(run))
    assert plan_fix(open_items(recorded), policies).runs[0].with_hosts == ()  # reports do not record it
    plan = plan_fix(open_items(with_current_remediation(recorded, catalog)), policies)
    assert plan.runs == (
        PlaybookRun(("ws-01",), ("backup", "ssh"), ("backup_within_rpo", "ssh_root"), False, ("backup-01",)),
        PlaybookRun(("his-db",), ("backup",), ("backup_within_rpo",), True, ("backup-01",)),
    )
    steps = playbook_steps(plan, lambda tags: [Path("site.yml")], Path("inv"), check=False)
    limits = [step.argv[step.argv.index("--limit") + 1] for step in steps]
    assert limits == ["ws-01,backup-01", "his-db,backup-01"]
    assert [step.hosts for step in steps] == [("ws-01",), ("his-db",)]  # what the re-audit looks at


def test_every_remediation_with_services_names_a_topology_service() -> None:
    """A misspelt service would bring no host into the run, and the fix would fail as before."""
    schema = json.loads((ROOT / "src/medinfra/schemas/hospital.schema.json").read_text(encoding="utf-8"))
    named = {s: c.id for c in load_catalog(ROOT / "compliance").controls for s in c.remediation.with_services}
    assert named, "no control names a service"
    assert set(named) <= set(schema["$defs"]["service"]["enum"]), named
