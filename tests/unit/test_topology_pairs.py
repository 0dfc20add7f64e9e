"""Database pairs in hospital.yml: the checks of standby_of and service_address, the pair's flows, its inventory."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from medinfra.inventory import build_inventory
from medinfra.problems import Problem, UserInputError
from medinfra.topology import Topology, load_topology
from medinfra.topology.load import load_topology_warnings
from medinfra.topology.redundancy import (
    DatabasePair,
    RequiredFlow,
    database_pairs,
    pair_of,
    pair_problems,
    pair_vars,
    pair_warnings,
    required_flows,
)
from tests.conftest import LAB_TOPOLOGY, write_yaml
from tests.unit.test_topology_validation import assert_located

MEDINFRA = Path(sys.executable).with_name("medinfra")

LAB_PAIR = DatabasePair(name="his-db", primary="his-db", standby="his-db-2", service_host="his-app", service_port=5432)

# What the contract between the database_ha role, the metrics and the audit says the lab's members are handed.
LAB_PAIR_VARS = {
    "name": "his-db",
    "primary": "his-db",
    "standby": "his-db-2",
    "service_host": "his-app",
    "service_port": 5432,
    "addresses": {"his-db": "10.231.20.11", "his-db-2": "10.231.21.11", "his-app": "10.231.20.10"},
    "ports": {"postgresql": 5432, "patroni": 8008, "etcd_client": 2379, "etcd_peer": 2380},
    "rpo_seconds": 900,
    "rto_seconds": 3600,
}

Mutation = Callable[[dict[str, Any]], None]


def host(data: dict[str, Any], name: str) -> dict[str, Any]:
    return next(h for h in data["hosts"] if h["name"] == name)


def change(name: str, **values: Any) -> Mutation:
    def mutate(data: dict[str, Any]) -> None:
        host(data, name).update(values)

    return mutate


def drop(name: str, key: str) -> Mutation:
    def mutate(data: dict[str, Any]) -> None:
        del host(data, name)[key]

    return mutate


def service_on(service_host: str) -> Mutation:
    return change("his-db", service_address={"host": service_host, "port": 5432})


def problems_of(tmp_path: Path, data: dict[str, Any]) -> list[Problem]:
    with pytest.raises(UserInputError) as caught:
        load_topology(write_yaml(tmp_path / "hospital.yml", data))
    return caught.value.problems


# In the lab: hosts[5] his-db, hosts[6] his-db-2, hosts[7] lis-legacy (legacy), hosts[8] pacs-01.
CASES: list[tuple[str, Mutation, str, str]] = [
    (
        "standby of an unknown host",
        change("his-db-2", standby_of="his-db-9"),
        "hosts[6].standby_of",
        "'his-db-9' is not a host",
    ),
    (
        "standby of itself",
        change("his-db-2", standby_of="his-db-2"),
        "hosts[6].standby_of",
        "a host cannot be its own standby",
    ),
    (
        "chained standby",
        change("pacs-01", standby_of="his-db-2", services=["his_db"]),
        "hosts[8].standby_of",
        "'his-db-2' is itself a standby of 'his-db'",
    ),
    (
        "legacy standby",
        change("his-db-2", legacy=True),
        "hosts[6].standby_of",
        "legacy hosts are left alone, so neither member of a pair may be legacy",
    ),
    ("legacy primary", change("his-db", legacy=True), "hosts[6].standby_of", "neither member of a pair may be legacy"),
    (
        "different services",
        change("his-db-2", services=["his_db", "pacs"]),
        "hosts[6].standby_of",
        "a standby runs its primary's services ['his_db'], not ['his_db', 'pacs']",
    ),
    (
        "two standbys",
        change("pacs-01", standby_of="his-db", services=["his_db"]),
        "hosts[5].name",
        "'his-db' has more than one standby: ['his-db-2', 'pacs-01']",
    ),
    (
        "standby without a service address",
        drop("his-db", "service_address"),
        "hosts[5]",
        "'his-db' has a standby, so it must declare the service_address clients use",
    ),
    (
        "service address without a standby",
        change("pacs-01", service_address={"host": "his-app", "port": 104}),
        "hosts[8].service_address",
        "only a host that has a standby declares a service_address",
    ),
    (
        "service address on an unknown host",
        service_on("proxy-9"),
        "hosts[5].service_address.host",
        "'proxy-9' is not a host",
    ),
    (
        "service address on the primary",
        service_on("his-db"),
        "hosts[5].service_address.host",
        "the service address is on a third host: a member that fails takes its proxy with it",
    ),
    (
        "service address on the standby",
        service_on("his-db-2"),
        "hosts[5].service_address.host",
        "the service address is on a third host",
    ),
    (
        "service address on a legacy host",
        service_on("lis-legacy"),
        "hosts[5].service_address.host",
        "'lis-legacy' is legacy: roles leave it alone, so nothing would proxy there",
    ),
]


@pytest.mark.parametrize(("mutate", "where", "words"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_each_pair_error_gives_a_located_message(
    tmp_path: Path, topology_data: dict[str, Any], mutate: Mutation, where: str, words: str
) -> None:
    mutate(topology_data)
    assert_located(tmp_path, problems_of(tmp_path, topology_data), where, words)


def test_the_lab_has_one_pair() -> None:
    topology = load_topology(LAB_TOPOLOGY)
    assert database_pairs(topology) == (LAB_PAIR,)
    assert LAB_PAIR.members == ("his-db", "his-db-2")
    assert LAB_PAIR.quorum == ("his-db", "his-db-2", "his-app")
    for name in ("his-db", "his-db-2", "his-app"):
        assert pair_of(topology, name) == LAB_PAIR
    assert pair_of(topology, "ws-01") is None
    assert pair_of(topology, "lis-legacy") is None


def test_a_pair_needs_replication_patroni_and_etcd_between_its_quorum() -> None:
    flows = required_flows(LAB_PAIR)
    assert len(flows) == len(set(flows)) == 20
    # Either member may lead: replication and Patroni both ways.
    for source, destination in (("his-db", "his-db-2"), ("his-db-2", "his-db")):
        assert RequiredFlow(source, destination, 5432, "replication") in flows
        assert RequiredFlow(source, destination, 8008, "Patroni's REST API") in flows
    # The proxy reaches both members; the members never open connections to the proxy's PostgreSQL port.
    assert {(f.destination, f.port) for f in flows if f.source == "his-app" and f.purpose != "etcd"} == {
        ("his-db", 5432),
        ("his-db", 8008),
        ("his-db-2", 5432),
        ("his-db-2", 8008),
    }
    # etcd among all three, both ports, every direction.
    etcd = {(f.source, f.destination, f.port) for f in flows if f.purpose == "etcd"}
    assert len(etcd) == 12 and ("his-db-2", "his-app", 2380) in etcd


def test_the_lab_declares_every_flow_its_pair_needs() -> None:
    topology = load_topology(LAB_TOPOLOGY)
    assert pair_problems(topology) == []
    assert pair_warnings(topology) == []


def test_a_missing_flow_fails_validation_at_the_standby(tmp_path: Path, topology_data: dict[str, Any]) -> None:
    flow = next(f for f in topology_data["flows"] if (f["from"], f["to"]) == ("his-db-2", "his-app"))
    flow["ports"] = [2379]
    path = write_yaml(tmp_path / "hospital.yml", topology_data)
    result = subprocess.run(
        [str(MEDINFRA), "topology", "validate", str(path)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 2, result.stdout
    line = next(n for n, text in enumerate(path.read_text().splitlines(), 1) if "standby_of: his-db" in text)
    assert (
        f"{path}:{line}: hosts[6].standby_of: the pair his-db/his-db-2 needs flows that none declares: "
        "his-db-2 -> his-app tcp/2380 (etcd)\n"
    ) in result.stderr
    assert "Traceback" not in result.stderr


def test_a_standby_in_its_primarys_zone_is_a_warning(tmp_path: Path, topology_data: dict[str, Any]) -> None:
    host(topology_data, "his-db-2").update(zone="his", address="10.231.20.12")
    topology, warnings = load_topology_warnings(write_yaml(tmp_path / "hospital.yml", topology_data))
    assert [(w.path, w.message) for w in warnings] == [
        (("hosts", 6, "zone"), "his-db-2 stands by for his-db in the same zone 'his': a fault of that zone takes both")
    ]
    assert database_pairs(topology) == (LAB_PAIR,)  # a warning, the pair still stands


def test_pair_vars_are_what_the_members_are_handed() -> None:
    topology = load_topology(LAB_TOPOLOGY)
    assert pair_vars(topology, LAB_PAIR) == LAB_PAIR_VARS


def test_the_quorum_hosts_get_the_pair_and_form_database_ha() -> None:
    inventory = build_inventory(load_topology(LAB_TOPOLOGY))
    assert inventory.groups["database_ha"] == ("his-db", "his-db-2", "his-app")
    for name, variables in inventory.host_vars.items():
        expected = LAB_PAIR_VARS if name in ("his-db", "his-db-2", "his-app") else None
        assert variables["medinfra_database_pair"] == expected, name


def test_a_topology_without_pairs_has_an_empty_database_ha(tmp_path: Path, topology_data: dict[str, Any]) -> None:
    del host(topology_data, "his-db-2")["standby_of"]
    del host(topology_data, "his-db")["service_address"]
    inventory = build_inventory(load_topology(write_yaml(tmp_path / "hospital.yml", topology_data)))
    assert inventory.groups["database_ha"] == ()
    assert all(v["medinfra_database_pair"] is None for v in inventory.host_vars.values())


def test_the_round_trip_keeps_the_pair() -> None:
    topology = load_topology(LAB_TOPOLOGY)
    data = topology.to_dict()
    by_name = {h["name"]: h for h in data["hosts"]}
    assert by_name["his-db-2"]["standby_of"] == "his-db"
    assert by_name["his-db"]["service_address"] == {"host": "his-app", "port": 5432}
    assert by_name["his-app"]["standby_of"] is None and by_name["his-app"]["service_address"] is None
    again = Topology.from_dict(data)
    assert again == topology
    assert database_pairs(again) == (LAB_PAIR,)
