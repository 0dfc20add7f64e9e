"""Report model, HTML, the published report set, history context, signing and `medinfra report`."""

from __future__ import annotations

import json
import os
import re
import stat
from collections.abc import Callable
from dataclasses import replace
from datetime import date
from itertools import islice
from pathlib import Path

import pytest

from benchmarks.synthetic import synthetic_run
from medinfra.audit.results import AuditRun, HostResult, findings_document, interface_states, judge, judge_run
from medinfra.cli import main
from medinfra.compliance.evaluate import evaluate
from medinfra.compliance.model import Bilingual, HostEvidence, Status, Waiver
from medinfra.problems import Problem
from medinfra.report.findings_file import MAX_PROBLEMS, document_problems, schema_problems
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


def test_a_document_with_more_problems_than_shown_says_so_after_the_first_ones():
    document = findings_document(two_host_run())
    document["findings"] = [{"control": index} for index in range(MAX_PROBLEMS + 5)]  # a problem or more each
    problems = document_problems("findings.json", document)
    assert len(problems) == MAX_PROBLEMS + 1
    assert problems[:MAX_PROBLEMS] == list(islice(schema_problems("findings.json", document), MAX_PROBLEMS))
    assert problems[-1] == Problem("findings.json", (), "more problems not shown")
    document["findings"] = document["findings"][:1]
    assert "more problems not shown" not in [problem.message for problem in document_problems("f.json", document)]


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


def waived_index(document: dict) -> int:
    return next(i for i, f in enumerate(document["findings"]) if f["status"] == "waived")


def deeply_nested(document: dict, depth: int) -> bytes:
    """The document with one finding's evidence nested `depth` lists deep (written by hand: json.dumps recurses)."""
    marker = '"__deep__"'
    document["findings"][0]["evidence"] = {"x": "__deep__"}
    return json.dumps(document).replace(marker, "[" * depth + "]" * depth).encode()


def set_in(path: tuple, value: object) -> Callable[[dict], object]:
    def mutate(document: dict) -> object:
        target = document
        for part in path[:-1]:
            target = target[part]
        target[path[-1]] = value
        return document
    return mutate


def without(path: tuple) -> Callable[[dict], object]:
    def mutate(document: dict) -> object:
        target = document
        for part in path[:-1]:
            target = target[part]
        del target[path[-1]]
        return document
    return mutate


# The malformed findings.json files, and more: each is a located problem (file: path: reason), exit 2.
MALFORMED: list[tuple[str, Callable[[dict], object], str]] = [
    ("list", lambda d: [], "(top level): [] is not of type 'object'"),
    ("null", lambda d: None, "(top level): None is not of type 'object'"),
    ("string", lambda d: "findings", "(top level): 'findings' is not of type 'object'"),
    ("hosts-object", set_in(("hosts",), {}), "hosts: {} is not of type 'array'"),
    ("host-name-number", set_in(("hosts", 0, "name"), 5), "hosts[0].name: 5 is not of type 'string'"),
    ("host-missing-status", without(("hosts", 0, "status")), "hosts[0]: 'status' is a required property"),
    ("no-findings", without(("findings",)), "(top level): 'findings' is a required property"),
    ("findings-object", set_in(("findings",), {"a": 1}), "findings: {'a': 1} is not of type 'array'"),
    ("finding-string", set_in(("findings", 0), "x"), "findings[0]: 'x' is not of type 'object'"),
    ("finding-no-host", without(("findings", 0, "host")), "findings[0]: 'host' is a required property"),
    ("unknown-status", set_in(("findings", 0, "status"), "passed"), "findings[0].status: 'passed' is not one of"),
    ("reason-list", set_in(("findings", 0, "reason"), ["a"]), "findings[0].reason: ['a'] is not of type 'string'"),
    ("reason-number", set_in(("findings", 0, "reason"), 7), "findings[0].reason: 7 is not of type 'string'"),
    ("evidence-string", set_in(("findings", 0, "evidence"), "x"), "findings[0].evidence: 'x' is not of type"),
    ("unknown-control", set_in(("findings", 0, "control"), "no_such_control"),
     "findings[0].control: is not one of the document's controls"),
    ("unknown-host", set_in(("findings", 0, "host"), "ghost"), "findings[0].host: is not one of the document's hosts"),
    ("waiver-out-of-range", lambda d: set_in(("findings", waived_index(d), "waiver"), 7)(d),
     ".waiver: 7 is not an index of the 1 waiver(s)"),
    ("waiver-negative", lambda d: set_in(("findings", waived_index(d), "waiver"), -1)(d), ".waiver: -1 is less than"),
    ("waiver-float", lambda d: set_in(("findings", waived_index(d), "waiver"), 0.0)(d),
     ".waiver: 0.0 is not an index of the 1 waiver(s)"),
    ("waiver-on-a-pass", set_in(("findings", 1, "waiver"), 0), "findings[1].status: 'waived' was expected"),
    ("controls-list", set_in(("controls",), []), "controls: [] is not of type 'object'"),
    ("control-without-zh", without(("controls", "root_login_off", "title", "zh")),
     "controls.root_login_off.title: 'zh' is a required property"),
    ("severity-unknown", set_in(("controls", "root_login_off", "severity"), "dire"), ".severity: 'dire' is not one of"),
    ("expires-not-a-date", set_in(("waivers", 0, "expires"), "2027-02-30"), "waivers[0].expires: '2027-02-30' is not"),
    ("waivers-object", set_in(("waivers",), {}), "waivers: {} is not of type 'array'"),
    ("no-per-framework", without(("summary", "per_framework")), "summary: 'per_framework' is a required property"),
    ("negative-count", set_in(("summary", "overall", "pass"), -1), "summary.overall.pass: -1 is less than"),
    ("count-text", set_in(("summary", "overall", "fail"), "2"), "summary.overall.fail: '2' is not of type 'integer'"),
    ("framework-unknown", set_in(("frameworks", "nist"), {}), "frameworks: 'nist' is not one of"),
    ("started-garbage", set_in(("started_at",), "2026-13-45T99:99:99Z"), "started_at: not a time between 1900"),
    ("started-year-9999", set_in(("started_at",), "9999-12-31T23:59:59Z"), "started_at: not a time between 1900"),
    ("seconds-huge", set_in(("seconds",), 1e300), "seconds: more than 2592000 s"),
    ("seconds-text", set_in(("seconds",), "1"), "seconds: '1' is not of type 'number'"),
    ("format-other", set_in(("format",), "medinfra-findings/2"), "format: 'medinfra-findings/1' was expected"),
    ("nan", lambda d: json.dumps(d).replace('"seconds": 1.0', '"seconds": NaN').encode(), "NaN is not a JSON number"),
    ("infinity", lambda d: json.dumps(d).replace('"seconds": 1.0', '"seconds": -Infinity').encode(),
     "-Infinity is not a JSON number"),
    ("5000-digits", lambda d: json.dumps(d).replace('"seconds": 1.0', '"seconds": ' + "9" * 5000).encode(),
     "Exceeds the limit"),
    ("nested-100000", lambda d: deeply_nested(d, 100_000), "nested deeper than 64 levels"),
    ("nested-70", lambda d: deeply_nested(d, 70), "nested deeper than 64 levels"),
    ("latin-1", lambda d: b'{"format": "medinfra-findings/1", "site": "K\xf6ln"}', "not UTF-8 (byte 44)"),
    ("empty", lambda d: b"", "(top level): not JSON: Expecting value"),
    ("truncated", lambda d: json.dumps(d).encode()[:100], "not JSON: "),
]


@pytest.mark.parametrize(("mutate", "expected"), [case[1:] for case in MALFORMED], ids=[case[0] for case in MALFORMED])
def test_malformed_findings_are_located_problems_never_tracebacks(tmp_path, capsys, mutate, expected):
    document = findings_document(two_host_run())
    mutated = mutate(json.loads(json.dumps(document)))
    source = tmp_path / "findings.json"
    source.write_bytes(mutated if isinstance(mutated, bytes) else json.dumps(mutated).encode())
    assert main(["report", str(source), "-o", str(tmp_path / "out"), "--no-history"]) == 2
    captured = capsys.readouterr()
    assert expected in captured.err
    assert all(line.startswith(f"{source}:") for line in captured.err.splitlines())
    assert "Traceback" not in captured.err and captured.out == ""
    assert not (tmp_path / "out").exists()


def test_findings_that_are_not_a_regular_file_or_too_large_are_refused(tmp_path, capsys, monkeypatch):
    fifo = tmp_path / "fifo.json"
    os.mkfifo(fifo)
    (tmp_path / "link.json").symlink_to("/dev/zero")
    cases = [
        (fifo, "not a regular file but a FIFO"),
        (Path("/dev/zero"), "not a regular file but a character device"),
        (tmp_path / "link.json", "is a symlink; give the file itself"),
        (tmp_path / "nosuch.json", "file not found"),
    ]
    for path, message in cases:
        assert main(["report", str(path), "-o", str(tmp_path / "out"), "--no-history"]) == 2
        assert capsys.readouterr().err == f"{path}: (top level): {message}\n"
    monkeypatch.setattr("medinfra.report.findings_file.FINDINGS_MAX_BYTES", 1000)
    publish(two_host_run(), tmp_path / "big", None, None)
    assert main(["report", str(tmp_path / "big"), "--no-history"]) == 2
    assert "bytes: larger than 1,000 bytes, the most medinfra reads from such a file" in capsys.readouterr().err


UNSAFE_TEXT = "nul\0 esc\x1b[2J\x1b]0;title\x07 bidi\u202eevil\u2066 del\x7f c1\x9b surrogate\ud800 cr\r"
UNSAFE_CHARACTERS = "\0\x1b\x07\u202e\u2066\x7f\x9b\r"


def test_no_control_or_bidi_character_reaches_html_csv_junit_or_oscal(tmp_path, capsys):
    """Host names, reasons and evidence come from hosts; `medinfra report` gets them from whoever sent the file."""
    document = findings_document(two_host_run())
    host = document["hosts"][0]["name"]
    document["hosts"][0]["name"] = host + UNSAFE_TEXT
    for item in document["findings"]:
        item["host"] = item["host"] + UNSAFE_TEXT if item["host"] == host else item["host"]
    document["findings"][0]["reason"] = UNSAFE_TEXT
    document["findings"][0]["evidence"] = {UNSAFE_TEXT: [UNSAFE_TEXT]}
    document["site"] = document["waivers"][0]["approver"] = UNSAFE_TEXT
    source = tmp_path / "findings.json"
    source.write_text(json.dumps(document), encoding="utf-8")
    assert main(["report", str(source), "-o", str(tmp_path / "out"), "--no-history"]) == 0
    for name in ("report.en.html", "report.zh.html", "findings.csv", "junit.xml", "assessment-results.oscal.json"):
        text = (tmp_path / "out" / name).read_bytes().decode("utf-8")
        if name == "findings.csv":
            text = text.replace("\r\n", "\n")
        if name.endswith(".json"):
            text = json.dumps(json.loads(text), ensure_ascii=False)  # JSON's own \\u escapes, decoded
        assert not set(text) & set(UNSAFE_CHARACTERS), name
        assert "\\u202e" in text and "\\x1b" in text, name
    assert "Traceback" not in capsys.readouterr().err


def test_html_says_what_to_do_next_with_the_poams_owners_and_due_dates():
    from tests.unit.fix.test_next_steps import lab_topology, open_report

    run, topology = open_report(), lab_topology()
    english, chinese = render_html(run, "en", topology=topology), render_html(run, "zh", topology=topology)
    section = english.split('<section id="next-steps">')[1].split("</section>")[0]
    rows = {row.split('data-control="')[1].split('"')[0]: row for row in section.split('<tr class="next-step"')[1:]}
    assert list(rows) == ["pam_stack", "ssh_root", "sysctl_fwd", "secure_boot"]  # his-db's pam_stack is waived
    fixed_by = "fixed by <code>medinfra fix</code> (Role <code>baseline_hardening</code>, tags <code>auth</code>)"
    assert fixed_by in rows["pam_stack"] and "by-hand" not in rows["pam_stack"]
    assert "2026-12-08" in rows["pam_stack"] and "OVERDUE" not in rows["pam_stack"]  # as of the audit (2026-12-01)
    # An expired waiver: its approver owns it again, overdue since it expired; the legacy host is left to people.
    ssh = rows["ssh_root"]
    assert "<td>CIO</td>" in ssh and "2026-01-31" in ssh and "OVERDUE" in ssh
    assert ": his-app, his-db, ws-01</div>" in ssh and "manual (lis-legacy): fix" in ssh and "legacy host" in ssh
    assert "manual: fix" in rows["secure_boot"] and "medinfra fix" not in rows["secure_boot"]
    assert "<td>site operations</td>" in rows["sysctl_fwd"] and "2027-03-01" in rows["sysctl_fwd"]
    # The same owners and dates in Chinese, in its own words.
    zh = chinese.split('<section id="next-steps">')[1].split("</section>")[0]
    assert "下一步整改" in zh and "已逾期" in zh and "运维团队" in zh and "由以下命令修复" in zh and "OVERDUE" not in zh
    assert "审计后 90 天内" in zh and "2026-01-31" in zh


def test_html_next_steps_escape_hostile_text_and_say_when_nothing_is_open():
    from tests.unit.fix.test_next_steps import open_report
    from tests.unit.fix.test_plan import report as plan_report

    run = open_report()
    hostile = replace(run, controls={**run.controls, "secure_boot": replace(
        run.controls["secure_boot"], remediation=Bilingual('<img src=x onerror="alert(1)">&\x1b[2J', "修复"))})
    page = render_html(hostile, "en")
    assert "<img src=x" not in page and "&lt;img src=x onerror=&#34;alert(1)&#34;&gt;&amp;\\x1b[2J" in page
    assert "\x1b" not in page
    empty = render_html(plan_report([]), "en")
    assert "Nothing is open: no control fails without a waiver." in empty and 'class="next-step"' not in empty


def test_the_interfaces_a_host_serves_are_listed_with_their_probe_verdict_and_owner():
    """his-01 serves two interfaces; the monitoring server's Prometheus saw one acknowledge and one answer AE."""
    served = [
        {"name": "lis-his", "from": "lis-01", "protocol": "hl7v2-mllp", "port": 2575, "tls": False, "phi": True,
         "owner": "his-team", "vendor": "HIS Co.", "sla": "24x7-critical", "flow_declared": True,
         "crosses_zones": True, "plaintext_phi_across_zones": True, "default_ae_titles": []},
        {"name": "his-fhir", "from": "ws-01", "protocol": "fhir", "port": 443, "tls": True, "phi": True,
         "owner": "his-team", "vendor": None, "sla": "24x7-critical", "flow_declared": True,
         "crosses_zones": True, "plaintext_phi_across_zones": False, "default_ae_titles": []},
    ]
    server_evidence = evidence()
    server_evidence["facts"]["monitoring"] = {"prometheus": {"running": True, "node_targets": [], "interfaces": {
        "lis-his": {"up": False, "result": "ack_negative", "latency_seconds": 0.0021},
        "his-fhir": {"up": True, "result": "ok", "latency_seconds": 0.0123},
    }}}
    results = [
        HostResult("his-01", "audited", "", evidence(), 0.1),
        HostResult("mon-01", "audited", "", server_evidence, 0.1),
    ]
    views = {
        "his-01": {"groups": [], "zone": "his", "site": "test", "services": ["his_app"], "interfaces_in": served},
        "mon-01": {"groups": [], "zone": "mgmt", "site": "test", "services": ["monitoring_server"]},
    }
    judged = judge_run(results, views, CATALOG, (), NOW)
    run = AuditRun("pyinfra", "inv", NOW, results, judged.findings, CATALOG, (), 1.0, views=views,
                   interfaces=interface_states(judged))
    document = findings_document(run)
    assert document_problems("findings.json", document) == []
    assert "interfaces" not in document["hosts"][1]
    html = render_html(build_report(document), "en")
    rows = re.findall(r'<tr class="interface" data-interface="([^"]+)" data-up="([^"]+)">(.*?)</tr>', html, re.S)
    assert [(name, up) for name, up, _ in rows] == [("lis-his", "false"), ("his-fhir", "true")]
    assert "lis-01 → his-01:2575" in rows[0][2] and "his-team" in rows[0][2] and "HIS Co." in rows[0][2]
    assert "ack_negative" in rows[0][2] and "2 ms" in rows[0][2]
    assert "hl7v2-mllp</td>" in rows[0][2] and "fhir / TLS</td>" in rows[1][2]
    assert "临床接口" in render_html(build_report(document), "zh")
