"""Egress limits of service users (the relay's coturn): an output chain by uid, internal networks merged for nft, the
filter's inputs checked, and the relay role's denied peers kept in step with what the audit calls internal."""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from ipaddress import IPv4Network, IPv6Network, collapse_addresses
from itertools import combinations
from pathlib import Path
from typing import Any

import pytest
import yaml
from ansible.errors import AnsibleFilterError
from ansible_collections.medinfra.hospital.plugins.filter.segmentation import nftables

from medinfra.collector import collector_module
from medinfra.segmentation.rules import Egress, host_ruleset, internal_networks, output_chain, parse_egress
from medinfra.topology.load import load_topology
from medinfra.topology.model import Topology
from tests.conftest import LAB_TOPOLOGY, ROOT
from tests.unit.test_segmentation_rules import nft_check

WHERE = "network_segmentation_egress"
SPECIAL: tuple[str, ...] = collector_module().TURN_INTERNAL_NETWORKS
# getent passwd as the getent module returns it: {name: [password, uid, gid, gecos, home, shell]}
USERS = {
    "root": ["x", "0", "0", "root", "/root", "/bin/bash"],
    "turnserver": ["x", "104", "105", "", "/var/lib/turnserver", "/usr/sbin/nologin"],
}
RELAY_EGRESS: dict[str, Any] = {
    "user": "turnserver",
    "allow": ["media-01"],
    "comment": "coturn reaches only the media server",
}


@pytest.fixture(scope="module")
def topology() -> Topology:
    return load_topology(LAB_TOPOLOGY)


@pytest.fixture(scope="module")
def topology_data(topology: Topology) -> dict[str, Any]:
    return topology.to_dict()


def chain_lines(ruleset: str, name: str) -> list[str]:
    """The statements of one chain, without its braces."""
    body = ruleset.split(f"  chain {name} {{\n", 1)[1].split("\n  }", 1)[0]
    return [line.strip() for line in body.splitlines()]


def overlapping(networks: Sequence[IPv4Network | IPv6Network]) -> list[tuple[str, str]]:
    return [(str(a), str(b)) for a, b in combinations(networks, 2) if a.version == b.version and a.overlaps(b)]


# ---------------------------------------------------------------- the output chain


@pytest.mark.parametrize("users", [None, {}, {"root": USERS["root"]}])
def test_a_user_not_on_the_host_gets_no_output_chain(topology_data: dict[str, Any], users: Any) -> None:
    text = nftables(topology_data, "turn", [], [], [RELAY_EGRESS], users)
    assert "chain output" not in text and "skuid" not in text
    assert text == nftables(topology_data, "turn")


def test_the_relay_user_may_start_traffic_only_to_its_allowed_peer(topology_data: dict[str, Any]) -> None:
    text = nftables(topology_data, "turn", [], [], [RELAY_EGRESS], USERS)
    lines = chain_lines(text, "output")
    assert lines[0] == "type filter hook output priority filter; policy accept;"
    assert lines[1] == "ct state established,related accept"
    assert all(line.startswith("meta skuid 104 ") for line in lines[2:])  # the uid, not the gid 105
    accept = lines.index(
        'meta skuid 104 ip daddr 10.231.40.20 counter accept comment "turnserver: allowed internal peers"'
    )
    v4_drop = next(
        i for i, line in enumerate(lines) if line.startswith("meta skuid 104 ip daddr {") and " counter drop " in line
    )
    v6_drop = next(
        i for i, line in enumerate(lines) if line.startswith("meta skuid 104 ip6 daddr {") and " counter drop " in line
    )
    assert accept < v4_drop and accept < v6_drop
    assert lines[v4_drop].endswith('counter drop comment "coturn reaches only the media server"')
    v4_set = lines[v4_drop].split("{ ", 1)[1].split(" }", 1)[0].split(", ")
    v6_set = lines[v6_drop].split("{ ", 1)[1].split(" }", 1)[0].split(", ")
    assert "10.0.0.0/8" in v4_set and not any(item.startswith("10.231.") for item in v4_set)
    assert "::ffff:0:0/96" in v6_set and "fc00::/7" in v6_set
    # Each drop is logged first, rate-limited, with the same targets.
    assert lines[v4_drop - 1].startswith("meta skuid 104 ip daddr { " + ", ".join(v4_set) + " } limit rate ")
    assert 'log prefix "medinfra-out-drop: "' in lines[v4_drop - 1]
    # The input chain is unchanged by the egress limit.
    assert chain_lines(text, "input") == chain_lines(nftables(topology_data, "turn"), "input")


def test_each_limited_user_gets_its_own_rules(topology: Topology) -> None:
    limits = [
        Egress("turnserver", 104, (IPv4Network("10.231.40.20/32"),), "relay"),
        Egress("mediad", 2001, (), "media"),
    ]
    lines = chain_lines(output_chain(topology, limits, SPECIAL), "output")
    assert sum(line.startswith("meta skuid 104 ") for line in lines) == 5  # one accept, two log, two drop
    assert sum(line.startswith("meta skuid 2001 ") for line in lines) == 4  # nothing allowed: no accept
    assert not any(line.startswith("meta skuid 2001 ") and "accept" in line for line in lines)


def test_without_ipv6_special_networks_there_is_no_ipv6_rule(topology: Topology) -> None:
    limit = Egress("turnserver", 104, (), "relay")
    lines = chain_lines(output_chain(topology, [limit], ["10.0.0.0/8", "192.168.0.0/16"]), "output")
    assert not any("ip6 daddr" in line for line in lines)
    assert lines[-1] == 'meta skuid 104 ip daddr { 10.0.0.0/8, 192.168.0.0/16 } counter drop comment "relay"'


@pytest.mark.skipif(shutil.which("nft") is None, reason="nftables is installed by scripts/install-deps.sh")
@pytest.mark.parametrize("allow", [["media-01"], ["dmz"], ["10.231.40.16/28", "his-db"], []])
def test_rulesets_with_egress_are_valid_nftables(
    topology_data: dict[str, Any], tmp_path: Path, allow: list[str]
) -> None:
    egress = [{"user": "turnserver", "allow": allow}]
    for host in ("turn", "fw"):
        text = nftables(topology_data, host, [], ["10.231.20.1"], egress, USERS)
        assert "chain output" in text
        done = nft_check(text, tmp_path)
        assert done.returncode == 0, (host, allow, done.stderr)


# ---------------------------------------------------------------- internal networks


def test_internal_networks_merge_the_zones_into_the_special_ranges(topology: Topology) -> None:
    v4, v6 = internal_networks(topology, SPECIAL)
    assert overlapping(v4) == [] and overlapping(v6) == []
    assert [net for net in v4 if net.overlaps(IPv4Network("10.0.0.0/8"))] == [IPv4Network("10.0.0.0/8")]
    assert IPv4Network("224.0.0.0/3") in v4  # 224/4 and 240/4 are adjacent: one interval
    assert all(isinstance(net, IPv6Network) for net in v6)
    for text in SPECIAL:
        if ":" in text:
            assert any(IPv6Network(text).subnet_of(net) for net in v6), text
        else:
            assert any(IPv4Network(text).subnet_of(net) for net in v4), text
    for zone in topology.zones:
        assert any(zone.network.subnet_of(net) for net in v4), zone.name


def test_internal_networks_without_special_ranges_are_the_zones(topology: Topology) -> None:
    v4, v6 = internal_networks(topology, ())
    # Adjacent zones become one network: his (10.231.20.0/24) and his-dr (10.231.21.0/24) are 10.231.20.0/23.
    assert v4 == list(collapse_addresses(zone.network for zone in topology.zones)) and v6 == []
    assert IPv4Network("10.231.20.0/23") in v4
    v4, _ = internal_networks(topology, ["192.168.0.0/16", "10.231.40.0/23"])
    assert IPv4Network("10.231.40.0/23") in v4 and IPv4Network("10.231.40.0/24") not in v4
    assert IPv4Network("192.168.0.0/16") in v4 and overlapping(v4) == []


# ---------------------------------------------------------------- parsing the role variables


@pytest.mark.parametrize(
    ("allow", "expected"),
    [
        (["media-01"], ("10.231.40.20/32",)),
        (["dmz"], ("10.231.40.0/24",)),
        (["10.231.40.16/28"], ("10.231.40.16/28",)),
        (["10.231.40.20"], ("10.231.40.20/32",)),
        ("media-01", ("10.231.40.20/32",)),  # one entry without a list
        (["dmz", "his-db", "192.0.2.0/24"], ("10.231.40.0/24", "10.231.20.11/32", "192.0.2.0/24")),
        ([], ()),
    ],
)
def test_allow_by_host_zone_or_network(topology: Topology, allow: Any, expected: tuple[str, ...]) -> None:
    (limit,) = parse_egress(topology, [{"user": "turnserver", "allow": allow}], {"turnserver": 104}, WHERE)
    assert limit == Egress("turnserver", 104, tuple(IPv4Network(net) for net in expected), "turnserver egress")


@pytest.mark.parametrize(
    ("allow", "rendered"),
    [
        (["media-01"], "ip daddr 10.231.40.20 counter accept"),
        (["dmz"], "ip daddr @zone_dmz counter accept"),
        (["10.231.40.16/28"], "ip daddr 10.231.40.16/28 counter accept"),
        (["dmz", "his-db"], "ip daddr { 10.231.40.0/24, 10.231.20.11 } counter accept"),
    ],
)
def test_allowed_peers_as_nft_addresses(topology_data: dict[str, Any], allow: list[str], rendered: str) -> None:
    text = nftables(topology_data, "turn", [], [], [{"user": "turnserver", "allow": allow}], USERS)
    assert f"meta skuid 104 {rendered} comment" in text


def test_users_not_on_the_host_are_skipped(topology: Topology) -> None:
    items = [{"user": "turnserver", "allow": ["media-01"]}, {"user": "mediad", "allow": ["dmz"], "comment": "m"}]
    assert [limit.user for limit in parse_egress(topology, items, {"mediad": 2001}, WHERE)] == ["mediad"]
    assert parse_egress(topology, items, {}, WHERE) == []


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ({"allow": ["media-01"]}, r"network_segmentation_egress\[0\]\.user: needs the service's user name"),
        ({"user": "", "allow": []}, r"network_segmentation_egress\[0\]\.user: "),
        (
            {"user": "turnserver", "allow": ["nowhere"]},
            r"network_segmentation_egress\[0\]\.allow: 'nowhere' is no zone or host of the topology, nor an IPv4 net",
        ),
        ({"user": "turnserver", "allow": ["fc00::/7"]}, r"network_segmentation_egress\[0\]\.allow: 'fc00::/7'"),
        ({"user": "turnserver", "allow": ["10.231.40.1/24"]}, r"network_segmentation_egress\[0\]\.allow: "),
    ],
)
def test_bad_egress_items_are_named(topology: Topology, item: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_egress(topology, [item], {"turnserver": 104}, WHERE)
    with pytest.raises(ValueError, match=message):
        parse_egress(topology, [item], {}, WHERE)  # checked even where the user does not exist yet


def test_a_bad_second_item_is_named_with_its_index(topology: Topology) -> None:
    items = [RELAY_EGRESS, {"user": "mediad", "allow": ["media-01", "nowhere"]}]
    with pytest.raises(ValueError, match=r"^network_segmentation_egress\[1\]\.allow: 'nowhere'"):
        parse_egress(topology, items, {"turnserver": 104, "mediad": 2001}, WHERE)


def test_the_filter_names_a_bad_egress_item(topology_data: dict[str, Any]) -> None:
    with pytest.raises(
        AnsibleFilterError, match=r"^medinfra\.hospital\.nftables: network_segmentation_egress\[0\]\.allow: "
    ):
        nftables(topology_data, "turn", [], [], [{"user": "turnserver", "allow": ["nowhere"]}], USERS)
    with pytest.raises(AnsibleFilterError, match=r"network_segmentation_egress\[0\]\.user"):
        nftables(topology_data, "turn", [], [], [{"allow": ["dmz"]}], USERS)


def test_the_filter_renders_what_host_ruleset_renders(topology: Topology, topology_data: dict[str, Any]) -> None:
    text = nftables(topology_data, "turn", [], [], [RELAY_EGRESS], USERS)
    limit = Egress("turnserver", 104, (IPv4Network("10.231.40.20/32"),), RELAY_EGRESS["comment"])
    assert text == host_ruleset(topology, topology.host("turn"), egress=[limit], special=SPECIAL)


# ---------------------------------------------------------------- the role and the audit agree


def test_the_relay_denies_every_network_the_audit_calls_internal() -> None:
    defaults = yaml.safe_load((ROOT / "roles" / "rtc_relay" / "defaults" / "main.yml").read_text(encoding="utf-8"))
    denied = [IPv4Network(text) for text in defaults["rtc_relay_denied_peer_networks"] if ":" not in text]
    denied6 = [IPv6Network(text) for text in defaults["rtc_relay_denied_peer_networks"] if ":" in text]
    assert len(denied) + len(denied6) == len(defaults["rtc_relay_denied_peer_networks"])
    merged, merged6 = list(collapse_addresses(denied)), list(collapse_addresses(denied6))
    uncovered = [
        text for text in SPECIAL if ":" not in text and not any(IPv4Network(text).subnet_of(n) for n in merged)
    ]
    uncovered += [text for text in SPECIAL if ":" in text and not any(IPv6Network(text).subnet_of(n) for n in merged6)]
    assert uncovered == []
