"""Runbooks: what an alert or a control means for the night shift, the first checks with exact commands, how to fix
it and when to escalate to whom. Kept as data beside what they explain: one YAML file per alert rule in
roles/monitoring_server/files/runbooks/<AlertName>.yml, and a `runbook:` block in each control of the catalog.

Both forms follow src/medinfra/schemas/runbook.schema.json (the control schema refers to its `runbook` block);
problems are located (file, line, path) and all reported at once.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import jsonschema

from medinfra.compliance.model import Bilingual
from medinfra.problems import Problem, UserInputError, refused
from medinfra.yamldoc import YamlDocument, load_yaml, validation_problems

if TYPE_CHECKING:
    from medinfra.compliance.model import Catalog

RUNBOOK_SCHEMA_ID = "https://medinfra.example/schemas/runbook.schema.json"
# Where the alert runbooks sit inside the collection (beside the rule files they explain).
ALERT_RUNBOOKS = Path("roles/monitoring_server/files/runbooks")


@dataclass(frozen=True)
class Check:
    text: Bilingual
    command: str | None = None  # exact and copy-pasteable; None when the check is a UI to open or a person to ask


@dataclass(frozen=True)
class Escalation:
    after_minutes: int
    to: tuple[str, ...]  # on-call roles: ops, network, application, security, duty, vendor
    text: Bilingual


@dataclass(frozen=True)
class Runbook:
    key: str  # the alert's name or the control's id
    kind: Literal["alert", "control"]
    meaning: Bilingual
    checks: tuple[Check, ...]
    fix: Bilingual
    escalate: Escalation
    source: str = ""  # the file it came from


@cache
def runbook_schema() -> dict[str, Any]:
    text = resources.files("medinfra").joinpath("schemas/runbook.schema.json").read_text("utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


def _bilingual(data: Mapping[str, Any]) -> Bilingual:
    return Bilingual(en=data["en"], zh=data["zh"])


def build_runbook(data: Mapping[str, Any], key: str, kind: Literal["alert", "control"], source: str) -> Runbook:
    """A runbook from data the schema has accepted (a whole alert runbook file or a control's `runbook` block)."""
    escalate = data["escalate"]
    return Runbook(
        key=key,
        kind=kind,
        meaning=_bilingual(data["meaning"]),
        checks=tuple(Check(_bilingual(check), check.get("command")) for check in data["checks"]),
        fix=_bilingual(data["fix"]),
        escalate=Escalation(int(escalate["after_minutes"]), tuple(escalate["to"]), _bilingual(escalate)),
        source=source,
    )


def alert_runbook_problems(document: YamlDocument) -> list[Problem]:
    """Schema problems of one alert runbook file, and whether its `alert` is its file's name."""
    if not isinstance(document.data, dict):
        return [document.problem((), "an alert runbook must be a YAML mapping (alert, meaning, checks, fix, escalate)")]
    validator = jsonschema.Draft202012Validator(runbook_schema())
    problems = validation_problems(document, validator.iter_errors(document.data))
    expected = Path(document.file).stem
    if not problems and document.data["alert"] != expected:
        message = f"alert {document.data['alert']!r} must match the file name {expected!r}"
        problems.append(document.problem(("alert",), message))
    return problems


def load_alert_runbooks(directory: Path) -> dict[str, Runbook]:
    """The alert runbooks in ``directory`` (<AlertName>.yml each), by alert name; UserInputError lists every problem."""
    if not directory.is_dir():
        raise refused(str(directory), "not a directory of alert runbooks (<AlertName>.yml)")
    runbooks: dict[str, Runbook] = {}
    problems: list[Problem] = []
    for path in sorted(directory.glob("*.yml")):
        try:
            document = load_yaml(path)
        except UserInputError as exc:
            problems.extend(exc.problems)
            continue
        found = alert_runbook_problems(document)
        problems.extend(found)
        if not found:
            runbooks[path.stem] = build_runbook(document.data, path.stem, "alert", document.file)
    if problems:
        raise UserInputError(problems)
    return runbooks


def control_runbooks(catalog: Catalog) -> dict[str, Runbook]:
    """The runbook of each control that has one, by control id."""
    return {control.id: control.runbook for control in catalog.controls if control.runbook is not None}
