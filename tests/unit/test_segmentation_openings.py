"""The host firewall each lab host gets from the play that applies it (playbooks/segmentation.yml): the roles'
openings arrive through network_segmentation's declared variables, and the rendered tables are the reference ones
(tests/unit/fixtures/nft/lab, the tables of the lab as it runs)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from ansible.inventory.manager import InventoryManager
from ansible.parsing.dataloader import DataLoader
from ansible.playbook import Playbook
from ansible.template import Templar
from ansible.vars.manager import VariableManager
from ansible_collections.medinfra.hospital.plugins.filter.segmentation import nftables

from tests.conftest import ROOT

REFERENCE = ROOT / "tests" / "unit" / "fixtures" / "nft" / "lab"
# The uid getent reports for coturn's user on the relay (the egress chain matches it).
USERS = {"turnserver": ["x", "107", "113", "", "/", "/usr/sbin/nologin"]}


def play_variables(playbook: Path, inventory: Path) -> dict[str, dict[str, Any]]:
    """Each host's variables in the playbook's first play, as ansible-playbook computes them (inventory, group_vars,
    vars_files, role defaults and vars), templated."""
    loader = DataLoader()
    hosts = InventoryManager(loader=loader, sources=[str(inventory)])
    manager = VariableManager(loader=loader, inventory=hosts)
    play = Playbook.load(str(playbook), variable_manager=manager, loader=loader).get_plays()[0]
    result = {}
    for host in hosts.get_hosts(play.hosts):
        variables = manager.get_vars(play=play, host=host)
        templar = Templar(loader=loader, variables=variables)
        names = ("medinfra_topology", "network_segmentation_merged_openings", "network_segmentation_management_sources",
                 "network_segmentation_egress")
        result[host.name] = {name: templar.template(variables[name]) for name in names}
    return result


@pytest.fixture(scope="module")
def lab_hosts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    # The committed inventory only: a lab that is up adds its own files (lab_connection.yml names the controller's
    # addresses as management sources), which would change the tables while it runs.
    inventory = tmp_path_factory.mktemp("inventory")
    source = ROOT / "inventories" / "lab"
    for path in source.rglob("*.yml"):
        relative = path.relative_to(source)
        if not relative.name.startswith("lab_") and ".lab" not in relative.parts:
            (inventory / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, inventory / relative)
    return play_variables(ROOT / "playbooks" / "segmentation.yml", inventory / "hospital.yml")


def test_every_lab_host_has_a_reference_table(lab_hosts: dict[str, dict[str, Any]]) -> None:
    assert sorted(lab_hosts) == sorted(path.stem for path in REFERENCE.glob("*.nft"))


@pytest.mark.parametrize("host", sorted(path.stem for path in REFERENCE.glob("*.nft")))
def test_the_play_renders_the_reference_table(lab_hosts: dict[str, dict[str, Any]], host: str) -> None:
    variables = lab_hosts[host]
    rendered = nftables(variables["medinfra_topology"], host, variables["network_segmentation_merged_openings"],
                        variables["network_segmentation_management_sources"],
                        variables["network_segmentation_egress"], USERS)
    assert rendered == (REFERENCE / f"{host}.nft").read_text(encoding="utf-8")


def test_the_roles_openings_reach_the_right_hosts(lab_hosts: dict[str, dict[str, Any]]) -> None:
    """Port 9100 on every host for the monitoring server; its web UIs on the server only; coturn's egress limit."""
    monitor = next(name for name, v in lab_hosts.items()
                   if any(9090 in o["ports"] for o in v["network_segmentation_merged_openings"]))
    assert all(any(o["ports"] == [9100] and o["from"] == [monitor] for o in v["network_segmentation_merged_openings"])
               for v in lab_hosts.values())
    assert [name for name, v in lab_hosts.items() if v["network_segmentation_egress"]] == ["turn"]


def test_the_role_scans_no_sibling_roles() -> None:
    """Openings arrive through declared variables, never by reading other roles' files."""
    tasks = yaml.safe_load((ROOT / "roles" / "network_segmentation" / "tasks" / "main.yml").read_text())
    text = yaml.safe_dump(tasks)
    assert "include_vars" not in text and "role_path" not in text
