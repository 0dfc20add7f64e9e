"""The probes the controller derives for a host's firewall: interfaces from recorded `ip -json` output of lab hosts
(tests/unit/fixtures/network), and a zone firewall's forward probes from the lab topology's flows."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from medinfra.collector import collector_module
from medinfra.compliance.derived import forward_probes, inbound, listener_probes, own_address, route_device
from medinfra.compliance.firewall import Probe
from medinfra.inventory import build_inventory
from medinfra.topology.load import load_topology
from tests.conftest import LAB_TOPOLOGY

RECORDED = Path(__file__).parent / "fixtures" / "network"
LAB = build_inventory(load_topology(LAB_TOPOLOGY))


def network(host: str) -> Any:
    """A lab host's network section, as the collector parses what `ip -json` printed there."""
    folder = RECORDED / host
    return collector_module().network_facts((folder / "address.json").read_text(), (folder / "route4.json").read_text())


def test_the_parser_keeps_each_interface_with_its_addresses() -> None:
    interfaces = {i["name"]: i["addresses"] for i in network("fw")["interfaces"]}
    assert interfaces["lo"] == ["127.0.0.1/8", "::1/128"]
    assert interfaces["eth1"][0] == "10.231.20.254/24" and len(interfaces) == 7
    assert collector_module().local_addresses(network("his-app"))[:2] == ["10.231.20.10", "127.0.0.1"]


@pytest.mark.parametrize(
    ("host", "address", "device"),
    [
        ("fw", "10.231.20.77", "eth1"),  # connected: the HIS zone's leg
        ("fw", "10.231.60.9", "eth5"),
        ("fw", "203.0.113.10", None),  # the lab's router has no default route
        ("his-app", "10.231.10.128", "eth0"),  # via the zone gateway
        ("his-app", "2001:db8::10", None),  # IPv6 routes are not read
    ],
)
def test_route_device_from_recorded_routes(host: str, address: str, device: str | None) -> None:
    assert route_device(network(host), address) == device


def test_the_longest_prefix_wins_and_unreachable_routes_have_no_device() -> None:
    routes = {"routes": [
        {"destination": "default", "type": "unicast", "device": "eth0", "gateway": "192.0.2.1"},
        {"destination": "10.9.0.0/16", "type": "unicast", "device": "eth1", "gateway": None},
        {"destination": "10.9.8.0/24", "type": "unreachable", "device": None, "gateway": None},
    ]}
    assert route_device(routes, "10.9.1.1") == "eth1"
    assert route_device(routes, "10.9.8.1") is None
    assert route_device(routes, "198.51.100.1") == "eth0"
    assert route_device({"unavailable": "ip: not installed"}, "198.51.100.1") is None


def test_forward_probes_cover_every_zone_pair_egress_and_ingress() -> None:
    view = LAB.host_vars["fw"]
    zones, flows = LAB.all_vars["medinfra_zones"], view["medinfra_forwarded_flows"]
    probes = forward_probes(zones, flows, network("fw"))
    count = len(zones)
    assert len(probes) == count * (count - 1) * 2 + count * 3
    by_purpose = {purpose.split(" (")[0]: (intended, probe) for purpose, intended, probe in probes}
    # Declared by the topology: management administers the HIS zone; clinicians reach nothing over SSH.
    assert by_purpose["ssh_between_zones mgmt->his"][0] == "accept"
    assert by_purpose["ssh_between_zones clinical->his"][0] == "drop"
    intended, probe = by_purpose["closed_port_between_zones guest->his"]
    assert (intended, probe.iifname, probe.oifname, probe.hook) == ("drop", "eth5", "eth1", "forward")
    assert {i for p, i, _ in probes if p.startswith(("egress_from_zone", "from_outside_to_zone"))} == {"drop"}


def test_only_zone_firewalls_carry_forwarded_flows() -> None:
    assert LAB.host_vars["fw"]["medinfra_forwarded_flows"]
    assert LAB.host_vars["his-app"]["medinfra_forwarded_flows"] == []


def test_listener_probes_skip_ssh_loopback_and_management_and_name_declared_flows() -> None:
    listening = [
        {"protocol": "tcp", "port": 22, "process": "sshd", "loopback_only": False},
        {"protocol": "tcp", "port": 5432, "process": "postgres", "loopback_only": True},
        {"protocol": "tcp", "port": 443, "process": "nginx", "loopback_only": False},
        {"protocol": "udp", "port": 123, "process": "chronyd", "loopback_only": False},
    ]
    view = LAB.host_vars["his-app"]
    probes = listener_probes(listening, LAB.all_vars["medinfra_zones"], view["medinfra_flows_in"])
    purposes = {purpose: intended for purpose, intended, _ in probes}
    zones = [z["name"] for z in LAB.all_vars["medinfra_zones"] if z["purpose"] != "mgmt"]
    # Two services, each from every zone but management and from outside over IPv4 and IPv6.
    assert len(probes) == 2 * (len(zones) + 2)
    assert purposes["tcp/443 (nginx) from zone clinical (declared flow: Clinicians use the HIS web)"] == "accept"
    assert purposes["tcp/443 (nginx) from zone guest"] == "drop"
    assert purposes["udp/123 (chronyd) from outside"] == "drop"
    assert not any("22" in purpose.split()[0] or "5432" in purpose for purpose in purposes)


def test_probes_go_to_the_inventory_address_only_where_the_host_holds_it() -> None:
    assert own_address(network("his-app"), {"address": "10.231.20.10"}) == "10.231.20.10"
    # A jump name, a NAT address or no network evidence: the destination stays unknown.
    assert own_address(network("his-app"), {"address": "his-app.example"}) is None
    assert own_address(network("his-app"), {"address": "192.0.2.10"}) is None
    assert own_address({"unavailable": "ip: not installed"}, {"address": "10.231.20.10"}) is None
    v4, v6 = Probe("10.231.10.128", "tcp", 22), Probe("2001:db8::10", "tcp", 22)
    assert inbound(v4, network("his-app"), "10.231.20.10") == Probe(
        "10.231.10.128", "tcp", 22, daddr="10.231.20.10", iifname="eth0"
    )
    assert inbound(v6, network("his-app"), "10.231.20.10").daddr is None
