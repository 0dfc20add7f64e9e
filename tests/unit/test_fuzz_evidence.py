"""Fuzzing what a host sends back: random and mutated collector outputs, from recorded evidence of lab hosts,
through the transport's parsing (parse_output, host_result) and the evaluator with the real catalog.

No exception escapes; every host ends audited, unreachable or error; every finding is pass, fail, error or
not_applicable; and a fact that becomes malformed (a list or mapping where one value was recorded, or one value
where a list or mapping was) never turns a recorded failure into a pass. (The check language treats "3" and 3
alike, and quantifies over lists and mappings alike, so those swaps are other values, not malformed ones.)
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from medinfra.audit.received import ProgramOutput, program_result
from medinfra.audit.results import HOST_STATES, HostResult, judge
from medinfra.compliance.catalog import load_catalog
from medinfra.compliance.model import Catalog, Finding, Status
from medinfra.package_data import CATALOG_DIR

FIXTURES = Path(__file__).parent / "compliance" / "fixtures"
RECORDED = FIXTURES / "evidence-his-app.json"
FAILING = FIXTURES / "evidence-lis-legacy.json"  # a legacy host: 52 controls fail on its recorded evidence
NOW = datetime(2026, 12, 5, tzinfo=UTC)
FINDING_STATES = {Status.PASS, Status.FAIL, Status.ERROR, Status.NOT_APPLICABLE}
SECRET = "fuzz-Secret-4Kq9"
FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])

Path_ = tuple[str | int, ...]


@cache
def catalog() -> Catalog:
    return load_catalog(CATALOG_DIR)


@cache
def recorded_text(fixture: Path = RECORDED) -> bytes:
    return fixture.read_bytes()


def recorded(fixture: Path = RECORDED) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(recorded_text(fixture))
    return document


def judged(output: ProgramOutput, controls: Catalog | None = None) -> tuple[HostResult, list[Finding]]:
    result = program_result("fuzzed", output, 0.1, (SECRET,))
    return result, judge([result], {"fuzzed": {}}, controls or catalog(), (), NOW)


def assert_documented(result: HostResult, findings: list[Finding]) -> None:
    assert result.status in HOST_STATES
    assert (result.evidence is None) == (result.status != "audited")
    assert {f.status for f in findings} <= FINDING_STATES
    assert SECRET not in result.reason


@cache
def recorded_failures() -> Catalog:
    """The controls that fail on the failing host's recorded evidence (the only ones the property is about)."""
    _, findings = judged(ProgramOutput(recorded_text(FAILING), b"", 0))
    failing = {f.control for f in findings if f.status == Status.FAIL}
    assert len(failing) > 40
    return Catalog(tuple(c for c in catalog().controls if c.id in failing), catalog().frameworks)


def value_paths(value: Any, path: Path_ = ()) -> list[Path_]:
    """The path of every value below `value`, containers included."""
    below: list[Path_] = []
    if isinstance(value, dict):
        below = [p for key, item in value.items() for p in value_paths(item, (*path, key))]
    elif isinstance(value, list):
        below = [p for index, item in enumerate(value) for p in value_paths(item, (*path, index))]
    return [path, *below] if path else below


@cache
def fact_paths(fixture: Path = RECORDED) -> list[Path_]:
    return [("facts", *p) for p in value_paths(recorded(fixture)["facts"])]


def value_at(document: Any, path: Path_) -> Any:
    for part in path:
        document = document[part]
    return document


def replaced(document: dict[str, Any], path: Path_, value: Any) -> dict[str, Any]:
    value_at(document, path[:-1])[path[-1]] = value
    return document


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=12,
)
single_values = st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20)
containers = st.lists(json_values, max_size=3) | st.dictionaries(st.text(max_size=8), json_values, max_size=3).filter(
    lambda mapping: set(mapping) != {"unavailable"}
)


@FUZZ
@given(
    st.one_of(
        st.binary(max_size=300),
        st.integers(0, len(recorded_text())).map(lambda cut: recorded_text()[:cut]),
        st.tuples(st.integers(0, len(recorded_text()) - 1), st.integers(0, 255)).map(
            lambda flip: recorded_text()[: flip[0]] + bytes([flip[1]]) + recorded_text()[flip[0] + 1 :]
        ),
        json_values.map(lambda value: json.dumps(value).encode()),
    ),
    st.binary(max_size=200),
    st.integers(-1, 255),
)
def test_random_and_damaged_output_ends_in_a_documented_result(stdout: bytes, stderr: bytes, status: int) -> None:
    result, findings = judged(ProgramOutput(stdout, stderr + SECRET.encode(), status))
    assert_documented(result, findings)


@FUZZ
@given(st.sampled_from(fact_paths()), json_values)
def test_a_fact_replaced_by_any_json_value_ends_in_documented_findings(path: Path_, value: Any) -> None:
    document = replaced(recorded(), path, value)
    result, findings = judged(ProgramOutput(json.dumps(document).encode(), b"", 0))
    assert result.status == "audited"
    assert_documented(result, findings)


@settings(FUZZ, max_examples=100)
@given(st.sampled_from(fact_paths(FAILING)), st.data())
def test_a_malformed_fact_never_turns_a_recorded_failure_into_a_pass(path: Path_, data: st.DataObject) -> None:
    original = value_at(recorded(FAILING), path)
    malformed = data.draw(single_values if isinstance(original, dict | list) else containers)
    document = replaced(recorded(FAILING), path, malformed)
    _, findings = judged(ProgramOutput(json.dumps(document).encode(), b"", 0), recorded_failures())
    passing = [f.control for f in findings if f.status == Status.PASS]
    assert not passing, f"{path}: {original!r} -> {malformed!r} makes {passing} pass"


@pytest.mark.parametrize(
    ("path", "malformed"),
    [  # what the property found before the check language judged malformed values as errors
        (("facts", "chrony", "sources", 0), ["2.debian.pool.ntp.org"]),  # `none: matches` over an item
        (("facts", "files", "/home/medinfra"), "x"),  # `where: path matches` reaching into text
        (("facts", "pam", "pam_unix_args"), "x"),  # `not_contains` on text
        (("facts", "pam", "pam_unix_args", 0), ["nullok"]),  # `not_contains` over a list in the list
    ],
)
def test_malformations_that_once_passed(path: Path_, malformed: Any) -> None:
    document = replaced(recorded(FAILING), path, malformed)
    _, findings = judged(ProgramOutput(json.dumps(document).encode(), b"", 0), recorded_failures())
    assert not [f.control for f in findings if f.status == Status.PASS]
