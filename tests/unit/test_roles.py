"""Every role documents exactly the variables it has, and its README is current."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

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
    (tmp_path / "meta").mkdir()
    (tmp_path / "defaults").mkdir()
    (tmp_path / "meta" / "argument_specs.yml").write_text(
        "argument_specs: {main: {options: {r_a: {type: str}, r_b: {type: int}}}}\n"
    )
    (tmp_path / "defaults" / "main.yml").write_text("r_a: x\nr_c: 1\n")
    assert spec_mismatches(tmp_path) == [
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
