"""The hospital inventory plugin, run through the real `ansible-inventory`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from medinfra.collector import default_paths
from medinfra.inventory import build_inventory, group_name
from medinfra.topology import Topology, load_topology
from tests.conftest import LAB_TOPOLOGY, ROOT, TERTIARY_TOPOLOGY, write_yaml

ANSIBLE_INVENTORY = Path(sys.executable).with_name("ansible-inventory")


def ansible_inventory(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg")}
    return subprocess.run(
        [str(ANSIBLE_INVENTORY), *args], capture_output=True, text=True, cwd=ROOT, env=env, check=False
    )


@pytest.fixture(scope="module")
def tertiary() -> dict[str, Any]:
    result = ansible_inventory("-i", str(TERTIARY_TOPOLOGY.parent), "--list")
    assert result.returncode == 0, result.stderr
    listing: dict[str, Any] = unwrap(json.loads(result.stdout))
    return listing


def unwrap(value: Any) -> Any:
    """ansible-core marks inventory values untrusted ({"__ansible_unsafe": ...}) in its JSON."""
    if isinstance(value, dict):
        if set(value) == {"__ansible_unsafe"}:
            return value["__ansible_unsafe"]
        return {k: unwrap(v) for k, v in value.items()}
    if isinstance(value, list):
        return [unwrap(v) for v in value]
    return value


def members(listing: dict[str, Any], group: str) -> set[str]:
    return set(listing.get(group, {}).get("hosts", []))


def test_every_host_is_listed(tertiary: dict[str, Any]) -> None:
    topology = load_topology(TERTIARY_TOPOLOGY)
    assert set(tertiary["_meta"]["hostvars"]) == {h.name for h in topology.hosts}


def test_one_group_per_zone(tertiary: dict[str, Any]) -> None:
    topology = load_topology(TERTIARY_TOPOLOGY)
    for zone in topology.zones:
        assert members(tertiary, f"zone_{zone.name}") == {h.name for h in topology.hosts_in(zone.name)}
    assert members(tertiary, "zone_pacs") == {"pacs-01", "pacs-02", "pacs-03", "ris-01"}


def test_service_sla_phi_and_legacy_groups(tertiary: dict[str, Any]) -> None:
    assert members(tertiary, "his_db") == {"his-db-01", "his-db-02"}
    assert members(tertiary, "turn_relay") == {"turn-01", "turn-02"}
    assert members(tertiary, "zone_firewall") == {"fw-core"}
    assert "his-app-01" in members(tertiary, "sla_24x7_critical")
    assert "ws-001" in members(tertiary, "sla_business_hours")
    assert "ws-001" not in members(tertiary, "phi")
    assert {"his-db-01", "pacs-01", "emr-db-01"} <= members(tertiary, "phi")
    assert members(tertiary, "legacy") == {"lis-legacy-01"}
    assert "lis-legacy-01" not in members(tertiary, "managed")


def test_host_vars(tertiary: dict[str, Any]) -> None:
    hostvars = tertiary["_meta"]["hostvars"]["his-db-01"]
    assert hostvars["ansible_host"] == "10.232.20.31"
    assert hostvars["medinfra_zone"] == "his"
    assert hostvars["medinfra_zone_cidr"] == "10.232.20.0/24"
    assert hostvars["medinfra_address"] == "10.232.20.31"
    assert hostvars["medinfra_services"] == ["his_db"]
    assert hostvars["medinfra_sla"] == {"name": "24x7-critical", "rpo_minutes": 5, "rto_minutes": 30}
    assert hostvars["medinfra_data_classification"] == "phi"
    assert hostvars["medinfra_data_paths"] == ["/var/lib/postgresql"]
    inbound = {(f["from"], f["proto"], tuple(f["ports"])) for f in hostvars["medinfra_flows_in"]}
    # the host itself, and its zone, are both flow endpoints that concern it
    assert ("his-app-01", "tcp", ("5432",)) in inbound
    assert ("mgmt", "tcp", ("22",)) in inbound
    assert ("his-app-03", "tcp", ("5432",)) not in inbound  # that one goes to his-db-02
    outbound = {(f["to"], tuple(f["ports"])) for f in hostvars["medinfra_flows_out"]}
    assert ("his-db-02", ("5432",)) in outbound
    assert ("backup-01", ("22",)) in outbound


def test_whole_topology_is_available_to_roles(tertiary: dict[str, Any]) -> None:
    all_vars = tertiary["_meta"]["hostvars"]["ws-001"]
    assert all_vars["medinfra_site"] == "tertiary"
    assert len(all_vars["medinfra_topology"]["hosts"]) == len(tertiary["_meta"]["hostvars"])
    assert {"49152-65535"} <= {p for f in all_vars["medinfra_topology"]["flows"] for p in f["ports"]}


def test_the_published_topology_is_to_dict_and_from_dict_reads_it(tertiary: dict[str, Any]) -> None:
    topology = load_topology(TERTIARY_TOPOLOGY)
    published = tertiary["_meta"]["hostvars"]["ws-001"]["medinfra_topology"]
    assert published == topology.to_dict()
    assert Topology.from_dict(published) == topology
    assert tertiary["_meta"]["hostvars"]["ws-001"]["medinfra_paths"] == default_paths()


def test_graph_of_the_lab_works() -> None:
    result = ansible_inventory("-i", str(LAB_TOPOLOGY.parent), "--graph")
    assert result.returncode == 0, result.stderr
    assert "@zone_his:" in result.stdout
    assert "|--his-db" in result.stdout


def test_invalid_topology_fails_with_the_located_messages(tmp_path: Path, topology_data: dict[str, Any]) -> None:
    topology_data["flows"][2]["to"] = "radiology"
    write_yaml(tmp_path / "hospital.yml", topology_data)
    result = ansible_inventory("-i", str(tmp_path), "--list")
    assert result.returncode != 0
    assert f"{tmp_path / 'hospital.yml'}:" in result.stderr
    assert "flows[2].to: 'radiology' is neither a zone nor a host" in result.stderr


def test_group_names_are_identifiers() -> None:
    assert group_name("sla", "24x7-critical") == "sla_24x7_critical"
    data = build_inventory(load_topology(TERTIARY_TOPOLOGY))
    assert all(name.replace("_", "a").isalnum() for name in data.groups)
