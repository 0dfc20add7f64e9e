"""Read a hospital.yml: YAML -> JSON Schema -> semantic checks -> Topology, with located errors."""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema

from medinfra.problems import Problem, UserInputError
from medinfra.topology.checks import check_topology
from medinfra.topology.interfaces import interface_warnings
from medinfra.topology.model import Host, Topology
from medinfra.topology.redundancy import pair_problems, pair_warnings
from medinfra.yamldoc import YamlDocument, load_yaml, validation_problems


@cache
def topology_schema() -> dict[str, Any]:
    text = resources.files("medinfra").joinpath("schemas/hospital.schema.json").read_text("utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


def _schema_message(error: jsonschema.ValidationError) -> str:
    if error.validator == "additionalProperties" and isinstance(error.schema, dict):
        return f"{error.message} (allowed: {sorted(error.schema.get('properties', {}))})"
    if error.validator == "oneOf" and error.schema is topology_schema()["$defs"]["port"]:
        return f"{error.instance!r} is not a port (1-65535) or a range like '49152-65535'"
    return error.message


def schema_problems(document: YamlDocument) -> list[Problem]:
    validator = jsonschema.Draft202012Validator(topology_schema())
    return validation_problems(document, validator.iter_errors(document.data), _schema_message)


def validate_document(document: YamlDocument) -> list[Problem]:
    """All problems of a parsed topology; semantic checks run only once the shape is right."""
    if not isinstance(document.data, dict):
        return [document.problem((), "a topology must be a YAML mapping with site, zones, hosts, flows")]
    problems = schema_problems(document)
    if problems:
        return problems
    services = frozenset(topology_schema()["$defs"]["service"]["enum"])
    findings = check_topology(document.data, services)
    return [document.problem(path, message) for path, message in findings]


def load_topology_warnings(path: Path) -> tuple[Topology, list[Problem]]:
    """Load and validate ``path`` (raise UserInputError listing every problem found); return the topology and what
    is valid but will not work as declared (interfaces the firewall drops, PHI in plaintext across zones) or shares a
    fate (a standby in its primary's zone)."""
    document = load_yaml(path)
    problems = validate_document(document)
    if problems:
        raise UserInputError(problems)
    topology = Topology.from_dict(document.data, source=document.file)
    # Missing flows of a database pair are errors: replication and failover cannot work without them.
    problems = [document.problem(where, message) for where, message in pair_problems(topology)]
    if problems:
        raise UserInputError(problems)
    warnings = interface_warnings(topology) + pair_warnings(topology)
    return topology, [document.problem(where, message) for where, message in warnings]


def load_topology(path: Path) -> Topology:
    """Load and validate ``path``; raise UserInputError listing every problem found."""
    return load_topology_warnings(path)[0]


def topology_host(data: Mapping[str, Any], host: str) -> tuple[Topology, Host]:
    """The topology from its plain-data form (the inventory's ``medinfra_topology``) and one of its hosts."""
    try:
        topology = Topology.from_dict(data)
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"medinfra_topology is incomplete or malformed: {exc!r}") from None
    try:
        return topology, topology.host(host)
    except KeyError:
        raise ValueError(f"{host!r} is not a host of medinfra_topology") from None
