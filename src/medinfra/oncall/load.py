"""Read an oncall.yml: YAML -> JSON Schema -> semantic checks -> OnCall, with located errors.

The rota lives beside hospital.yml and takes the site's time zone and vendors from it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from datetime import date
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any, cast

import jsonschema

from medinfra.oncall.model import WEEKDAYS, OnCall, Shift
from medinfra.problems import DocPath, Problem, UserInputError, format_path, refused
from medinfra.topology.load import load_topology
from medinfra.topology.model import Topology
from medinfra.yamldoc import YamlDocument, load_yaml, validation_problems

ONCALL_FILE = "oncall.yml"
TOPOLOGY_FILES = ("hospital.yml", "hospital.yaml")
WEEK_MINUTES = 7 * 1440

Finding = tuple[DocPath, str]


@cache
def oncall_schema() -> dict[str, Any]:
    text = resources.files("medinfra").joinpath("schemas/oncall.schema.json").read_text("utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


def _schema_message(error: jsonschema.ValidationError) -> str:
    if error.validator == "additionalProperties" and isinstance(error.schema, dict):
        return f"{error.message} (allowed: {sorted(error.schema.get('properties', {}))})"
    if error.validator == "oneOf" and error.schema is oncall_schema()["$defs"]["channel"]:
        instance = error.instance if isinstance(error.instance, dict) else {}
        kind, shapes = instance.get("type"), "{type: email, address} or {type: webhook, kind, url}"
        if kind not in ("email", "webhook"):
            return f"unknown channel type {kind!r}: a channel is {shapes}"
        if kind == "webhook" and instance.get("kind") not in ("wecom", "dingtalk", "generic"):
            return f"unknown webhook kind {instance.get('kind')!r} (known: dingtalk, generic, wecom)"
        return f"a channel is {shapes}, with nothing else"
    if error.validator == "oneOf" and error.schema is oncall_schema()["$defs"]["secret_url"]:
        return "a URL is https://... or {vault: VARIABLE} (the Ansible variable in the vault that holds it)"
    if error.validator == "pattern" and error.schema is oncall_schema()["$defs"]["time"]:
        return f"{error.instance!r} is not a time of day HH:MM (00:00-23:59)"
    return error.message


def _minutes(shift: Shift, day: int) -> list[tuple[int, int]]:
    """Where a shift starting on ``day`` lies in the week's minutes, split where the week wraps."""
    begin = day * 1440 + shift.start.hour * 60 + shift.start.minute
    end = begin + shift.minutes
    return [(begin, end)] if end <= WEEK_MINUTES else [(begin, WEEK_MINUTES), (0, end - WEEK_MINUTES)]


def _clock(minute: int) -> str:
    day, rest = divmod(minute % WEEK_MINUTES, 1440)
    return f"{WEEKDAYS[day]} {rest // 60:02d}:{rest % 60:02d}"


def _coverage_findings(oncall: OnCall) -> Iterator[Finding]:
    """Two shifts of one role at once are ambiguous; a round-the-clock role's gaps leave alerts with nobody."""
    spans: dict[str, list[tuple[int, int, DocPath]]] = {}
    for r, rotation in enumerate(oncall.rotations):
        for s, shift in enumerate(rotation.shifts):
            for day in shift.days:
                for begin, end in _minutes(shift, day):
                    spans.setdefault(rotation.role, []).append((begin, end, ("rotations", r, "shifts", s)))
    for role, role_spans in spans.items():
        role_spans.sort(key=lambda span: (span[0], span[1]))
        # Compared with the span reaching furthest so far: a long shift may overlap several later ones.
        first_end, first_path = -1, cast(DocPath, ())
        for begin, end, path in role_spans:
            if begin < first_end:
                where = f"{_clock(begin)}-{_clock(min(end, first_end))}"
                yield path, (
                    f"overlaps {format_path(first_path)} for role {role} ({where}): one person holds a role at a time"
                )
            if end > first_end:
                first_end, first_path = end, path
    for k, role in enumerate(oncall.round_the_clock):
        covered = 0
        for begin, end, _ in sorted(spans.get(role, [])):
            if begin > covered:
                message = f"role {role} must be held 24x7 but nobody holds it {_clock(covered)}-{_clock(begin)}"
                yield ("round_the_clock", k), message
            covered = max(covered, end)
        if covered < WEEK_MINUTES:
            yield ("round_the_clock", k), (
                f"role {role} must be held 24x7 but nobody holds it {_clock(covered)}-{_clock(WEEK_MINUTES)}"
            )


def _reference_findings(data: Mapping[str, Any], topology: Topology) -> Iterator[Finding]:
    people: dict[str, Mapping[str, Any]] = {}
    for i, person in enumerate(data["people"]):
        if person["id"] in people:
            yield ("people", i, "id"), f"duplicate person id {person['id']!r}"
        people.setdefault(person["id"], person)
    vendors = sorted({i.vendor.name for i in topology.interfaces if i.vendor})
    for i, person in enumerate(data["people"]):
        if "vendor" in person["roles"] and "vendor" not in person:
            yield ("people", i), "a vendor contact names its vendor (vendor: NAME as in the topology's interfaces)"
        elif "vendor" in person and person["vendor"] not in vendors:
            yield ("people", i, "vendor"), f"unknown vendor {person['vendor']!r} (the topology's vendors: {vendors})"
    names: set[str] = set()
    for r, rotation in enumerate(data["rotations"]):
        if rotation["name"] in names:
            yield ("rotations", r, "name"), f"duplicate rotation name {rotation['name']!r}"
        names.add(rotation["name"])
        for p, person_id in enumerate(rotation["people"]):
            if person_id not in people:
                yield ("rotations", r, "people", p), f"unknown person {person_id!r} (not in people)"
            elif rotation["role"] not in people[person_id]["roles"]:
                message = f"{person_id} does not hold role {rotation['role']} (roles: {people[person_id]['roles']})"
                yield ("rotations", r, "people", p), message
    rotated = {r["role"] for r in data["rotations"]}
    for k, role in enumerate(data.get("round_the_clock") or ()):
        if role not in rotated:
            yield ("round_the_clock", k), f"role {role} must be held 24x7 but no rotation gives it"
    for e, escalation in enumerate(data.get("escalation") or ()):
        if escalation["from"] not in rotated:
            yield ("escalation", e, "from"), f"no rotation gives role {escalation['from']}: nothing to escalate from"
        target = escalation["to"]
        if "role" in target and target["role"] not in rotated:
            yield ("escalation", e, "to", "role"), f"escalation to role {target['role']}, which no rotation gives"
        if "person" in target and target["person"] not in people:
            yield ("escalation", e, "to", "person"), f"escalation to unknown person {target['person']!r}"


def validate_oncall(document: YamlDocument, topology: Topology) -> tuple[OnCall | None, list[Problem]]:
    """The rota of a parsed oncall.yml, or every problem found (the semantic checks once the shape is right)."""
    if not isinstance(document.data, dict):
        return None, [document.problem((), "an on-call rota is a YAML mapping with people and rotations")]
    for rotation in document.data.get("rotations") or ():
        # An unquoted `start: 2026-11-02` is a YAML date; the schema speaks of ISO text.
        if isinstance(rotation, dict) and isinstance(rotation.get("start"), date):
            rotation["start"] = rotation["start"].isoformat()
    validator = jsonschema.Draft202012Validator(oncall_schema(), format_checker=jsonschema.FormatChecker())
    problems = validation_problems(document, validator.iter_errors(document.data), _schema_message)
    if problems:
        return None, problems
    findings = list(_reference_findings(document.data, topology))
    if findings:
        return None, [document.problem(path, message) for path, message in findings]
    oncall = OnCall.from_dict(document.data, source=document.file, timezone=topology.site.timezone or "UTC")
    problems = [document.problem(path, message) for path, message in _coverage_findings(oncall)]
    return (None, problems) if problems else (oncall, [])


def topology_beside(path: Path) -> Path:
    for name in TOPOLOGY_FILES:
        if (path.parent / name).is_file():
            return path.parent / name
    raise refused(str(path), "no hospital.yml beside it: the rota takes its site's time zone from the topology")


def load_oncall(path: Path, topology: Topology | None = None) -> OnCall:
    """Load and validate ``path`` against its topology (the hospital.yml beside it unless given); raise
    UserInputError listing every problem found."""
    if topology is None:
        topology = load_topology(topology_beside(path))
    oncall, problems = validate_oncall(load_yaml(path), topology)
    if oncall is None:
        raise UserInputError(problems)
    return oncall
