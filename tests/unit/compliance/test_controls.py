"""The control catalog against real evidence: every control passes and fails where it should.

Cases live in control_cases.yml: a fixture (a real evidence document) plus overrides, and optionally
the `site` tree the evaluator's pre-pass would compute. Each control must have at least one passing
and one failing case, so that no check can pass or fail vacuously.
"""

from __future__ import annotations

import copy
import json
from datetime import datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from medinfra.compliance.catalog import load_catalog
from medinfra.compliance.evaluate import evaluate_control, evidence_root
from medinfra.compliance.model import Catalog, HostEvidence, Status

HERE = Path(__file__).parent
FIXTURES = HERE / "fixtures"
CASES_FILE = HERE / "control_cases.yml"
DEFAULT_INVENTORY = {"services": [], "legacy": False}
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


def apply_overrides(evidence: dict[str, Any], case: dict[str, Any]) -> dict[str, Any]:
    document = copy.deepcopy(evidence)
    facts = document["facts"]
    for change in case.get("set", []):
        node, key = parent_of(facts, change["path"])
        node[key] = copy.deepcopy(change["value"])
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
    host = HostEvidence(case["base"], apply_overrides(evidence, case), case.get("inventory", DEFAULT_INVENTORY))
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
