"""Schema and semantic validation of hospital.yml: one broken topology per error class."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from medinfra.problems import Problem, UserInputError
from medinfra.topology import load_topology
from medinfra.topology.checks import check_flows
from tests.conftest import LAB_TOPOLOGY, TERTIARY_TOPOLOGY, write_yaml


def problems_of(tmp_path: Path, data: Any) -> list[Problem]:
    path = write_yaml(tmp_path / "hospital.yml", data)
    with pytest.raises(UserInputError) as caught:
        load_topology(path)
    return caught.value.problems


def host_index(data: dict[str, Any], name: str) -> int:
    return next(i for i, h in enumerate(data["hosts"]) if h["name"] == name)


@pytest.mark.parametrize("path", [LAB_TOPOLOGY, TERTIARY_TOPOLOGY])
def test_shipped_topologies_are_valid(path: Path) -> None:
    topology = load_topology(path)
    assert topology.hosts and topology.zones and topology.flows
    for host in topology.hosts:
        assert host.address in topology.zone(host.zone).network


def test_tertiary_is_a_realistic_size() -> None:
    topology = load_topology(TERTIARY_TOPOLOGY)
    assert len(topology.hosts) >= 50
    assert len(topology.zones) >= 8
    assert any(h.legacy for h in topology.hosts)


def test_lab_has_the_zones_and_hosts_the_demo_needs() -> None:
    topology = load_topology(LAB_TOPOLOGY)
    assert {z.name for z in topology.zones} == {"mgmt", "his", "pacs", "dmz", "clinical", "guest"}
    services = {s for h in topology.hosts for s in h.services}
    assert {
        "bastion",
        "monitoring_server",
        "backup_server",
        "his_app",
        "his_db",
        "pacs",
        "turn_relay",
        "workstation",
        "zone_firewall",
    } <= services
    assert [h.name for h in topology.hosts if h.legacy] == ["lis-legacy"]


Mutation = Callable[[dict[str, Any]], None]


def _set(path: tuple[Any, ...], value: Any) -> Mutation:
    def mutate(data: dict[str, Any]) -> None:
        target = data
        for part in path[:-1]:
            target = target[part]
        target[path[-1]] = value

    return mutate


def _host(name: str, key: str, value: Any) -> Mutation:
    def mutate(data: dict[str, Any]) -> None:
        data["hosts"][host_index(data, name)][key] = value

    return mutate


# (error class, mutation, expected path, words the message must contain)
CASES: list[tuple[str, Mutation, str, str]] = [
    ("missing required key", lambda d: d["hosts"][0].pop("zone"), "hosts[0]", "'zone' is a required property"),
    ("unknown key", _set(("zones", 0, "vlan"), 12), "zones[0]", "Additional properties are not allowed ('vlan'"),
    ("bad enum", _set(("zones", 1, "trust"), "very"), "zones[1].trust", "'very' is not one of"),
    ("unknown service", _host("his-db", "services", ["mysql"]), "hosts[5].services[0]", "'mysql' is not one of"),
    ("port of wrong type", _set(("flows", 0, "ports"), ["ssh"]), "flows[0].ports[0]", "is not a port"),
    ("tcp flow without ports", lambda d: d["flows"][0].pop("ports"), "flows[0]", "'ports' is a required property"),
    ("invalid CIDR", _set(("zones", 2, "cidr"), "10.231.30.7/24"), "zones[2].cidr", "has host bits set"),
    ("overlapping CIDRs", _set(("zones", 5, "cidr"), "10.231.0.0/16"), "zones[5].cidr", "overlaps 10.231.10.0/24"),
    (
        "address outside zone",
        _host("his-db", "address", "10.231.30.11"),
        "hosts[5].address",
        "outside zone 'his' (10.231.20.0/24)",
    ),
    ("invalid address", _host("his-db", "address", "10.231.20.300"), "hosts[5].address", "not a valid IPv4 address"),
    ("unknown zone", _host("his-db", "zone", "icu"), "hosts[5].zone", "unknown zone 'icu'"),
    ("unknown SLA class", _host("his-db", "sla", "gold"), "hosts[5].sla", "unknown SLA class 'gold'"),
    ("duplicate host name", _host("his-db", "name", "his-app"), "hosts[5]", "duplicate host name his-app"),
    (
        "duplicate address",
        _host("his-db", "address", "10.231.20.10"),
        "hosts[5].address",
        "duplicate address 10.231.20.10 (already used by hosts[4])",
    ),
    ("duplicate zone name", _set(("zones", 5, "name"), "dmz"), "zones[5]", "duplicate zone name dmz"),
    ("host named like a zone", _host("ws-01", "name", "clinical"), "hosts[10].name", "is also a zone name"),
    ("host named like a group", _host("ws-01", "name", "phi"), "hosts[10].name", "is also an inventory group"),
    (
        "flow from unknown endpoint",
        _set(("flows", 3, "from"), "radiology"),
        "flows[3].from",
        "'radiology' is neither a zone nor a host",
    ),
    ("flow to unknown endpoint", _set(("flows", 3, "to"), "icu"), "flows[3].to", "'icu' is neither a zone nor a host"),
    ("reversed port range", _set(("flows", 0, "ports"), ["2000-1000"]), "flows[0].ports[0]", "bad port range"),
    ("port range past 65535", _set(("flows", 0, "ports"), ["60000-70000"]), "flows[0].ports[0]", "bad port range"),
    ("port zero", _set(("flows", 0, "ports"), [0]), "flows[0].ports[0]", "is not a port"),
    (
        "gateway outside zone",
        _set(("zones", 1, "gateway"), "10.231.99.254"),
        "zones[1].gateway",
        "not a usable address of 10.231.20.0/24",
    ),
    (
        "host on the gateway",
        _host("his-db", "address", "10.231.20.254"),
        "hosts[5].address",
        "is the gateway of zone 'his'",
    ),
]


@pytest.mark.parametrize(("mutate", "where", "words"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_each_error_class_gives_a_located_message(
    tmp_path: Path, topology_data: dict[str, Any], mutate: Mutation, where: str, words: str
) -> None:
    mutate(topology_data)
    problems = problems_of(tmp_path, topology_data)
    rendered = [str(p) for p in problems]
    matching = [p for p in problems if words in p.message]
    assert matching, rendered
    problem = matching[0]
    assert str(problem).startswith(f"{tmp_path / 'hospital.yml'}:"), rendered
    assert f": {where}: " in str(problem), rendered
    assert problem.line is not None and problem.line > 0


def test_line_numbers_point_at_the_offending_entry(tmp_path: Path, topology_data: dict[str, Any]) -> None:
    topology_data["hosts"][host_index(topology_data, "his-db")]["address"] = "10.231.30.11"
    problems = problems_of(tmp_path, topology_data)
    lines = (tmp_path / "hospital.yml").read_text().splitlines()
    assert "10.231.30.11" in lines[problems[0].line - 1]


def test_every_problem_is_reported_not_only_the_first(tmp_path: Path, topology_data: dict[str, Any]) -> None:
    topology_data["hosts"][0]["zone"] = "nowhere"
    topology_data["flows"][0]["to"] = "nobody"
    topology_data["zones"][5]["cidr"] = "10.231.10.0/25"
    paths = {p.path for p in problems_of(tmp_path, topology_data)}
    assert {("hosts", 0, "zone"), ("flows", 0, "to"), ("zones", 5, "cidr")} <= paths


@pytest.mark.parametrize(
    ("text", "words"),
    [("site: [unclosed\n", "invalid YAML"), ("- just\n- a list\n", "must be a YAML mapping"), ("", "must be a YAML")],
)
def test_malformed_files(tmp_path: Path, text: str, words: str) -> None:
    path = tmp_path / "hospital.yml"
    path.write_text(text)
    with pytest.raises(UserInputError) as caught:
        load_topology(path)
    assert words in str(caught.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(UserInputError, match="file not found"):
        load_topology(tmp_path / "absent.yml")


@given(start=st.integers(-5, 70000), end=st.integers(-5, 70000))
def test_port_ranges_are_accepted_exactly_when_sane(start: int, end: int) -> None:
    zones = [{"name": "a"}]
    flows = [{"from": "a", "to": "a", "proto": "tcp", "ports": [f"{start}-{end}"]}]
    if start < 0 or end < 0:
        return  # the schema's pattern rejects signs before the semantic check runs
    findings = check_flows(flows, zones, [])
    assert (not findings) == (1 <= start <= end <= 65535)
