"""Report model, HTML, the published report set, history context, signing and `medinfra report`."""

from __future__ import annotations

import json
import re
import stat
from dataclasses import replace
from datetime import date

import pytest

from benchmarks.synthetic import synthetic_run
from medinfra.audit.results import AuditRun, HostResult, findings_document, judge
from medinfra.cli import main
from medinfra.compliance.evaluate import evaluate
from medinfra.compliance.model import HostEvidence, Status, Waiver
from medinfra.report.html import render_html
from medinfra.report.model import build_report
from medinfra.report.publish import publish
from medinfra.signing import generate_keypair, verify_directory
from tests.oscal_schema import SCHEMA_PATH, SHARED_SCHEMA_PATH, oscal_validator
from tests.unit.test_audit import CATALOG, NOW, evidence

WAIVER = Waiver(
    "root_login_off", (), ("legacy",), "vendor support logs in as root until the upgrade", "CISO", "high",
    "accepted by the security committee, minutes 2026-10", "vendor VPN only", date(2027, 6, 30),
)


def test_waivers_match_inventory_groups_and_expired_ones_are_flagged():
    hosts = [
        HostEvidence("lis-01", evidence(root_login="yes"), {"groups": ["legacy", "zone_lab"]}),
        HostEvidence("his-01", evidence(root_login="yes"), {"groups": ["zone_his"]}),
    ]
    findings = {f.host: f for f in evaluate(hosts, CATALOG, [WAIVER], NOW) if f.control == "root_login_off"}
    assert findings["lis-01"].status is Status.WAIVED and findings["lis-01"].waiver == WAIVER
    assert findings["his-01"].status is Status.FAIL and findings["his-01"].expired_waiver is None
    lapsed = replace(WAIVER, expires=date(2026, 11, 21))
    flagged = next(f for f in evaluate(hosts[:1], CATALOG, [lapsed], NOW) if f.control == "root_login_off")
    assert flagged.status is Status.FAIL and flagged.expired_waiver == lapsed


def two_host_run(waivers: tuple[Waiver, ...] = (WAIVER,), evidence_value: str = "yes") -> AuditRun:
    results = [
        HostResult("lis-01", "audited", "", evidence(root_login=evidence_value), 0.1),
        HostResult("his-01", "audited", "", evidence(), 0.1),
        HostResult("pacs-01", "unreachable", "SSH: connection refused", None, 0.1),
    ]
    views = {
        "lis-01": {"groups": ["legacy"], "zone": "lab", "site": "test", "services": []},
        "his-01": {"groups": [], "zone": "his", "site": "test", "services": []},
        "pacs-01": {"groups": [], "zone": "pacs", "site": "test", "services": []},
    }
    findings = judge(results, views, CATALOG, waivers, NOW)
    return AuditRun("pyinfra", "inv", NOW, results, findings, CATALOG, waivers, 1.0, views=views)


def test_findings_document_carries_what_reports_need():
    document = findings_document(two_host_run())
    assert document["site"] == "test" and re.fullmatch(r"[0-9a-f-]{36}", document["run_id"])
    control = document["controls"]["root_login_off"]
    assert set(control) >= {"title", "description", "rationale", "remediation", "references", "severity"}
    assert control["remediation"]["text"] == {"en": "text", "zh": "文本"}
    assert {h["name"]: h["zone"] for h in document["hosts"]} == {"lis-01": "lab", "his-01": "his", "pacs-01": "pacs"}
    assert document["waivers"][0] | {"state": "active", "applied": 1, "expired_matches": 0} == document["waivers"][0]
    waived = next(f for f in document["findings"] if f["status"] == "waived")
    assert document["waivers"][waived["waiver"]]["approver"] == "CISO"


def test_clause_results_follow_the_findings_of_their_controls():
    run = synthetic_run(8, 30, seed=7)
    report = build_report(findings_document(run))
    statuses: dict[str, set[Status]] = {}
    for item in run.findings:
        statuses.setdefault(item.control, set()).add(item.status)
    for framework in report.frameworks:
        for clause in framework.clauses:
            seen = set().union(*(statuses.get(c, set()) for c in clause.controls))
            if clause.coverage in ("manual", "not_covered") or not clause.controls:
                expected = "manual"
            elif Status.FAIL in seen:
                expected = "fail"
            elif Status.ERROR in seen:
                expected = "error"
            elif seen - {Status.NOT_APPLICABLE}:
                expected = "pass"
            else:
                expected = "not_applicable"
            assert clause.result == expected, (framework.id, clause.id)
    assert sum(t.decided for t in report.zones.values()) == report.overall.decided


def test_html_is_self_contained_escaped_and_in_the_chosen_language():
    run = two_host_run(waivers=(replace(WAIVER, expires=date(2026, 1, 1)),), evidence_value="<script>alert(1)</script>")
    report = build_report(findings_document(run))
    english, chinese = render_html(report, "en"), render_html(report, "zh")
    for page in (english, chinese):
        assert "default-src 'none'" in page
        assert not re.findall(r'(?:src|href)="(?!#|report\.(?:en|zh)\.html)', page)
        assert "<script>alert(1)</script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
        assert 'class="flag expired-waiver"' in page and "pacs-01" in page
    assert "Compliance report" in english and "合规审计报告" not in english
    assert "合规审计报告" in chinese and "文本" in chinese and "EXPIRED" not in chinese


def test_publish_writes_every_format_privately_records_history_and_signs(tmp_path):
    private, public = generate_keypair(tmp_path / "keys" / "audit")
    out, history = tmp_path / "reports", str(tmp_path / "history.sqlite")
    first = publish(two_host_run(), out, history, private)
    names = {p.relative_to(out).as_posix() for p in first.files}
    assert names == {
        "evidence/lis-01.json", "evidence/his-01.json", "findings.json", "report.en.html", "report.zh.html",
        "assessment-results.oscal.json", "junit.xml", "findings.csv",
    }
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o640 for p in first.files)
    assert verify_directory(out, public).ok and first.history.previous is None
    for path in first.files:  # one flipped byte anywhere in any output file is caught, and named
        original = path.read_bytes()
        path.write_bytes(original[: len(original) // 2] + bytes([original[len(original) // 2] ^ 1])
                         + original[len(original) // 2 + 1 :])
        check = verify_directory(out, public)
        assert check.altered == (path.relative_to(out).as_posix(),) and not check.ok
        path.write_bytes(original)
    oscal_validator().validate(json.loads((out / "assessment-results.oscal.json").read_text(encoding="utf-8")))

    # A second run where lis-01 is unreachable: its stale evidence goes, history shows what changed.
    second_run = two_host_run(waivers=())
    second_run = replace(second_run, hosts=[second_run.hosts[1], HostResult("lis-01", "unreachable", "x", None, 0)],
                         findings=[f for f in second_run.findings if f.host == "his-01"])
    second = publish(second_run, out, history, private)
    assert not (out / "evidence" / "lis-01.json").exists()
    assert second.history.previous is not None and second.history.previous.id == first.history.run.id
    assert second.history.changes is not None and [h.name for h in second.history.changes.hosts_removed] == ["lis-01"]
    assert second.history.earlier == (first.history.run,) and 'id="changes"' in (out / "report.en.html").read_text()
    assert verify_directory(out, public).ok


def test_report_command_rerenders_a_past_run_and_rejects_bad_input(tmp_path, capsys):
    out = tmp_path / "reports"
    publish(two_host_run(), out, None, None)
    again = tmp_path / "again"
    assert main(["report", str(out), "-o", str(again), "--lang", "zh", "--no-history"]) == 0
    assert (again / "report.zh.html").exists() and not (again / "report.en.html").exists()
    assert (again / "junit.xml").read_bytes() == (out / "junit.xml").read_bytes()
    (tmp_path / "broken.json").write_text("{not json")
    assert main(["report", str(tmp_path / "broken.json"), "--no-history"]) == 2
    assert "broken.json:1: (top level): not JSON" in capsys.readouterr().err
    (tmp_path / "other.json").write_text('{"format": "something-else"}')
    assert main(["report", str(tmp_path / "other.json"), "--no-history"]) == 2
    assert "other.json: format: 'medinfra-findings/1' was expected" in capsys.readouterr().err


@pytest.mark.skipif(not SHARED_SCHEMA_PATH.exists(), reason="the shared conformance folder is not beside this clone")
def test_vendored_oscal_schema_is_nists_file():
    assert SCHEMA_PATH.read_bytes() == SHARED_SCHEMA_PATH.read_bytes()



def test_hostile_evidence_text_cannot_break_any_format(tmp_path):
    """A host controls its evidence: a lone surrogate (JSON "\\ud800") is written escaped, not fatal."""
    run = two_host_run(evidence_value="\ud800=cmd|' /C calc'!A0")
    published = publish(run, tmp_path / "reports", None, None)
    assert "\\ud800" in (tmp_path / "reports" / "findings.csv").read_text(encoding="utf-8-sig")
    assert len(published.files) == 8
