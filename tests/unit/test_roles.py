"""Every role documents exactly the variables it has, and its README is current."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jinja2
import jinja2.nodes
import pytest
import yaml

from medinfra.roledoc import render_readme, spec_mismatches
from tests.conftest import ROOT

ROLES = sorted(p for p in (ROOT / "roles").iterdir() if p.is_dir())


def test_there_are_roles() -> None:
    assert ROLES


@pytest.mark.parametrize("role", ROLES, ids=[r.name for r in ROLES])
def test_argument_specs_match_defaults(role: Path) -> None:
    assert spec_mismatches(role) == []


@pytest.mark.parametrize("role", ROLES, ids=[r.name for r in ROLES])
def test_readme_variable_table_is_current(role: Path) -> None:
    assert (role / "README.md").read_text(encoding="utf-8") == render_readme(role), (
        f"run `medinfra roles doc` to refresh {role / 'README.md'}"
    )


@pytest.mark.parametrize("role", ROLES, ids=[r.name for r in ROLES])
def test_variables_carry_the_role_prefix(role: Path) -> None:
    defaults = yaml.safe_load((role / "defaults" / "main.yml").read_text(encoding="utf-8")) or {}
    assert [name for name in defaults if not name.startswith(f"{role.name}_")] == []


def test_spec_mismatch_is_reported(tmp_path: Path) -> None:
    """The role's own options need a default; what the inventory or another role gives (medinfra_x) does not."""
    role = tmp_path / "r"
    (role / "meta").mkdir(parents=True)
    (role / "defaults").mkdir()
    (role / "meta" / "argument_specs.yml").write_text(
        "argument_specs: {main: {options: {r_a: {type: str}, r_b: {type: int}, medinfra_x: {type: str}}}}\n"
    )
    (role / "defaults" / "main.yml").write_text("r_a: x\nr_c: 1\n")
    assert spec_mismatches(role) == [
        "r_c: in defaults/main.yml but not in meta/argument_specs.yml",
        "r_b: in meta/argument_specs.yml but has no default",
    ]


def test_required_options_take_no_default(tmp_path: Path) -> None:
    """Vault secrets are required and have no default; a default for a required option is a mismatch."""
    (tmp_path / "meta").mkdir()
    (tmp_path / "defaults").mkdir()
    (tmp_path / "meta" / "argument_specs.yml").write_text(
        "argument_specs: {main: {options: {r_secret: {type: str, required: true},"
        " r_key: {type: str, required: true}}}}\n"
    )
    (tmp_path / "defaults" / "main.yml").write_text("r_key: changeme\n")
    assert spec_mismatches(tmp_path) == ["r_key: required in meta/argument_specs.yml but has a default"]


# Renders one task variable of a role with Ansible's own templating, in a fresh interpreter per hash seed.
RENDER_TASK_VAR = """
import json, sys
import yaml
from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar, trust_as_template
tasks_file, name, variables = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
expression = next(t["vars"][name] for t in yaml.safe_load(open(tasks_file)) if name in t.get("vars", {}))
defaults = yaml.safe_load(open(tasks_file.replace("/tasks/main.yml", "/defaults/main.yml")))
templar = Templar(loader=DataLoader(), variables={**defaults, **variables})
print(json.dumps(templar.template(trust_as_template(expression))))
"""


def test_standins_render_in_the_same_order_whatever_the_hash_seed() -> None:
    """The stand-in services decide nginx.conf's order; a set-ordered list made a second run rewrite it."""
    variables = json.dumps({"medinfra_services": ["pacs", "monitoring_agent", "his_app", "emr_web"]})
    tasks_file = str(ROOT / "roles/lab_clinical_standins/tasks/main.yml")
    rendered = {
        subprocess.run(
            [sys.executable, "-c", RENDER_TASK_VAR, tasks_file, "lab_clinical_standins_here", variables],
            capture_output=True, text=True, check=True, env={**os.environ, "PYTHONHASHSEED": str(seed)},
        ).stdout
        for seed in range(6)
    }
    assert [json.loads(out) for out in rendered] == [["emr_web", "his_app", "pacs"]]


def test_a_backup_server_admits_only_its_own_clients() -> None:
    """Two backup servers in one play: each makes accounts only for the clients that chose it."""
    from ansible.parsing.dataloader import DataLoader
    from ansible.template import Templar, trust_as_template

    tasks = yaml.safe_load((ROOT / "roles/backup/tasks/server.yml").read_text())
    expression = next(t["ansible.builtin.set_fact"]["backup_server_clients"] for t in tasks
                      if "backup_server_clients" in t.get("ansible.builtin.set_fact", {}))
    clients = {"his-db": "backup-01", "pacs-01": "backup-02", "his-app": "backup-01"}
    hostvars = {name: {"inventory_hostname": name, "backup_client_public_key": f"ssh-ed25519 AAAA{name}",
                       "backup_client_server": server} for name, server in clients.items()}
    hostvars |= {name: {"inventory_hostname": name} for name in ("backup-01", "backup-02", "ws-01")}

    def admitted(server: str) -> list[str]:
        variables = {"ansible_play_hosts_all": sorted(hostvars), "hostvars": hostvars, "inventory_hostname": server}
        rendered: list[str] = Templar(loader=DataLoader(), variables=variables).template(trust_as_template(expression))
        return rendered

    assert admitted("backup-01") == ["his-app", "his-db"]
    assert admitted("backup-02") == ["pacs-01"]


# What a role may read without declaring it: Ansible's magic and connection variables, facts, Jinja's globals.
MAGIC_VARIABLES = frozenset({
    "ansible_check_mode", "ansible_facts", "ansible_failed_result", "ansible_managed", "ansible_play_hosts_all",
    "groups", "hostvars", "inventory_dir", "inventory_hostname", "omit", "role_path", "vars", "item",
    "lookup", "query", "q", "now", "range", "dict", "lipsum", "cycler", "joiner", "namespace", "undef", "loop",
    "ansible_connection", "ansible_host", "ansible_user",
})
CONDITION_KEYS = frozenset({"when", "changed_when", "failed_when", "until", "that"})
JINJA = jinja2.Environment()


def jinja_names(text: str) -> set[str]:
    """Top-level names an expression or template loads, less those it assigns itself (for targets, set)."""
    tree = JINJA.parse(text)
    loaded = {node.name for node in tree.find_all(jinja2.nodes.Name) if node.ctx == "load"}
    stored = {node.name for node in tree.find_all(jinja2.nodes.Name) if node.ctx in ("store", "param")}
    return loaded - stored


def value_names(value: Any, condition: bool = False) -> set[str]:
    if isinstance(value, dict):
        return set().union(*(value_names(v, k in CONDITION_KEYS) for k, v in value.items()))
    if isinstance(value, list):
        return set().union(*(value_names(v, condition) for v in value))
    if isinstance(value, str) and condition:
        return jinja_names("{{ " + value + " }}") if "{{" not in value else jinja_names(value)
    if isinstance(value, str) and ("{{" in value or "{%" in value):
        return jinja_names(value)
    return set()


def iter_tasks(tasks: Any) -> Iterator[dict[str, Any]]:
    for task in tasks or []:
        yield task
        for key in ("block", "rescue", "always"):
            yield from iter_tasks(task.get(key))


def assigned_names(tasks_file: Path) -> set[str]:
    """Variables the tasks of one file define: register, set_fact, task and block vars, loop variables."""
    names: set[str] = set()
    for task in iter_tasks(yaml.safe_load(tasks_file.read_text(encoding="utf-8"))):
        names |= {task["register"]} if "register" in task else set()
        names |= set(task.get("ansible.builtin.set_fact", {})) | set(task.get("vars", {}))
        names |= {task.get("loop_control", {}).get("loop_var", "item")}
    return names


def included_task_files(role: Path) -> list[Path]:
    """The task files of other roles this role runs with include_role, whose results it may read."""
    files = []
    for tasks_file in (role / "tasks").glob("*.yml"):
        for task in iter_tasks(yaml.safe_load(tasks_file.read_text(encoding="utf-8"))):
            include = task.get("ansible.builtin.include_role")
            if include:
                name = include["name"].rsplit(".", 1)[-1]
                files.append(ROOT / "roles" / name / "tasks" / f"{include.get('tasks_from', 'main')}.yml")
    return files


def undeclared_reads(role: Path) -> dict[str, list[str]]:
    """Variables a role reads that it neither declares in meta/argument_specs.yml nor defines, by file."""
    specs = yaml.safe_load((role / "meta" / "argument_specs.yml").read_text(encoding="utf-8"))["argument_specs"]
    known = set(MAGIC_VARIABLES).union(*(set(entry.get("options", {})) for entry in specs.values()))
    for kind in ("defaults", "vars"):
        for path in (role / kind).glob("*.yml"):
            known |= set(yaml.safe_load(path.read_text(encoding="utf-8")) or {})
    for tasks_file in [*(role / "tasks").glob("*.yml"), *(role / "handlers").glob("*.yml"), *included_task_files(role)]:
        known |= assigned_names(tasks_file)
    found: dict[str, list[str]] = {}
    for path in [p for kind in ("defaults", "vars", "tasks", "handlers") for p in (role / kind).glob("*.yml")]:
        names = value_names(yaml.safe_load(path.read_text(encoding="utf-8")))
        found.update({str(path.relative_to(role)): sorted(names - known)} if names - known else {})
    for path in (role / "templates").glob("*.j2"):
        names = jinja_names(path.read_text(encoding="utf-8"))
        found.update({str(path.relative_to(role)): sorted(names - known)} if names - known else {})
    return found


@pytest.mark.parametrize("role", ROLES, ids=[r.name for r in ROLES])
def test_every_variable_a_role_reads_is_declared(role: Path) -> None:
    assert undeclared_reads(role) == {}


def test_an_undeclared_read_is_found(tmp_path: Path) -> None:
    """A template reading a variable that no spec declares is named; a declared or defined one is not."""
    for directory in ("meta", "defaults", "tasks", "templates"):
        (tmp_path / directory).mkdir()
    (tmp_path / "meta" / "argument_specs.yml").write_text("argument_specs: {main: {options: {r_port: {type: int}}}}\n")
    (tmp_path / "defaults" / "main.yml").write_text("r_port: 1\nr_url: 'https://{{ medinfra_address }}:{{ r_port }}'\n")
    (tmp_path / "tasks" / "main.yml").write_text(
        "- ansible.builtin.set_fact: {r_seen: true}\n"
        "- ansible.builtin.debug: {msg: '{{ r_seen }} {{ item }}'}\n  when: r_switch and inventory_hostname\n"
        "  loop: [1]\n"
    )
    (tmp_path / "templates" / "a.j2").write_text("{% for x in r_list %}{{ x }}{{ loop.index }}{% endfor %}\n")
    assert undeclared_reads(tmp_path) == {
        "defaults/main.yml": ["medinfra_address"], "tasks/main.yml": ["r_switch"], "templates/a.j2": ["r_list"],
    }
