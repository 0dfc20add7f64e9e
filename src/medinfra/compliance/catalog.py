"""Load the control catalog and the frameworks: YAML -> JSON Schema -> cross-checks -> Catalog.

Every problem names its file, its line and the path inside it; all problems are reported at once.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from datetime import date
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
from referencing import Registry, Resource

from medinfra.compliance.checks import nested_repetition, operator_schema
from medinfra.compliance.evidence_schema import missing_fact_paths
from medinfra.compliance.model import (
    FRAMEWORKS,
    Bilingual,
    Catalog,
    Clause,
    Control,
    Framework,
    Remediation,
    Waiver,
)
from medinfra.package_data import CATALOG_DIR
from medinfra.problems import DocPath, Problem, UserInputError
from medinfra.runbook import RUNBOOK_SCHEMA_ID, build_runbook, runbook_schema
from medinfra.yamldoc import YamlDocument, load_yaml, validation_problems

SCHEMA_DIR = CATALOG_DIR / "schemas"


@cache
def schema_registry() -> Registry:
    resources = []
    for path in sorted(SCHEMA_DIR.glob("*.schema.json")):
        contents = schema(path.name.removesuffix(".schema.json"))
        resources.append((contents["$id"], Resource.from_contents(contents)))
        resources.append((path.name, Resource.from_contents(contents)))
    # A control's `runbook` block is the runbook format's, which lives with medinfra's own schemas.
    resources.append((RUNBOOK_SCHEMA_ID, Resource.from_contents(runbook_schema())))
    registry: Registry = Registry().with_resources(resources)
    return registry


@cache
def schema(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((SCHEMA_DIR / f"{name}.schema.json").read_text(encoding="utf-8"))
    if name == "control":
        # The check language's operators live in one place, its registry, which gives their part of the schema.
        alternatives, arguments = operator_schema()
        check = loaded["$defs"]["check"]
        check["oneOf"] = [*check["oneOf"], *alternatives]
        check["properties"] = {**check["properties"], **arguments}
    return loaded


def schema_problems(document: YamlDocument, name: str) -> list[Problem]:
    validator = jsonschema.Draft202012Validator(schema(name), registry=schema_registry())
    # oneOf failures in the check language are clearer from their most specific cause; an anyOf of
    # `required` alternatives (a waiver's hosts or groups) is clearer said as such.
    errors = (
        jsonschema.exceptions.best_match([error]) if error.context and not alternatives(error) else error
        for error in validator.iter_errors(document.data)
    )
    return validation_problems(document, errors, lambda error: alternatives(error) or error.message)


def alternatives(error: jsonschema.ValidationError) -> str:
    """"needs 'a' or 'b'" when the error is an anyOf whose branches each require a property, else ""."""
    if error.validator != "anyOf" or not all(c.validator == "required" for c in error.context):
        return ""
    required: list[Any] = [name for c in error.context for name in c.schema.get("required", ())]  # type: ignore[union-attr]
    names = list(dict.fromkeys(str(name) for name in required))
    return "needs " + " or ".join(repr(name) for name in names)


def bilingual(data: Mapping[str, str]) -> Bilingual:
    return Bilingual(en=data["en"], zh=data["zh"])


def walk_checks(check: Mapping[str, Any], path: DocPath) -> Iterator[tuple[DocPath, Mapping[str, Any]]]:
    yield path, check
    for key in ("all", "any"):
        for index, inner in enumerate(check.get(key, [])):
            yield from walk_checks(inner, (*path, key, index))
    for key in ("not", "every", "some", "none", "where"):
        if key in check:
            yield from walk_checks(check[key], (*path, key))


def control_problems(document: YamlDocument, expected_id: str) -> list[Problem]:
    data = document.data
    problems = []
    if data["id"] != expected_id:
        problems.append(document.problem(("id",), f"id {data['id']!r} must match the file name {expected_id!r}"))
    for root in ("check", "applies_when"):
        if root not in data:
            continue
        for path, check in walk_checks(data[root], (root,)):
            for key in ("matches", "not_matches"):
                if key in check:
                    try:
                        re.compile(check[key])
                    except re.error as exc:
                        problems.append(document.problem((*path, key), f"invalid regular expression: {exc}"))
                        continue
                    if nested_repetition(check[key]):
                        message = ("a repeat inside an unbounded repeat can take exponential time on evidence built "
                                   "to fail it; rewrite it without the nesting")
                        problems.append(document.problem((*path, key), message))
    # A fact path the evidence schema (compliance/schemas/evidence.schema.json) lacks reads nothing on any host.
    problems.extend(document.problem(missing.where, missing.message) for missing in missing_fact_paths(data))
    return problems


def build_control(document: YamlDocument) -> Control:
    data = document.data
    remediation = data["remediation"]
    return Control(
        id=data["id"],
        title=bilingual(data["title"]),
        description=bilingual(data["description"]),
        rationale=bilingual(data["rationale"]),
        severity=data["severity"],
        area=data["area"],
        check=data["check"],
        applies_when=data.get("applies_when"),
        remediation=Remediation(
            role=remediation["role"],
            variables=tuple(remediation.get("variables", ())),
            text=Bilingual(en=remediation["en"], zh=remediation["zh"]),
            tags=tuple(remediation.get("tags", ())),
            manual=remediation.get("manual", False),
            with_services=tuple(remediation.get("with_services", ())),
        ),
        references={name: tuple(data["references"].get(name, ())) for name in FRAMEWORKS},
        source=document.file,
        runbook=build_runbook(data["runbook"], data["id"], "control", document.file) if "runbook" in data else None,
    )


def build_framework(data: Mapping[str, Any]) -> Framework:
    return Framework(
        id=data["id"],
        title=bilingual(data["title"]),
        source=data["source"],
        clauses=tuple(
            Clause(
                id=clause["id"],
                title=bilingual(clause["title"]),
                coverage=clause["coverage"],
                note=bilingual(clause["note"]) if "note" in clause else None,
                evaluation_unit=clause.get("evaluation_unit"),
            )
            for clause in data["clauses"]
        ),
    )


def load_documents(directory: Path, schema_name: str) -> tuple[list[YamlDocument], list[Problem]]:
    documents, problems = [], []
    files = sorted(directory.glob("*.yml"))
    if not files:
        problems.append(Problem(str(directory), (), "no *.yml files found"))
    for path in files:
        try:
            document = load_yaml(path)
        except UserInputError as exc:
            problems.extend(exc.problems)
            continue
        if not isinstance(document.data, dict):
            problems.append(document.problem((), "must be a YAML mapping"))
            continue
        found = schema_problems(document, schema_name)
        problems.extend(found)
        if not found:
            documents.append(document)
    return documents, problems


def cross_problems(
    controls: list[tuple[YamlDocument, Control]], frameworks: Mapping[str, tuple[YamlDocument, Framework]]
) -> list[Problem]:
    problems = []
    seen: dict[str, str] = {}
    for document, control in controls:
        if control.id in seen:
            problems.append(document.problem(("id",), f"duplicate control id, also in {seen[control.id]}"))
        seen[control.id] = document.file
        for name, clauses in control.references.items():
            if name not in frameworks:
                continue
            known = frameworks[name][1].clause_ids()
            for index, reference in enumerate(clauses):
                if reference not in known:
                    problems.append(
                        document.problem(
                            ("references", name, index), f"{reference!r} is not a clause of {frameworks[name][0].file}"
                        )
                    )
    for name, (document, framework) in frameworks.items():
        ids: set[str] = set()
        units: dict[str, str] = {}
        for index, clause in enumerate(framework.clauses):
            if clause.id in ids:
                problems.append(document.problem(("clauses", index, "id"), f"duplicate clause {clause.id!r}"))
            ids.add(clause.id)
            if (unit := clause.evaluation_unit) is not None:
                if unit in units:
                    message = f"evaluation unit {unit!r} also given to {units[unit]!r}"
                    problems.append(document.problem(("clauses", index, "evaluation_unit"), message))
                units.setdefault(unit, clause.id)
            covering = [c for _, c in controls if clause.id in c.references.get(name, ())]
            if clause.coverage in ("automated", "partial") and not covering:
                problems.append(
                    document.problem(
                        ("clauses", index, "coverage"), f"{clause.coverage!r} but no control references {clause.id!r}"
                    )
                )
            if clause.coverage == "not_covered" and covering:
                names = ", ".join(sorted(c.id for c in covering))
                problems.append(
                    document.problem(("clauses", index, "coverage"), f"'not_covered' but referenced by {names}")
                )
    return problems


def load_catalog(root: Path = CATALOG_DIR) -> Catalog:
    """The catalog under root (controls/ and frameworks/); UserInputError lists every problem."""
    control_docs, problems = load_documents(root / "controls", "control")
    framework_docs, framework_problems = load_documents(root / "frameworks", "framework")
    problems.extend(framework_problems)
    for document in control_docs:
        problems.extend(control_problems(document, Path(document.file).stem))
    controls = [(document, build_control(document)) for document in control_docs]
    frameworks = {}
    for document in framework_docs:
        framework = build_framework(document.data)
        if framework.id in frameworks:
            problems.append(document.problem(("id",), f"framework {framework.id!r} defined twice"))
        frameworks[framework.id] = (document, framework)
    missing = set(FRAMEWORKS) - set(frameworks)
    if missing and not framework_problems:
        problems.append(Problem(str(root / "frameworks"), (), f"missing frameworks: {sorted(missing)}"))
    problems.extend(cross_problems(controls, frameworks))
    if problems:
        raise UserInputError(problems)
    return Catalog(
        controls=tuple(sorted((c for _, c in controls), key=lambda c: c.id)),
        frameworks={name: framework for name, (_, framework) in frameworks.items()},
    )


def load_waivers(path: Path, catalog: Catalog) -> tuple[Waiver, ...]:
    """Waivers from a YAML file; each must name a control of the catalog."""
    document = load_yaml(path)
    items = document.data.get("waivers") if isinstance(document.data, dict) else None
    for item in items if isinstance(items, list) else ():
        # An unquoted `expires: 2027-06-30` is a YAML date; the schema speaks of ISO text.
        if isinstance(item, dict) and isinstance(item.get("expires"), date):
            item["expires"] = item["expires"].isoformat()
    problems = (
        schema_problems(document, "waivers")
        if isinstance(document.data, dict)
        else [document.problem((), "must be a YAML mapping with a 'waivers' list")]
    )
    if problems:
        raise UserInputError(problems)
    known = catalog.by_id()
    waivers = []
    for index, item in enumerate(document.data["waivers"]):
        if item["control"] not in known:
            problems.append(document.problem(("waivers", index, "control"), f"unknown control {item['control']!r}"))
            continue
        try:
            expires = date.fromisoformat(item["expires"])
        except ValueError:
            problems.append(document.problem(("waivers", index, "expires"), f"{item['expires']!r} is not a date"))
            continue
        waivers.append(
            Waiver(
                control=item["control"],
                hosts=tuple(item.get("hosts", ())),
                groups=tuple(item.get("groups", ())),
                justification=item["justification"],
                approver=item["approver"],
                risk=item["risk"],
                risk_acceptance=item["risk_acceptance"],
                compensating_control=item["compensating_control"],
                expires=expires,
            )
        )
    if problems:
        raise UserInputError(problems)
    return tuple(waivers)
