"""The segmentation rules: every declared flow is accepted, nothing undeclared is; the nftables text is valid."""

from __future__ import annotations

import shutil
import subprocess
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from medinfra.segmentation.rules import Opening, accepted, forward_rules, host_ruleset, input_rules
from medinfra.topology.load import load_topology
from medinfra.topology.model import Flow, Host, PortRange, Site, Topology, Zone

PURPOSES = ("mgmt", "his", "pacs", "dmz", "guest")
PROTOS = ("tcp", "udp", "icmp")


@st.composite
def topologies(draw: st.DrawFn) -> Topology:
    count = draw(st.integers(2, 5))
    purposes = draw(st.lists(st.sampled_from(PURPOSES), min_size=count, max_size=count))
    zones = tuple(
        Zone(f"z{i}", IPv4Network(f"10.{i}.0.0/24"), "high", purpose, None, None) for i, purpose in enumerate(purposes)
    )
    hosts = []
    for i, zone in enumerate(zones):
        for j in range(draw(st.integers(1, 3))):
            services = ("zone_firewall",) if i == 0 and j == 0 else ()
            hosts.append(Host(f"h{i}-{j}", zone.name, IPv4Address(f"10.{i}.0.{10 + j}"), services, "s", "internal",
                              (), False, None))
    endpoints = [z.name for z in zones] + [h.name for h in hosts]
    flows = []
    for _ in range(draw(st.integers(0, 8))):
        proto = draw(st.sampled_from(PROTOS))
        ports: tuple[PortRange, ...] = ()
        if proto != "icmp":
            starts = draw(st.lists(st.integers(1, 2000), min_size=1, max_size=3, unique=True))
            ports = tuple(PortRange(s, s + draw(st.integers(0, 3))) for s in starts)
        flows.append(Flow(draw(st.sampled_from(endpoints)), draw(st.sampled_from(endpoints)), proto, ports, "flow"))
    return Topology("test", Site("t", "t", None, None, ()), {}, zones, tuple(hosts), tuple(flows))


def declared(topology: Topology, source: Host, destination: Host, proto: str, port: int) -> bool:
    """The oracle, from the topology's own notion of endpoints (not from the rules' networks)."""
    return any(
        flow.proto == proto
        and topology.endpoint_covers(flow.source, source)
        and topology.endpoint_covers(flow.destination, destination)
        and (proto == "icmp" or any(r.start <= port <= r.end for r in flow.ports))
        for flow in topology.flows
    )


def management_ssh(topology: Topology, source: Host, proto: str, port: int) -> bool:
    return proto == "tcp" and port == 22 and topology.zone(source.zone).purpose == "mgmt"


@settings(max_examples=300, deadline=None)
@given(topologies(), st.data())
def test_each_host_accepts_exactly_the_declared_flows_and_management_ssh(topology, data):
    destination = data.draw(st.sampled_from(topology.hosts))
    source = data.draw(st.sampled_from(topology.hosts))
    proto = data.draw(st.sampled_from(PROTOS))
    flow_ports = [p for f in topology.flows for r in f.ports for p in (r.start, r.end, r.end + 1)]
    port = data.draw(st.sampled_from([22, 1, 2001, *flow_ports]))
    rules = input_rules(topology, destination)
    expected = declared(topology, source, destination, proto, port) or management_ssh(topology, source, proto, port)
    assert accepted(rules, source.address, destination.address, proto, port) == expected


@settings(max_examples=300, deadline=None)
@given(topologies(), st.data())
def test_the_zone_firewall_forwards_exactly_the_declared_flows(topology, data):
    source = data.draw(st.sampled_from(topology.hosts))
    destination = data.draw(st.sampled_from([h for h in topology.hosts if h.zone != source.zone] or [source]))
    proto = data.draw(st.sampled_from(PROTOS))
    port = data.draw(st.sampled_from([22, 1, *(p for f in topology.flows for r in f.ports for p in (r.start, r.end))]))
    expected = declared(topology, source, destination, proto, port)
    assert accepted(forward_rules(topology), source.address, destination.address, proto, port) == expected


def test_openings_and_extra_management_sources():
    topology = load_topology(Path("inventories/lab/hospital.yml"))
    his_app, ws = topology.host("his-app"), topology.host("ws-01")
    opening = Opening("tcp", (PortRange(9100, 9100),), ("monitor-01",), "node exporter")
    rules = input_rules(topology, his_app, [opening], [IPv4Network("10.231.20.1/32")])
    monitor = topology.host("monitor-01").address
    assert accepted(rules, monitor, his_app.address, "tcp", 9100)
    assert not accepted(rules, ws.address, his_app.address, "tcp", 9100)
    assert accepted(rules, IPv4Address("10.231.20.1"), his_app.address, "tcp", 22)  # the lab's controller
    assert not accepted(rules, IPv4Address("10.231.20.2"), his_app.address, "tcp", 22)
    assert accepted(rules, ws.address, his_app.address, "tcp", 443)  # "Clinicians use the HIS web"


def nft_check(text: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "ruleset.nft"
    path.write_text(text)
    # In a fresh network namespace: the check never touches this machine's own ruleset.
    return subprocess.run(["unshare", "--net", "nft", "-c", "-f", str(path)], capture_output=True, text=True,
                          check=False)


@pytest.mark.skipif(shutil.which("nft") is None, reason="nftables is installed by scripts/install-deps.sh")
def test_rendered_rulesets_are_valid_nftables_and_only_touch_our_table(tmp_path):
    topology = load_topology(Path("inventories/lab/hospital.yml"))
    for host in topology.hosts:
        text = host_ruleset(topology, host, management=[IPv4Network("10.231.20.1/32")])
        done = nft_check(text, tmp_path)
        assert done.returncode == 0, (host.name, done.stderr)
        assert "flush ruleset" not in text
        assert {line.split()[2] for line in text.splitlines() if line.startswith("table")} == {"medinfra"}
        assert ("chain forward" in text) == (host.name == "fw")
    fw = host_ruleset(topology, topology.host("fw"))
    assert 'ip saddr @zone_clinical ip daddr 10.231.20.10 tcp dport 443 counter accept' in fw
    assert "policy drop;" in fw and 'log prefix "medinfra-fwd-drop: "' in fw


@settings(max_examples=25, deadline=None)
@given(topologies())
def test_any_topology_renders_valid_nftables(tmp_path_factory, topology):
    if shutil.which("nft") is None:
        pytest.skip("nftables is installed by scripts/install-deps.sh")
    tmp_path = tmp_path_factory.mktemp("nft")
    for host in topology.hosts[:3]:
        done = nft_check(host_ruleset(topology, host), tmp_path)
        assert done.returncode == 0, done.stderr


def test_the_filter_reads_the_inventory_view_and_names_bad_openings():
    from ansible.errors import AnsibleFilterError
    from ansible_collections.medinfra.hospital.plugins.filter.segmentation import nftables

    topology = load_topology(Path("inventories/lab/hospital.yml"))
    data = topology.to_dict()
    text = nftables(data, "his-db", [{"proto": "tcp", "ports": ["9100"], "from": ["monitor-01"]}], ["10.231.20.1"])
    opening = Opening("tcp", (PortRange(9100, 9100),), ("monitor-01",), "declared opening")
    assert text == host_ruleset(topology, topology.host("his-db"), [opening], [IPv4Network("10.231.20.1/32")])
    with pytest.raises(AnsibleFilterError, match=r"network_segmentation_openings\[1\]\.from: .*unknown: \['nowhere'\]"):
        nftables(data, "his-db", [{"proto": "tcp", "ports": [1], "from": ["his"]},
                                  {"proto": "tcp", "ports": [1], "from": ["nowhere"]}])
    with pytest.raises(AnsibleFilterError, match=r"\[0\]\.proto: 'sctp' is not tcp or udp"):
        nftables(data, "his-db", [{"proto": "sctp", "ports": [1], "from": ["his"]}])
    with pytest.raises(AnsibleFilterError, match=r"\[0\]\.ports: \[70000\]"):
        nftables(data, "his-db", [{"proto": "udp", "ports": [70000], "from": ["his"]}])
    with pytest.raises(AnsibleFilterError, match="'ghost' is not a host of medinfra_topology"):
        nftables(data, "ghost")
