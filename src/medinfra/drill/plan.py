"""A drill plan (应急预案演练脚本): YAML -> JSON Schema -> checks against the inventory -> Plan, with located errors.

Nothing runs before the whole plan is known to be good: a bad plan is refused with every problem named by file,
path and line (exit 2).
"""

from __future__ import annotations

import json
from collections.abc import Collection
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema

from medinfra.problems import Problem, UserInputError
from medinfra.yamldoc import YamlDocument, load_yaml, validation_problems

# An isolated host lets itself go after this long when the plan says nothing: a drill whose controller died must
# not leave a host cut off.
ISOLATION_MAX_SECONDS = 900.0
EXPECT_EVERY_SECONDS = 2.0


@cache
def plan_schema() -> dict[str, Any]:
    text = resources.files("medinfra").joinpath("schemas/drill-plan.schema.json").read_text("utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


@dataclass(frozen=True)
class Break:
    name: str
    host: str
    action: str  # stop_unit | restart_unit | isolate | command
    unit: str | None = None
    command: str | None = None
    undo: str | None = None
    max_seconds: float = ISOLATION_MAX_SECONDS

    @property
    def label(self) -> str:
        what = {"stop_unit": f"stop {self.unit}", "restart_unit": f"restart {self.unit}", "isolate": "isolate",
                "command": "run its command"}[self.action]
        return f"break {self.name}: {what} on {self.host}"


@dataclass(frozen=True)
class ExpectAlerts:
    alerts: tuple[str, ...]
    within: float
    labels: dict[str, str] = field(default_factory=dict)
    any: bool = False
    monitoring_server: str | None = None
    name: str | None = None

    @property
    def label(self) -> str:
        joined = (" or " if self.any else " and ").join(self.alerts)
        where = "".join(f" {key}={value}" for key, value in sorted(self.labels.items()))
        return self.name or f"expect alerts {joined}{where} within {self.within:g} s"


@dataclass(frozen=True)
class Expect:
    host: str
    command: str
    within: float
    every: float = EXPECT_EVERY_SECONDS
    name: str | None = None

    @property
    def label(self) -> str:
        return self.name or f"expect on {self.host} within {self.within:g} s: {self.command}"


@dataclass(frozen=True)
class Restore:
    target: Break

    @property
    def label(self) -> str:
        return f"restore {self.target.name} on {self.target.host}"


Step = Break | ExpectAlerts | Expect | Restore


@dataclass(frozen=True)
class Plan:
    file: str
    name: str
    description: str
    steps: tuple[Step, ...]

    @property
    def hosts(self) -> set[str]:
        """Every host a step runs on (the monitoring server only when a step names it)."""
        found: set[str] = set()
        for step in self.steps:
            if isinstance(step, Break | Expect):
                found.add(step.host)
            elif isinstance(step, ExpectAlerts) and step.monitoring_server:
                found.add(step.monitoring_server)
        return found


def _step(data: dict[str, Any], breaks: dict[str, Break]) -> Step:
    kind = data["kind"]
    if kind == "break":
        return Break(data["name"], data["host"], data["action"], data.get("unit"), data.get("command"),
                     data.get("undo"), float(data.get("max_seconds", ISOLATION_MAX_SECONDS)))
    if kind == "expect_alerts":
        return ExpectAlerts(tuple(data["alerts"]), float(data["within"]), dict(data.get("labels", {})),
                            bool(data.get("any", False)), data.get("monitoring_server"), data.get("name"))
    if kind == "expect":
        return Expect(data["host"], data["command"], float(data["within"]),
                      float(data.get("every", EXPECT_EVERY_SECONDS)), data.get("name"))
    return Restore(breaks[data["break"]])


def plan_problems(document: YamlDocument, hosts: Collection[str] | None) -> list[Problem]:
    """Every problem of a parsed plan: the schema first; then breaks named once, restores of earlier breaks (each
    restored at most once), and hosts of the inventory (when `hosts` is given)."""
    if not isinstance(document.data, dict):
        return [document.problem((), "a drill plan must be a YAML mapping with name, description and steps")]
    validator = jsonschema.Draft202012Validator(plan_schema())
    problems = validation_problems(document, validator.iter_errors(document.data))
    if problems:
        return problems
    breaks: set[str] = set()
    restored: set[str] = set()
    for index, step in enumerate(document.data["steps"]):
        where: tuple[str | int, ...] = ("steps", index)
        if step["kind"] == "break":
            if step["name"] in breaks:
                problems.append(document.problem((*where, "name"), f"break {step['name']!r} is named twice"))
            breaks.add(step["name"])
        elif step["kind"] == "restore":
            if step["break"] not in breaks:
                problems.append(document.problem((*where, "break"), f"no earlier break named {step['break']!r}"))
            elif step["break"] in restored:
                problems.append(document.problem((*where, "break"), f"break {step['break']!r} is restored twice"))
            restored.add(step["break"])
        for key in ("host", "monitoring_server"):
            if hosts is not None and key in step and step[key] not in hosts:
                problems.append(document.problem((*where, key), f"{step[key]!r} is not a host of the inventory"))
    return problems


def load_plan(path: Path, hosts: Collection[str] | None = None) -> Plan:
    """The plan at `path`; UserInputError listing every problem (file, path, line) when it is not a good one."""
    document = load_yaml(path)
    problems = plan_problems(document, hosts)
    if problems:
        raise UserInputError(problems)
    breaks: dict[str, Break] = {}
    steps = []
    for data in document.data["steps"]:
        step = _step(data, breaks)
        if isinstance(step, Break):
            breaks[step.name] = step
        steps.append(step)
    return Plan(document.file, document.data["name"], document.data["description"], tuple(steps))
