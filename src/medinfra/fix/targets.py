"""What the catalog's remediations name must exist in the roles: a role, its variables, its tags.

`medinfra fix` runs the tags a control names; a tag no task carries would run nothing and the fix would look done.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from medinfra.compliance.model import Control
from medinfra.problems import Problem
from medinfra.roledoc import role_variables


@dataclass(frozen=True)
class RoleTargets:
    tags: frozenset[str]
    variables: frozenset[str]


def tags_in(node: Any) -> Iterator[str]:
    """Every tag a task file's YAML gives: `tags:` of tasks and blocks, and `apply: {tags: ...}` of includes."""
    if isinstance(node, list):
        for item in node:
            yield from tags_in(item)
    elif isinstance(node, dict):
        for key, value in node.items():
            if key == "tags":
                yield from [value] if isinstance(value, str) else [t for t in value or () if isinstance(t, str)]
            else:
                yield from tags_in(value)


def read_role_targets(roles_dir: Path) -> dict[str, RoleTargets]:
    """Each role's tags (tasks and handlers) and variables (defaults and argument specs of every entry point)."""
    roles = {}
    for role in sorted(p for p in roles_dir.iterdir() if p.is_dir()):
        tags = {tag for folder in ("tasks", "handlers") for path in sorted((role / folder).glob("*.yml"))
                for tag in tags_in(yaml.safe_load(path.read_text(encoding="utf-8")))}
        # Every default is specified too (tests/unit/test_roles.py): the specs of every entry point name them all.
        variables = frozenset(variable.name for variable in role_variables(role))
        roles[role.name] = RoleTargets(frozenset(tags - {"always", "never"}), variables)
    return roles


def remediation_problems(controls: Iterable[Control], roles: Mapping[str, RoleTargets]) -> list[Problem]:
    """A role that does not exist, a variable it does not have, a tag no role's task carries, or tags none of which
    is the role's own (the fix would run other roles only)."""
    every_tag = frozenset().union(*(role.tags for role in roles.values()))
    problems = []
    for control in controls:
        remediation = control.remediation
        target = roles.get(remediation.role)
        if target is None:
            problems.append(Problem(control.source, ("remediation", "role"),
                                    f"no role {remediation.role!r} in the collection"))
            continue
        problems += [Problem(control.source, ("remediation", "variables", index),
                             f"role {remediation.role} has no variable {name!r}")
                     for index, name in enumerate(remediation.variables) if name not in target.variables]
        problems += [Problem(control.source, ("remediation", "tags", index), f"no task of any role is tagged {tag!r}")
                     for index, tag in enumerate(remediation.tags) if tag not in every_tag]
        if remediation.tags and not set(remediation.tags) & target.tags:
            own = ", ".join(sorted(target.tags))
            problems.append(Problem(control.source, ("remediation", "tags"),
                                    f"none of these tags is role {remediation.role}'s own ({own})"))
    return problems


def role_name(entry: Any) -> str:
    """`medinfra.hospital.backup` or `{role: medinfra.hospital.backup, ...}` -> `backup`."""
    name = entry.get("role", "") if isinstance(entry, dict) else str(entry)
    return str(name).rsplit(".", 1)[-1]


def read_role_playbooks(playbooks_dir: Path) -> dict[str, str]:
    """Each role's own playbook: the first of site.yml's imports that applies it. A fix runs those, not site.yml:
    there every other role's argument validation (tagged always) would run against facts its skipped tasks set."""
    site = yaml.safe_load((playbooks_dir / "site.yml").read_text(encoding="utf-8")) or []
    owners: dict[str, str] = {}
    imports = [play["ansible.builtin.import_playbook"] for play in site if "ansible.builtin.import_playbook" in play]
    for imported in imports:
        plays = yaml.safe_load((playbooks_dir / imported).read_text(encoding="utf-8")) or []
        for play in plays:
            for entry in play.get("roles") or ():
                owners.setdefault(role_name(entry), imported)
    return owners


def playbooks_for(
    tags: Iterable[str], roles: Mapping[str, RoleTargets], role_playbooks: Mapping[str, str]
) -> list[str]:
    """The playbooks of the roles carrying these tags, in site.yml's order."""
    wanted = {role_playbooks[name] for name, role in roles.items() if role.tags & set(tags) and name in role_playbooks}
    return sorted(wanted, key=list(dict.fromkeys(role_playbooks.values())).index)
