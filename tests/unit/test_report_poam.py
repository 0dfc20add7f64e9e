"""The OSCAL POA&M of a run's open items: NIST's schema, one item per open control, due dates, links, hostile text."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from medinfra.report.oscal import OSCAL_FILE, write_oscal
from medinfra.report.poam import POAM_FILE, poam_document, write_poam
from medinfra.safe_output import OutputDirectory
from tests.oscal_schema import POAM_SCHEMA_NAME, oscal_validator
from tests.unit.fix.test_next_steps import HOSTILE, NOW, lab_topology, open_report
from tests.unit.fix.test_plan import report


def written(tmp_path: Path) -> tuple[dict[str, Any], dict[str, Any], str]:
    """The POA&M and the assessment results of the same run, as written side by side, and the POA&M's text."""
    run = open_report()
    with OutputDirectory.open(tmp_path) as out:
        write_oscal(run, out, OSCAL_FILE)
        write_poam(run, out, POAM_FILE, lab_topology(), NOW)
    text = (tmp_path / POAM_FILE).read_text(encoding="utf-8")
    results = json.loads((tmp_path / OSCAL_FILE).read_text(encoding="utf-8"))
    return json.loads(text)["plan-of-action-and-milestones"], results["assessment-results"], text


def prop(record: dict[str, Any], name: str) -> list[str]:
    return [p["value"] for p in record.get("props", ()) if p["name"] == name]


def test_schema_is_nist_poam_1_0_6() -> None:
    assert oscal_validator(POAM_SCHEMA_NAME).schema["$id"] == "http://csrc.nist.gov/ns/oscal/1.0.6/oscal-poam-schema.json"


def test_poam_validates_with_one_item_per_open_control_and_its_hosts(tmp_path: Path) -> None:
    poam, _, _ = written(tmp_path)
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in oscal_validator(POAM_SCHEMA_NAME).iter_errors(
        {"plan-of-action-and-milestones": poam})]
    assert errors == []
    items = {prop(item, "control")[0]: item for item in poam["poam-items"]}
    assert list(items) == ["pam_stack", "ssh_root", "sysctl_fwd", "secure_boot"]  # his-db's pam_stack is waived
    assert prop(items["ssh_root"], "host") == ["his-app", "his-db", "lis-legacy", "ws-01"]
    assert [prop(items[c], "remediation")[0] for c in items] == ["medinfra-fix", "partial", "medinfra-fix", "manual"]
    assert prop(items["pam_stack"], "remediation-tags") == ["auth"]
    # Owner and due date: the expired waiver's approver, overdue; else the SLA rule (fix.next_steps).
    assert [(prop(items[c], "owner"), prop(items[c], "due"), prop(items[c], "overdue")) for c in items] == [
        (["site operations"], ["2026-12-08"], ["true"]),
        (["CIO"], ["2026-01-31"], ["true"]),
        (["site operations"], ["2027-03-01"], ["false"]),
        (["site operations"], ["2027-05-30"], ["false"]),
    ]
    risks = {r["uuid"]: r for r in poam["risks"]}
    ssh_risk = risks[items["ssh_root"]["related-risks"][0]["risk-uuid"]]
    assert ssh_risk["status"] == "open" and ssh_risk["deadline"] == "2026-01-31T23:59:59Z"
    assert ssh_risk["characterizations"][0]["facets"][0]["value"] == "high"
    fix, manual = ssh_risk["remediations"]
    assert prop(fix, "remediation-role") == ["baseline_hardening"] and prop(manual, "host") == ["lis-legacy"]
    owner = fix["tasks"][0]["responsible-roles"][0]["party-uuids"]
    assert [p["name"] for p in poam["metadata"]["parties"] if p["uuid"] in owner] == ["CIO"]
    # Hosts are inventory items with their SLA class from the topology.
    inventory = {prop(i, "host")[0]: i for i in poam["local-definitions"]["inventory-items"]}
    assert prop(inventory["his-app"], "sla-class") == ["24x7-critical"]
    assert prop(inventory["lis-legacy"], "legacy") == ["true"]
    # The bilingual remediation text.
    assert items["pam_stack"]["remarks"] == "fix\n\n修复"


def test_links_resolve_to_the_observations_of_the_same_runs_assessment_results(tmp_path: Path) -> None:
    poam, results, _ = written(tmp_path)
    result_observations = {o["uuid"]: o for o in results["results"][0]["observations"]}
    own = {o["uuid"]: o for o in poam["observations"]}
    for item in poam["poam-items"]:
        for ref in item["related-observations"]:
            # The same observation, byte for byte, in both documents.
            assert own[ref["observation-uuid"]] == result_observations[ref["observation-uuid"]]
        link = item["links"][0]["href"]
        resource = next(r for r in poam["back-matter"]["resources"] if f"#{r['uuid']}" == link)
        assert (tmp_path / resource["rlinks"][0]["href"]).is_file()
        assert prop(resource, "assessment-results-uuid") == [results["uuid"]]
    ssh = next(i for i in poam["poam-items"] if prop(i, "control") == ["ssh_root"])
    assert {result_observations[r["observation-uuid"]]["title"] for r in ssh["related-observations"]} == {
        f"ssh_root on {host}" for host in ("his-app", "his-db", "lis-legacy", "ws-01")
    }


def test_hostile_finding_text_is_neutralised_as_in_the_assessment_results(tmp_path: Path) -> None:
    poam, results, text = written(tmp_path)
    assert "\x01" not in text
    shown = HOSTILE.replace("\x01", "\\x01")
    observation = next(o for o in poam["observations"] if o["title"] == "sysctl_fwd on ws-01")
    assert observation["description"] == shown
    assert observation == next(o for o in results["results"][0]["observations"] if o["uuid"] == observation["uuid"])


def test_the_same_run_gives_the_same_document_at_the_same_time_and_nothing_open_still_validates() -> None:
    run, topology = open_report(), lab_topology()
    now = poam_document(run, topology, NOW)
    assert now == poam_document(run, topology, NOW)
    later = poam_document(run, topology, datetime(2027, 2, 1, tzinfo=UTC))["plan-of-action-and-milestones"]
    assert later["uuid"] != now["plan-of-action-and-milestones"]["uuid"]
    assert later["poam-items"] == now["plan-of-action-and-milestones"]["poam-items"]  # nothing became overdue
    empty = poam_document(report([]), None, NOW)
    assert list(oscal_validator(POAM_SCHEMA_NAME).iter_errors(empty)) == []
    assert [i["title"] for i in empty["plan-of-action-and-milestones"]["poam-items"]] == ["Nothing open"]
