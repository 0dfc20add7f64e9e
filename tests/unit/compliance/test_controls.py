"""The control catalog against real evidence: every control passes and fails where it should.

Cases live in control_cases.yml: a fixture (a real evidence document) plus overrides, and optionally
the `site` tree the evaluator's pre-pass would compute. A case can also take a host tree recorded from a
lab host (tests/unit/fixtures/hosts), change its files the way an attacker would, and have the collector's
own parsers read it again (`tree:`), or take a ruleset that nft itself printed (`nft:`), so the corpus of
non-compliant configurations goes through the parsers and the evaluator, not only through the evaluator.
Each control must have at least one passing and one failing case, so that no check can pass or fail
vacuously.
"""

from __future__ import annotations

import copy
import json
import shutil
import tempfile
from datetime import datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from medinfra.audit.targets import inventory_view
from medinfra.collector import collector_module
from medinfra.compliance.catalog import load_catalog
from medinfra.compliance.evaluate import evaluate_control, evidence_root
from medinfra.compliance.model import Catalog, HostEvidence, Status
from medinfra.inventory import build_inventory
from medinfra.topology.load import load_topology
from tests.conftest import LAB_TOPOLOGY

HERE = Path(__file__).parent
FIXTURES = HERE / "fixtures"
HOST_TREES = HERE.parent / "fixtures" / "hosts"
NFT_RULESETS = HERE.parent / "fixtures" / "nft"
CASES_FILE = HERE / "control_cases.yml"
# The lab's zones, as the inventory gives them to every host (the firewall probes are drawn from them).
LAB_ZONES = [
    {"name": "mgmt", "cidr": "10.231.10.0/24", "purpose": "mgmt"},
    {"name": "his", "cidr": "10.231.20.0/24", "purpose": "his"},
    {"name": "pacs", "cidr": "10.231.30.0/24", "purpose": "pacs"},
    {"name": "dmz", "cidr": "10.231.40.0/24", "purpose": "dmz"},
    {"name": "clinical", "cidr": "10.231.50.0/24", "purpose": "clinical"},
    {"name": "guest", "cidr": "10.231.60.0/24", "purpose": "guest"},
]
DEFAULT_INVENTORY = {"services": [], "legacy": False, "zone": "his", "zones": LAB_ZONES}
LAB_INVENTORY = build_inventory(load_topology(LAB_TOPOLOGY))
collector = collector_module()
KINDS = ("pass", "fail", "not_applicable", "error")
# Coverage kinds each framework must use: HIPAA and GB/T mix all three; the CIS list holds only what controls cover.
EXPECTED_COVERAGE = {
    "hipaa": {"partial", "manual"},
    "gbt22239": {"automated", "partial", "manual"},
    "cis_debian12": {"automated", "partial"},
}


def load_cases() -> dict[str, dict[str, list[dict[str, Any]]]]:
    data = yaml.safe_load(CASES_FILE.read_text(encoding="utf-8"))
    # Keys starting with "x-" only hold YAML anchors shared by the cases.
    return {name: kinds for name, kinds in data.items() if not name.startswith("x-")}


CASES = load_cases()


@cache
def catalog() -> Catalog:
    return load_catalog()


def lab_inventory(host: str) -> dict[str, Any]:
    """The host's view as the hospital inventory plugin gives it for the lab (`inventory: lab` in a case)."""
    groups = sorted(name for name, members in LAB_INVENTORY.groups.items() if host in members)
    return inventory_view({**LAB_INVENTORY.all_vars, **LAB_INVENTORY.host_vars[host], "group_names": groups})


def case_inventory(case: dict[str, Any]) -> dict[str, Any]:
    inventory = case.get("inventory", DEFAULT_INVENTORY)
    return lab_inventory(case["base"]) if inventory == "lab" else dict(inventory)


@cache
def fixture(base: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((FIXTURES / f"evidence-{base}.json").read_text(encoding="utf-8"))
    return loaded


def audit_time(evidence: dict[str, Any]) -> datetime:
    """A fixed clock: one day after the evidence was collected."""
    collected = datetime.fromisoformat(evidence["collected_at"].replace("Z", "+00:00"))
    return collected + timedelta(days=1)


def parent_of(facts: dict[str, Any], path: list[Any]) -> tuple[Any, Any]:
    node: Any = facts
    for part in path[:-1]:
        node = node.setdefault(part, {}) if isinstance(node, dict) else node[part]
    return node, path[-1]


def edit_tree(root: Path, edits: list[dict[str, Any]]) -> None:
    """Change recorded files: `write` a file, `prepend` or `append` a line, `replace` [old, new] (which must occur)."""
    for edit in edits:
        path = root / edit["file"].lstrip("/")
        path.parent.mkdir(parents=True, exist_ok=True)
        text = path.read_text(encoding="utf-8") if path.exists() else ""
        if "write" in edit:
            text = edit["write"]
        elif "prepend" in edit:
            text = edit["prepend"] + "\n" + text
        elif "append" in edit:
            text = text + edit["append"] + "\n"
        else:
            old, new = edit["replace"]
            assert old in text, f"{edit['file']}: {old!r} not found"
            text = text.replace(old, new)
        path.write_text(text, encoding="utf-8")


def reread(facts: dict[str, Any], section: str, root: str) -> None:
    """One section of the evidence as the collector's parsers read it from a host tree."""
    if section == "pam":
        facts["pam"] = collector.collect_pam(root)
    elif section == "sudo":
        facts["sudo"] = collector.collect_sudo(root)
    elif section == "shell":
        facts["shell"] = collector.collect_shell(root)
    elif section == "audit_rules":
        on_disk = collector.audit_rules_on_disk(root)
        facts["auditd"].update(rules_on_disk=on_disk, effective=collector.rules_d_effective(on_disk))
    elif section == "rsyslog":
        facts["logging"]["forwards"] = collector.rsyslog_forwards(root)
    elif section == "apt":
        facts["updates"].update(collector.apt_settings(root))
    else:
        raise AssertionError(f"no parser for section {section!r}")


def read_tree(facts: dict[str, Any], tree: dict[str, Any]) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch) / "root"
        shutil.copytree(HOST_TREES / tree["host"] / "root", root, symlinks=True)
        edit_tree(root, tree.get("edit", []))
        for section in tree["sections"]:
            reread(facts, section, str(root))


def nft_facts(name: str) -> Any:
    """The nftables section from a ruleset nft printed (`nft -j list ruleset`; for a table with flags, the table's
    `nft list table` text beside it, as the collector reads them)."""
    printed = (NFT_RULESETS / f"{name}.json").read_text(encoding="utf-8")
    table_text = NFT_RULESETS / f"{name}.table.txt"
    flags = {}
    if table_text.exists():
        for item in json.loads(printed)["nftables"]:
            if "flags" in item.get("table", {}):
                flags[(item["table"]["family"], item["table"]["name"])] = collector.table_flags(table_text.read_text())
    return collector.nftables_facts(printed, flags)


def apply_overrides(evidence: dict[str, Any], case: dict[str, Any]) -> dict[str, Any]:
    document = copy.deepcopy(evidence)
    facts = document["facts"]
    if "tree" in case:
        read_tree(facts, case["tree"])
    if "nft" in case:
        facts["nftables"] = nft_facts(case["nft"])
    for change in case.get("set", []):
        node, key = parent_of(facts, change["path"])
        node[key] = copy.deepcopy(change["value"])
    if "match_connection" in case:
        # A connection a Match block singles out: the default settings, with what the block changes.
        extra = case["match_connection"]
        defaults = facts["sshd"]["connections"][0]["settings"]
        facts["sshd"]["connections"].append(
            {"connection": extra["connection"], "settings": {**defaults, **extra["settings"]}}
        )
    for path in case.get("remove", []):
        node, key = parent_of(facts, path)
        del node[key]  # a KeyError here means the case removes something the fixture does not have
    return document


def case_params() -> list[Any]:
    params = []
    for control_id, kinds in CASES.items():
        for kind in KINDS:
            for index, case in enumerate(kinds.get(kind, [])):
                params.append(pytest.param(control_id, kind, case, id=f"{control_id}-{kind}-{index}"))
    return params


@pytest.mark.parametrize(("control_id", "expected", "case"), case_params())
def test_control_case(control_id, expected, case):
    control = catalog().by_id()[control_id]
    evidence = fixture(case["base"])
    host = HostEvidence(case["base"], apply_overrides(evidence, case), case_inventory(case))
    root = evidence_root(host, case.get("site"))
    assert root is not None
    finding = evaluate_control(control, host, root, [], audit_time(evidence))
    assert finding.status is Status(expected), f"{control_id}: {finding.status.value}: {finding.reason}"


def test_cases_name_only_known_controls_and_kinds():
    known = set(catalog().by_id())
    assert sorted(set(CASES) - known) == []
    for control_id, kinds in CASES.items():
        assert set(kinds) <= set(KINDS), control_id


@pytest.mark.parametrize("control_id", sorted(c.id for c in catalog().controls))
def test_every_control_has_a_passing_and_a_failing_case(control_id):
    kinds = CASES.get(control_id, {})
    assert kinds.get("pass"), f"{control_id} has no passing case"
    assert kinds.get("fail"), f"{control_id} has no failing case"


def test_catalog_loads_with_enough_controls():
    assert len(catalog().controls) >= 50
    assert set(catalog().frameworks) == set(EXPECTED_COVERAGE)


def test_every_control_speaks_english_and_chinese():
    for control in catalog().controls:
        for text in (control.title, control.description, control.rationale, control.remediation.text):
            assert text.en.strip(), control.id
            assert any("\u4e00" <= char <= "\u9fff" for char in text.zh), control.id


def test_every_control_maps_to_hipaa_or_gbt22239():
    for control in catalog().controls:
        assert control.references["hipaa"] or control.references["gbt22239"], control.id


@pytest.mark.parametrize("framework", sorted(EXPECTED_COVERAGE))
def test_frameworks_use_each_coverage_kind(framework):
    clauses = catalog().frameworks[framework].clauses
    assert {clause.coverage for clause in clauses} >= EXPECTED_COVERAGE[framework]
    for clause in clauses:
        if clause.coverage != "automated":
            assert clause.note is not None, f"{framework} {clause.id}: partial and manual clauses say what remains"


def test_automated_and_partial_clauses_are_covered_and_not_covered_ones_are_not():
    for name, framework in catalog().frameworks.items():
        for clause in framework.clauses:
            covering = catalog().covering(name, clause.id)
            if clause.coverage in ("automated", "partial"):
                assert covering, f"{name} {clause.id}"
            if clause.coverage == "not_covered":
                assert not covering, f"{name} {clause.id}"


def test_the_compliance_readme_counts_coverage_from_the_data():
    readme = (HERE.parents[2] / "compliance" / "README.md").read_text(encoding="utf-8")
    table = readme.split("<!-- coverage-table -->", 1)[1].split("<!-- /coverage-table -->", 1)[0]
    kinds = ("automated", "partial", "manual", "not_covered")
    expected = []
    for name in sorted(catalog().frameworks):
        clauses = catalog().frameworks[name].clauses
        counts = [sum(clause.coverage == kind for clause in clauses) for kind in kinds]
        expected.append(f"| {name} | {len(clauses)} | " + " | ".join(str(n) for n in counts) + " |")
    assert [line for line in table.splitlines() if line.startswith("| ") and "---" not in line][1:] == expected
