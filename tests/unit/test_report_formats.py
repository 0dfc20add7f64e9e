"""OSCAL, JUnit and CSV exports: schema validity, counts, waivers and expired waivers, hostile host text."""

from __future__ import annotations

import copy
import csv
import io
import json
import stat
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from benchmarks.synthetic import synthetic_document
from medinfra.audit.results import AuditRun, HostResult, findings_document
from medinfra.compliance.model import Bilingual, Catalog, Control, Finding, Remediation, Status, Waiver
from medinfra.report.csv_export import COLUMNS, lines, write_csv
from medinfra.report.junit import write_junit
from medinfra.report.model import Report, build_report
from medinfra.report.oscal import NS, UUID_NAMESPACE, Names, write_oscal
from medinfra.safe_output import OutputDirectory
from tests.oscal_schema import oscal_validator

STARTED = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)
FORMULA = "=cmd|' /C calc'!A0"
HOSTILE = 'sshd says <&"]]> and \x01, then stops'
# What every format shows of it: the control character as a visible escape (safe_text.clean).
HOSTILE_SHOWN = HOSTILE.replace("\x01", "\\x01")


def control(cid: str, en: str, zh: str, hipaa: tuple[str, ...], gbt: tuple[str, ...]) -> Control:
    return Control(
        cid,
        Bilingual(en, zh),
        Bilingual(f"{en}.", f"{zh}。"),
        Bilingual("Why it matters.", "为什么重要。"),
        "high",
        "access_control",
        {"fact": "x", "equals": 1},
        None,
        Remediation("baseline_hardening", ("baseline_hardening_sshd",), Bilingual("Apply the role.", "应用角色。")),
        {"hipaa": hipaa, "gbt22239": gbt, "cis_debian12": ("5.1.20",)},
        f"{cid}.yml",
    )


CATALOG = Catalog(
    controls=(
        control(
            "root_login_off",
            "Root cannot log in over SSH",
            "禁止 root 通过 SSH 登录",
            ("164.312(a)(1)",),
            ("8.1.4.1.a",),
        ),
        control("forwarding_off", "IP forwarding is off", "关闭 IP 转发", ("164.312(e)(1)",), ()),
        control("audit_logging", "auditd records logins", "auditd 记录登录事件", ("164.312(b)",), ("8.1.4.3.a",)),
    ),
    frameworks={},
)
WAIVER = Waiver(
    control="root_login_off",
    hosts=("lis-*",),
    groups=(),
    justification="The LIS vendor logs in as root until the 2027 upgrade",
    approver="CISO 王医生",
    risk="high",
    risk_acceptance="Accepted at the security committee, minutes 2026-10",
    compensating_control="SSH only from the vendor jump host",
    expires=date(2027, 6, 30),
)
EXPIRED = Waiver(
    control="root_login_off",
    hosts=("his-*",),
    groups=(),
    justification="Old exception for the HIS migration",
    approver="CIO 李主任",
    risk="medium",
    risk_acceptance="Accepted for the migration, ticket SEC-12",
    compensating_control="none",
    expires=date(2026, 1, 31),
)


def evidence(collected_at: str) -> dict:
    return {"schema": "medinfra-evidence/1", "collector_version": "1.0.0", "collected_at": collected_at}


def handmade_document() -> dict:
    """Every case once: waived, failed under an expired waiver, error, not applicable, pass, unreachable host."""
    results = [
        # The host's clock sends garbage: the OSCAL collection time falls back to the run's start.
        HostResult("his-db", "audited", "", evidence("yesterday"), 0.3),
        HostResult("lis-legacy", "audited", "", evidence("2026-11-22T09:00:05+08:00"), 0.3),
        HostResult("pacs-old", "unreachable", "SSH: connection timed out", None, 10.0),
    ]
    findings = [
        Finding(
            "his-db", "root_login_off", Status.FAIL, HOSTILE, {"sshd.permitrootlogin": "yes"}, expired_waiver=EXPIRED
        ),
        Finding("his-db", "forwarding_off", Status.ERROR, "sysctl net.ipv4.ip_forward is missing", {}),
        Finding("his-db", "audit_logging", Status.NOT_APPLICABLE, "does not apply: no auditd on this image", {}),
        Finding(
            "lis-legacy",
            "root_login_off",
            Status.WAIVED,
            "PermitRootLogin is yes",
            {"sshd.permitrootlogin": "yes"},
            WAIVER,
        ),
        Finding("lis-legacy", "forwarding_off", Status.PASS, "", {"sysctl.net.ipv4.ip_forward": 0}),
        Finding(
            "lis-legacy",
            "audit_logging",
            Status.FAIL,
            FORMULA,
            {"auditd.rules": FORMULA, "note": 'a "quoted", text\nline 2'},
        ),
    ]
    views = {
        "his-db": {"zone": "his", "groups": ["zone_his"], "site": "人民医院"},
        "lis-legacy": {"zone": "clinical", "groups": ["zone_clinical", "legacy"], "site": "人民医院"},
        "pacs-old": {"zone": "pacs", "groups": ["zone_pacs"], "site": "人民医院"},
    }
    run = AuditRun(
        "pyinfra",
        "inventories/hospital",
        STARTED,
        results,
        findings,
        CATALOG,
        (WAIVER, EXPIRED),
        12.0,
        views,
        run_id="nightly-2026-11-22",
    )
    return findings_document(run)


@pytest.fixture(scope="module")
def handmade() -> Report:
    return build_report(handmade_document())


@pytest.fixture(scope="module")
def synthetic() -> Report:
    return build_report(synthetic_document(12, 20))


def written(write: Callable[[Report, OutputDirectory, str], None], report: Report, path: Path) -> Path:
    with OutputDirectory.open(path.parent) as directory:
        write(report, directory, path.name)
    return path


def oscal(report: Report, path: Path) -> dict:
    written(write_oscal, report, path)
    return json.loads(path.read_text(encoding="utf-8"))


def by_uuid(records: list[dict]) -> dict[str, dict]:
    return {record["uuid"]: record for record in records}


def prop(record: dict, name: str) -> list[str]:
    return [p["value"] for p in record.get("props", ()) if p["name"] == name and p["ns"] == NS]


def test_schema_is_nist_assessment_results_1_0_6():
    assert oscal_validator().schema["$id"] == "http://csrc.nist.gov/ns/oscal/1.0.6/oscal-ar-schema.json"


@pytest.mark.parametrize("name", ["handmade", "synthetic"])
def test_oscal_validates_and_has_one_record_per_finding(name, request, tmp_path):
    report: Report = request.getfixturevalue(name)
    document = oscal(report, tmp_path / "ar.json")
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in oscal_validator().iter_errors(document)]
    assert errors == []
    assessment = document["assessment-results"]
    result = assessment["results"][0]
    unassessed = [h for h in report.hosts if h.status != "audited"]
    assert len(result["observations"]) == len(report.findings) + len(unassessed)
    decided = [f for f in report.findings if f.status is not Status.NOT_APPLICABLE]
    assert len(result["findings"]) == len(decided)
    selected = result["reviewed-controls"]["control-selections"][0]["include-controls"]
    assert [c["control-id"] for c in selected] == list(report.controls)
    objectives = assessment["local-definitions"]["objectives-and-methods"]
    assert [o["control-id"] for o in objectives] == list(report.controls)
    items = result["local-definitions"]["inventory-items"]
    assert [prop(item, "host") for item in items] == [[h.name] for h in report.hosts]
    observations = by_uuid(result["observations"])
    for finding in result["findings"]:
        assert finding["related-observations"][0]["observation-uuid"] in observations
    every_uuid = [r["uuid"] for r in (*result["observations"], *result["findings"], *items)]
    assert len(set(every_uuid)) == len(every_uuid)


def test_oscal_references_waivers_expired_waivers_and_unreachable_hosts(handmade, tmp_path):
    assessment = oscal(handmade, tmp_path / "ar.json")["assessment-results"]
    result = assessment["results"][0]
    root_login = assessment["local-definitions"]["objectives-and-methods"][0]
    assert prop(root_login, "hipaa") == ["164.312(a)(1)"]
    assert prop(root_login, "gbt22239") == ["8.1.4.1.a"]
    assert prop(root_login, "cis_debian12") == ["5.1.20"]
    assert "禁止 root 通过 SSH 登录" in root_login["description"]

    findings = {f["title"]: f for f in result["findings"]}
    waived = findings["root_login_off on lis-legacy"]
    assert waived["target"]["status"] == {"state": "not-satisfied", "reason": "fail"}  # accepted, still not met
    assert "CISO 王医生" in waived["remarks"] and "2027-06-30" in waived["remarks"]
    (risk,) = result["risks"]
    assert waived["related-risks"] == [{"risk-uuid": risk["uuid"]}]
    assert risk["status"] == "deviation-approved"
    assert prop(risk, "waiver-approver") == ["CISO 王医生"]
    assert prop(risk, "waiver-expires") == ["2027-06-30"]
    assert risk["statement"] == WAIVER.risk_acceptance
    assert risk["mitigating-factors"][0]["description"] == WAIVER.compensating_control
    assert risk["deadline"] == "2027-06-30T23:59:59Z"
    assert risk["related-observations"] == waived["related-observations"]

    expired = findings["root_login_off on his-db"]
    assert expired["target"]["status"]["state"] == "not-satisfied"
    assert prop(expired, "expired-waiver") == ["2026-01-31"]
    assert "CIO 李主任" in expired["remarks"] and "related-risks" not in expired
    assert findings["forwarding_off on his-db"]["target"]["status"] == {"state": "not-satisfied", "reason": "other"}
    assert findings["forwarding_off on lis-legacy"]["target"]["status"] == {"state": "satisfied", "reason": "pass"}
    assert "audit_logging on his-db" not in findings  # not applicable: observed, not judged

    observations = {o["title"]: o for o in result["observations"]}
    assert observations["root_login_off on his-db"]["description"] == HOSTILE_SHOWN
    evidence_text = observations["root_login_off on his-db"]["relevant-evidence"][0]["description"]
    assert json.loads(evidence_text) == {"sshd.permitrootlogin": "yes"}
    assert observations["root_login_off on his-db"]["collected"] == "2026-11-22T08:00:00Z"  # garbage clock
    assert observations["forwarding_off on lis-legacy"]["collected"] == "2026-11-22T01:00:05Z"  # +08:00 to UTC
    unreachable = observations["pacs-old not assessed"]
    assert "SSH: connection timed out" in unreachable["description"]
    assert prop(unreachable, "status") == ["not-assessed"]
    items = by_uuid(result["local-definitions"]["inventory-items"])
    assert prop(items[unreachable["subjects"][0]["subject-uuid"]], "host") == ["pacs-old"]


def test_oscal_uuids_are_uuid5_of_the_run_and_rerendering_gives_the_same_bytes(handmade, synthetic, tmp_path):
    assert Names("run")("finding", "h", "c") == str(uuid.uuid5(UUID_NAMESPACE, "run\0finding\0h\0c"))
    first, second = tmp_path / "first.json", tmp_path / "second.json"
    written(write_oscal, synthetic, first)
    written(write_oscal, synthetic, second)
    assert first.read_bytes() == second.read_bytes()
    # A random run id is the result's uuid; any other run id gets a uuid derived from it.
    assert json.loads(first.read_text())["assessment-results"]["results"][0]["uuid"] == synthetic.run_id
    result_uuid = oscal(handmade, tmp_path / "h.json")["assessment-results"]["results"][0]["uuid"]
    assert uuid.UUID(result_uuid).version == 5


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param(lambda ar: ar["results"][0].update(uuid="not-a-uuid"), id="bad-uuid"),
        pytest.param(lambda ar: ar["metadata"].pop("title"), id="missing-title"),
        pytest.param(lambda ar: ar["results"][0].update(start="2026-11-22T08:00:00"), id="time-without-zone"),
        pytest.param(
            lambda ar: ar["local-definitions"]["objectives-and-methods"][0].update({"control-id": "1 bad id"}),
            id="bad-token",
        ),
        pytest.param(
            lambda ar: ar["results"][0]["findings"][0].update(props=[{"name": "x", "ns": NS, "value": "two\nlines"}]),
            id="multi-line-prop",
        ),
        pytest.param(lambda ar: ar["results"][0].update(risks=[]), id="empty-array"),
    ],
)
def test_validator_rejects_a_tampered_document(tamper, handmade, tmp_path):
    document = oscal(handmade, tmp_path / "ar.json")
    tampered = copy.deepcopy(document)
    tamper(tampered["assessment-results"])
    assert list(oscal_validator().iter_errors(document)) == []
    assert list(oscal_validator().iter_errors(tampered)) != []


def junit(report: Report, path: Path) -> ET.Element:
    written(write_junit, report, path)
    assert path.read_bytes().startswith(b'<?xml version="1.0" encoding="UTF-8"?>')
    return ET.parse(path).getroot()


@pytest.mark.parametrize("name", ["handmade", "synthetic"])
def test_junit_counts_match_the_report(name, request, tmp_path):
    report: Report = request.getfixturevalue(name)
    root = junit(report, tmp_path / "junit.xml")
    suites = {suite.get("name"): suite for suite in root.iter("testsuite")}
    assert list(suites) == [h.name for h in report.hosts]
    for host in report.hosts:
        suite = suites[host.name]
        cases = suite.findall("testcase")
        found = {
            kind: sum(1 for case in cases if case.find(kind) is not None) for kind in ("failure", "error", "skipped")
        }
        assert int(suite.get("tests")) == len(cases)
        assert {
            kind: int(suite.get(attr))
            for kind, attr in [("failure", "failures"), ("error", "errors"), ("skipped", "skipped")]
        } == found
        if host.status == "audited":
            counts = host.tally.counts
            assert len(cases) == sum(counts.values())
            assert found == {
                "failure": counts[Status.FAIL],
                "error": counts[Status.ERROR],
                "skipped": counts[Status.NOT_APPLICABLE] + counts[Status.WAIVED],
            }
        else:
            assert found == {"failure": 0, "error": 1, "skipped": 0}
    assert int(root.get("tests")) == sum(int(s.get("tests")) for s in suites.values())
    assert int(root.get("failures")) == report.overall.counts[Status.FAIL]


def test_junit_shows_waivers_expired_waivers_and_survives_hostile_text(handmade, tmp_path):
    root = junit(handmade, tmp_path / "junit.xml")
    cases = {(case.get("classname"), case.get("name")): case for case in root.iter("testcase")}
    waived = cases["medinfra.lis-legacy", "root_login_off: Root cannot log in over SSH"].find("skipped")
    assert waived is not None
    assert waived.get("message").startswith("waived until 2027-06-30 by CISO 王医生")
    failure = cases["medinfra.his-db", "root_login_off: Root cannot log in over SSH"].find("failure")
    assert failure is not None
    assert failure.get("message") == HOSTILE_SHOWN
    assert failure.get("type") == "high"
    assert "expired on 2026-01-31" in failure.text and "CIO 李主任" in failure.text
    assert '"sshd.permitrootlogin":"yes"' in failure.text
    assert cases["medinfra.his-db", "forwarding_off: IP forwarding is off"].find("error") is not None
    skipped = cases["medinfra.his-db", "audit_logging: auditd records logins"].find("skipped")
    assert skipped is not None and skipped.get("message").startswith("does not apply")
    his_db = root.find("testsuite[@name='his-db']")
    assert his_db is not None and his_db.get("timestamp") == "2026-11-22T08:00:00Z"  # not the host's "yesterday"
    unreachable = root.find("testsuite[@name='pacs-old']/testcase/error")
    assert unreachable is not None and "SSH: connection timed out" in unreachable.get("message")


def csv_rows(report: Report, path: Path) -> list[dict[str, str]]:
    written(write_csv, report, path)
    assert path.read_bytes().startswith(b"\xef\xbb\xbfhost,zone,control,")
    with path.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.DictReader(handle)
        assert tuple(reader.fieldnames or ()) == COLUMNS
        return list(reader)


def test_csv_round_trips_in_a_spreadsheet_safe_form(handmade, tmp_path):
    rows = {(row["host"], row["control"]): row for row in csv_rows(handmade, tmp_path / "findings.csv")}
    assert len(rows) == len(handmade.findings)
    waived = rows["lis-legacy", "root_login_off"]
    assert waived["title_zh"] == "禁止 root 通过 SSH 登录"
    assert (waived["status"], waived["waiver_approver"], waived["waiver_expires"]) == (
        "waived",
        "CISO 王医生",
        "2027-06-30",
    )
    assert (waived["waiver_risk"], waived["waiver_compensating_control"]) == ("high", WAIVER.compensating_control)
    assert (waived["hipaa"], waived["gbt22239"], waived["cis_debian12"]) == ("164.312(a)(1)", "8.1.4.1.a", "5.1.20")
    assert waived["remediation_variables"] == "baseline_hardening_sshd"
    expired = rows["his-db", "root_login_off"]
    assert (expired["status"], expired["expired_waiver"], expired["waiver_approver"]) == ("fail", "2026-01-31", "")
    assert expired["reason"] == HOSTILE_SHOWN
    injected = rows["lis-legacy", "audit_logging"]
    assert injected["reason"] == "'" + FORMULA
    assert json.loads(injected["evidence"]) == {"auditd.rules": FORMULA, "note": 'a "quoted", text\nline 2'}
    for row in rows.values():
        assert not any(value.startswith(("=", "+", "-", "@", "\t", "\r")) for value in row.values())


def test_csv_has_one_row_per_finding(synthetic, tmp_path):
    rows = csv_rows(synthetic, tmp_path / "findings.csv")
    assert len(rows) == len(synthetic.findings)
    assert [(r["host"], r["control"], r["status"]) for r in rows] == [
        (f.host, f.control, f.status.value) for f in synthetic.findings
    ]


def test_exports_are_private(handmade, tmp_path):
    for write in (write_oscal, write_junit, write_csv):
        path = written(write, handmade, tmp_path / write.__name__)
        assert stat.S_IMODE(path.stat().st_mode) == 0o640


@pytest.mark.parametrize("start", ["=", "+", "-", "@", "\t", "\r"])
def test_every_formula_start_is_neutralised(start):
    """OWASP's CSV injection starts; a carriage return is written as an escape before it gets there."""
    report = build_report(handmade_document())
    report = replace(report, findings=tuple(replace(f, reason=start + "1+1") for f in report.findings))
    rows = list(csv.DictReader(io.StringIO("".join(lines(report)), newline="")))
    assert [row["reason"] for row in rows] == ["'" + start + "1+1"] * len(report.findings)
    document = handmade_document()
    document["findings"][0]["reason"] = start + "1+1"
    shown = next(csv.DictReader(io.StringIO("".join(lines(build_report(document))), newline="")))["reason"]
    assert shown == ("\\x0d1+1" if start == "\r" else "'" + start + "1+1")
