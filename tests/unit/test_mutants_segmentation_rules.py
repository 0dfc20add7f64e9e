"""The segmentation rules to the letter: the whole nftables table of a small site, the comments nft gets, the
`intended` verdicts around SSH inside management, and the exact faults of bad role variables (scripts/mutation.py's
`segmentation_rules` survivors)."""

from __future__ import annotations

import shutil
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path
from typing import Any

import pytest

from medinfra.segmentation.rules import (
    Allow,
    Egress,
    Opening,
    accepted,
    host_ruleset,
    input_rules,
    intended,
    parse_egress,
    parse_openings,
    quote,
)
from medinfra.topology.model import Flow, Host, PortRange, Site, Topology, Zone
from tests.unit.test_segmentation_rules import nft_check

WHERE = "network_segmentation_openings"


def zone(name: str, cidr: str, purpose: str) -> Zone:
    return Zone(name, IPv4Network(cidr), "high", purpose, None, None)


def host(name: str, zone_name: str, address: str, services: tuple[str, ...] = ()) -> Host:
    return Host(name, zone_name, IPv4Address(address), services, "s", "internal", (), False, None)


# Two management hosts, a zone whose name has a hyphen (nft set names take underscores), and a flow on port 1 (the
# lowest port, where a missing port must still not match).
SITE = Topology(
    "test",
    Site("t", "t", None, None, ()),
    {},
    (
        zone("mgmt", "10.0.1.0/24", "mgmt"),
        zone("app-tier", "10.0.2.0/24", "his"),
        zone("guest", "10.0.3.0/24", "guest"),
    ),
    (
        host("fw", "mgmt", "10.0.1.254", ("zone_firewall",)),
        host("admin-1", "mgmt", "10.0.1.10"),
        host("admin-2", "mgmt", "10.0.1.11"),
        host("app-1", "app-tier", "10.0.2.10"),
        host("app-2", "app-tier", "10.0.2.11"),
        host("kiosk", "guest", "10.0.3.10"),
    ),
    (
        Flow("mgmt", "app-tier", "tcp", (PortRange(22, 22),), "SSH to the app tier"),
        Flow("admin-1", "app-1", "tcp", (PortRange(443, 443), PortRange(8000, 8009)), "Web and API"),
        Flow("mgmt", "app-tier", "icmp", (), "Pings"),
        Flow("app-tier", "admin-2", "udp", (PortRange(1, 1),), "Port one"),
    ),
)
SNMP = Opening("udp", (PortRange(161, 161), PortRange(5000, 5010)), ("admin-2", "guest"), 'SNMP "polls" C:\\share')
CONTROLLER = IPv4Network("10.0.9.1/32")
RELAY = Egress("relay", 105, (IPv4Network("10.0.2.10/32"),), "relay reaches app-1 only")

FIREWALL_TABLE = """\
#!/usr/sbin/nft -f
# Managed by medinfra (role network_segmentation) from the site topology; replaced as a whole.
table inet medinfra
delete table inet medinfra
table inet medinfra {
  comment "medinfra ruleset 6f9a2c3f0a67bb4a"
  set zone_mgmt {
    type ipv4_addr; flags interval;
    elements = { 10.0.1.0/24 }
  }

  set zone_app_tier {
    type ipv4_addr; flags interval;
    elements = { 10.0.2.0/24 }
  }

  set zone_guest {
    type ipv4_addr; flags interval;
    elements = { 10.0.3.0/24 }
  }

  chain input {
    type filter hook input priority filter; policy drop;
    ct state established,related accept
    ct state invalid counter drop
    iifname "lo" accept
    icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert, nd-router-advert } accept
    ip saddr { 10.0.1.0/24, 10.0.9.1 } tcp dport 22 counter accept comment "administration over SSH from management"
    ip saddr { 10.0.1.11, 10.0.3.0/24 } udp dport { 161, 5000-5010 } counter accept comment "SNMP 'polls' C:/share"
    limit rate 5/minute burst 10 packets log prefix "medinfra-in-drop: " level info
    counter drop
  }

  chain output {
    type filter hook output priority filter; policy accept;
    ct state established,related accept
    meta skuid 105 ip daddr 10.0.2.10 counter accept comment "relay: allowed internal peers"
    meta skuid 105 ip daddr { 10.0.1.0/24, 10.0.2.0/23, 192.168.0.0/16 } limit rate 5/minute burst 10 packets \
log prefix "medinfra-out-drop: " level info
    meta skuid 105 ip daddr { 10.0.1.0/24, 10.0.2.0/23, 192.168.0.0/16 } counter drop comment \
"relay reaches app-1 only"
    meta skuid 105 ip6 daddr { fc00::/7 } limit rate 5/minute burst 10 packets log prefix "medinfra-out-drop: " \
level info
    meta skuid 105 ip6 daddr { fc00::/7 } counter drop comment "relay reaches app-1 only"
  }

  chain forward {
    type filter hook forward priority filter; policy drop;
    ct state established,related accept
    ct state invalid counter drop
    ip saddr @zone_mgmt ip daddr @zone_app_tier tcp dport 22 counter accept comment "SSH to the app tier"
    ip saddr 10.0.1.10 ip daddr 10.0.2.10 tcp dport { 443, 8000-8009 } counter accept comment "Web and API"
    ip saddr @zone_mgmt ip daddr @zone_app_tier icmp type echo-request counter accept comment "Pings"
    ip saddr @zone_app_tier ip daddr 10.0.1.11 udp dport 1 counter accept comment "Port one"
    limit rate 5/minute burst 10 packets log prefix "medinfra-fwd-drop: " level info
    counter drop
  }
}
"""


def test_the_zone_firewall_table_to_the_letter() -> None:
    """Every part at once: header, sets, the input chain with extra management and an opening, the egress chain,
    the forward chain; the version is the first 16 hex digits of the body's SHA-256."""
    text = host_ruleset(SITE, SITE.host("fw"), [SNMP], [CONTROLLER], [RELAY], ["192.168.0.0/16", "fc00::/7"])
    assert text == FIREWALL_TABLE


@pytest.mark.skipif(shutil.which("nft") is None, reason="nftables is installed by scripts/install-deps.sh")
def test_the_table_to_the_letter_is_valid_nftables(tmp_path: Path) -> None:
    done = nft_check(FIREWALL_TABLE, tmp_path)
    assert done.returncode == 0, done.stderr


def test_an_opening_is_a_rule_to_this_host_for_its_protocol_and_ports_only() -> None:
    app = SITE.host("app-1")
    rules = input_rules(SITE, app, [SNMP])
    assert rules[-1] == Allow(
        (IPv4Network("10.0.1.11/32"), IPv4Network("10.0.3.0/24")),
        (IPv4Network("10.0.2.10/32"),),
        "udp",
        (PortRange(161, 161), PortRange(5000, 5010)),
        'SNMP "polls" C:\\share',
    )
    kiosk = SITE.host("kiosk").address
    assert accepted(rules, kiosk, app.address, "udp", 5010)
    assert not accepted(rules, kiosk, app.address, "tcp", 5010)
    assert not accepted(rules, kiosk, app.address, "udp", 5011)
    assert not accepted(rules, kiosk, SITE.host("app-2").address, "udp", 161)


def test_a_packet_without_a_port_matches_no_port_rule_even_on_port_1() -> None:
    rule = Allow((IPv4Network("10.0.2.0/24"),), (IPv4Network("10.0.1.11/32"),), "udp", (PortRange(1, 1),), "Port one")
    source, destination = IPv4Address("10.0.2.10"), IPv4Address("10.0.1.11")
    assert rule.accepts(source, destination, "udp", 1)
    assert not rule.accepts(source, destination, "udp", None)
    assert intended(SITE, SITE.host("app-1"), SITE.host("admin-2"), "udp", 1) == "Port one"
    assert intended(SITE, SITE.host("app-1"), SITE.host("admin-2"), "udp", None) == ""


@pytest.mark.parametrize(
    ("source", "destination", "proto", "port", "reason"),
    [
        ("admin-1", "admin-2", "tcp", 22, "administration over SSH within management"),
        ("fw", "admin-1", "tcp", 22, "administration over SSH within management"),
        ("admin-1", "admin-2", "tcp", 23, ""),
        ("admin-1", "admin-2", "udp", 22, ""),
        ("admin-1", "kiosk", "tcp", 22, ""),  # management leaves its zone only through declared flows
        ("app-1", "app-2", "tcp", 22, ""),  # SSH inside another zone is no flow
        ("admin-1", "app-2", "tcp", 22, "SSH to the app tier"),
        ("admin-1", "app-1", "tcp", 8009, "Web and API"),
        ("admin-2", "app-1", "tcp", 8009, ""),
        ("admin-2", "app-1", "icmp", None, "Pings"),
    ],
)
def test_what_the_topology_intends(source: str, destination: str, proto: str, port: int | None, reason: str) -> None:
    assert intended(SITE, SITE.host(source), SITE.host(destination), proto, port) == reason


@pytest.mark.parametrize(
    ("comment", "quoted"),
    [
        ('say "hi"', "\"say 'hi'\""),
        ("C:\\share\\x", '"C:/share/x"'),
        ("x" * 120, '"' + "x" * 120 + '"'),
        ("x" * 120 + "yz", '"' + "x" * 120 + '"'),
    ],
)
def test_comments_are_quoted_for_nft_and_cut_at_120_characters(comment: str, quoted: str) -> None:
    assert quote(comment) == quoted


# ---------------------------------------------------------------- openings from role variables


@pytest.mark.parametrize(
    ("item", "expected"),
    [
        ({"proto": "udp", "ports": [161], "from": ["guest"]},
         Opening("udp", (PortRange(161, 161),), ("guest",), "declared opening")),
        ({"proto": "tcp", "ports": [1, "65535", "1-65535"], "from": ["admin-1"], "comment": "everything"},
         Opening("tcp", (PortRange(1, 1), PortRange(65535, 65535), PortRange(1, 65535)), ("admin-1",), "everything")),
        # Every zone and host of the site at once is still a list of its endpoints.
        ({"proto": "tcp", "ports": [9100], "from": ["mgmt", "app-tier", "guest", "fw", "admin-1", "admin-2", "app-1",
                                                      "app-2", "kiosk"]},
         Opening("tcp", (PortRange(9100, 9100),),
                 ("mgmt", "app-tier", "guest", "fw", "admin-1", "admin-2", "app-1", "app-2", "kiosk"),
                 "declared opening")),
    ],
)
def test_good_openings(item: dict[str, Any], expected: Opening) -> None:
    assert parse_openings(SITE, [item], WHERE) == [expected]


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ({"proto": "tcp", "ports": [0], "from": ["guest"]},
         "network_segmentation_openings[0].ports: [0] is not a list of ports or ranges (1-65535)"),
        ({"proto": "tcp", "ports": [65536], "from": ["guest"]},
         "network_segmentation_openings[0].ports: [65536] is not a list of ports or ranges (1-65535)"),
        ({"proto": "tcp", "ports": ["http"], "from": ["guest"]},
         "network_segmentation_openings[0].ports: ['http'] is not a list of ports or ranges (1-65535)"),
        ({"proto": "tcp", "ports": [80], "from": []},
         "network_segmentation_openings[0].from: needs zone or host names of the topology (unknown: [])"),
        ({"proto": "tcp", "ports": [80]},
         "network_segmentation_openings[0].from: needs zone or host names of the topology (unknown: [])"),
        ({"proto": "tcp", "ports": [80], "from": ["nowhere", "guest", "attic"]},
         "network_segmentation_openings[0].from: needs zone or host names of the topology (unknown: "
         "['attic', 'nowhere'])"),
        ({"proto": "tcp", "ports": [80], "from": "guest"},
         "network_segmentation_openings[0].from: needs zone or host names of the topology (unknown: guest)"),
        ({"proto": "sctp", "ports": [0], "from": ["attic"]},
         "network_segmentation_openings[0].proto: 'sctp' is not tcp or udp; "
         "network_segmentation_openings[0].from: needs zone or host names of the topology (unknown: ['attic']); "
         "network_segmentation_openings[0].ports: [0] is not a list of ports or ranges (1-65535)"),
    ],
)
def test_bad_openings_name_every_fault(item: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError) as raised:
        parse_openings(SITE, [item], WHERE)
    assert str(raised.value) == message


def test_bad_egress_items_name_every_fault() -> None:
    items = [{"allow": ["app-1"]}, {"user": "relay", "allow": ["attic"]}]
    with pytest.raises(ValueError) as raised:
        parse_egress(SITE, items, {"relay": 105}, "network_segmentation_egress")
    assert str(raised.value) == (
        "network_segmentation_egress[0].user: needs the service's user name; "
        "network_segmentation_egress[1].allow: 'attic' is no zone or host of the topology, nor an IPv4 network"
    )
