"""The evidence and findings documents have JSON Schemas; the catalog refuses a fact path the evidence cannot hold."""

from __future__ import annotations

import json
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from medinfra.audit.results import AuditRun, HostResult, findings_document, judge
from medinfra.collector import collector_program, default_paths
from medinfra.compliance.catalog import load_catalog, schema, schema_registry
from medinfra.compliance.evidence_schema import EACH, SchemaTree, missing_fact_paths, path_exists, show
from medinfra.compliance.model import Catalog
from tests.unit.compliance.test_catalog_errors import control, problems, write_catalog
from tests.unit.compliance.test_controls import DEFAULT_INVENTORY, FIXTURES, audit_time, fixture

BASES = sorted(path.name.removeprefix("evidence-").removesuffix(".json") for path in FIXTURES.glob("evidence-*.json"))


@cache
def validator(name: str) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(schema(name), registry=schema_registry())


def schema_errors(name: str, document: dict[str, Any]) -> list[str]:
    return [f"{list(e.absolute_path)}: {e.message[:200]}" for e in validator(name).iter_errors(document)]


@pytest.mark.parametrize("base", BASES)
def test_recorded_lab_evidence_is_valid(base: str) -> None:
    assert schema_errors("evidence", fixture(base)) == []


def test_the_collector_run_here_writes_valid_evidence() -> None:
    """This machine is no lab host: most sections come out unavailable, and those must be valid too."""
    done = subprocess.run(
        [sys.executable, "-"], input=collector_program(default_paths()), capture_output=True, text=True, check=True,
        timeout=120,
    )
    assert schema_errors("evidence", json.loads(done.stdout)) == []


def test_the_evidence_schema_rejects_what_the_collector_never_writes() -> None:
    evidence = json.loads(json.dumps(fixture("his-app")))
    evidence["facts"]["sshd"]["connections"][0]["settings"]["permitrootlogin"] = ["no"]
    evidence["facts"]["shadow_stuff"] = {}
    del evidence["collected_at"]
    errors = " | ".join(schema_errors("evidence", evidence))
    assert "'collected_at' is a required property" in errors
    assert "shadow_stuff" in errors
    assert "['facts', 'sshd']" in errors  # the list where sshd -T prints one word


def real_run(catalog: Catalog) -> AuditRun:
    """The real catalog judged on the recorded lab hosts, with one host unreachable."""
    results = [HostResult(base, "audited", "", fixture(base), 0.2) for base in BASES]
    results.append(HostResult("pacs-01", "unreachable", "SSH: connection refused", None, 0.1))
    views = {result.host: {**DEFAULT_INVENTORY, "groups": ["zone_his"], "site": "lab"} for result in results}
    now = audit_time(fixture("his-app"))
    return AuditRun("pyinfra", "inventories/lab", now, results, judge(results, views, catalog, (), now), catalog, (),
                    1.5, views=views)


def test_findings_of_the_real_catalog_are_valid() -> None:
    document = findings_document(real_run(load_catalog()))
    statuses = {finding["status"] for finding in document["findings"]}
    assert {"pass", "fail", "not_applicable"} <= statuses  # the document exercises more than one shape of finding
    assert schema_errors("findings", document) == []
    document["findings"][0]["status"] = "passed"
    del document["summary"]
    errors = " | ".join(schema_errors("findings", document))
    assert "'summary' is a required property" in errors and "'passed' is not one of" in errors


def test_every_fact_path_of_the_catalog_is_in_the_evidence_schema() -> None:
    for item in load_catalog().controls:
        data = {"check": item.check, **({"applies_when": item.applies_when} if item.applies_when else {})}
        assert missing_fact_paths(data) == [], item.id


def test_a_misspelt_fact_path_is_located_and_explained(tmp_path: Path) -> None:
    check = "  fact: sshd.connections\n  every:\n    fact: settings.permitrootlogn\n    equals: \"no\"\n"
    text = control(check=check)
    root = write_catalog(tmp_path, {"root_login": text})
    line = next(n for n, row in enumerate(text.splitlines(), 1) if "permitrootlogn" in row)
    assert problems(root) == [
        f"{root / 'controls' / 'root_login.yml'}:{line}: check.every.fact: fact path "
        "sshd.connections[*].settings.permitrootlogn is not in the evidence schema: 'permitrootlogn' is not a key of "
        "sshd.connections[*].settings (did you mean 'permitrootlogin'?)"
    ]


@pytest.mark.parametrize(
    ("check", "expected"),
    [
        ({"fact": "sshd_config.permitrootlogin", "equals": "no"},
         "'sshd_config' is neither a section of the evidence nor inventory, derived or site"),
        ({"fact": "host.hostname.short", "equals": "x"}, "host.hostname is a single value, it has no key 'short'"),
        ({"fact": "sshd.connections.settings", "equals": "x"},
         "sshd.connections is a list: quantify over it (every, some, none) rather than naming 'settings'"),
        ({"fact": "host.hostname", "every": {"fact": "x", "equals": 1}},
         "every over host.hostname, which the evidence schema has as neither a list nor a mapping"),
    ],
)
def test_paths_that_cannot_exist_say_why(check: dict[str, Any], expected: str) -> None:
    [missing] = missing_fact_paths({"check": check})
    assert expected in missing.message


def test_branches_the_evaluator_adds_and_open_mappings_are_paths() -> None:
    assert path_exists(("inventory", "services"))
    assert path_exists(("derived", "firewall", "input_probes"))
    assert path_exists(("sysctl", "net.ipv4.ip_forward"))  # sysctl keys are the kernel's, any name
    assert not path_exists(("inventory", "servces"))


def test_schema_tree_follows_refs_combinators_and_closed_objects() -> None:
    document = {
        "$defs": {
            "check_tree": {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    "a": {"$ref": "#/$defs/either"},
                    "listed": {"type": "object", "x-listed-keys-only": True, "properties": {"k": {"type": "string"}},
                               "additionalProperties": {"type": "string"}},
                    "gone": {"$ref": "#/$defs/unavailable"},
                },
            },
            "either": {"anyOf": [{"type": "object", "additionalProperties": False,
                                  "properties": {"x": {"type": "integer"}}},
                                 {"type": "array", "items": {"type": "object", "additionalProperties": False,
                                                             "properties": {"y": {"type": "string"}}}}]},
            "unavailable": {"type": "object", "properties": {"unavailable": {"type": "string"}}},
        }
    }
    tree = SchemaTree(document)
    assert tree.has(("a", "x")) and tree.has(("a", EACH, "y")) and tree.has(("a", 0, "y"))
    assert not tree.has(("a", EACH, "z"))
    assert tree.has(("listed", "k")) and not tree.has(("listed", "other"))
    assert not tree.has(("gone", "unavailable"))  # nothing is read through the unavailable object
    assert not tree.has(("b",))
    assert show(("a", EACH, "y")) == "a[*].y"
