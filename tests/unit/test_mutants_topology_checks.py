"""Kills mutants of topology/checks.py that the validation tests let through (`make mutation`).

The checks are called directly on small documents and every finding is compared whole: its path and its exact
message, in order.
"""

from __future__ import annotations

from ipaddress import IPv4Network
from typing import Any

import pytest

from medinfra.topology.checks import (
    _earlier_overlaps,
    check_flows,
    check_groups,
    check_hosts,
    check_interfaces,
    check_sla_classes,
    check_standbys,
    check_text,
    check_topology,
    check_zones,
    parse_port_range,
)

UNSAFE = "contains line breaks, control, bidi or surrogate characters (shown escaped)"
UNSAFE_FREE_TEXT = "contains control, bidi or surrogate characters (shown escaped)"


def zone(name: str, cidr: str, gateway: str | None = None) -> dict[str, Any]:
    return {"name": name, "cidr": cidr, **({} if gateway is None else {"gateway": gateway})}


def host(name: str, zone_name: str, address: str, *services: str, sla: str = "gold", **more: Any) -> dict[str, Any]:
    return {"name": name, "zone": zone_name, "address": address, "services": list(services), "sla": sla, **more}


# --- check_text


def test_text_at_the_top_level_is_no_free_text() -> None:
    assert check_text("a\nb") == [((), f"'a\\x0ab' {UNSAFE}")]
    assert check_text("plain") == []


def test_only_a_value_under_a_description_key_may_span_lines() -> None:
    data = {
        "description": "two\nlines",
        "zones": [{"description": "tab\there", "name": "x\ty"}, "line\nbreak"],
        "title": "esc\x1b",
    }
    assert check_text(data) == [
        (("zones", 0, "name"), f"'x\\x09y' {UNSAFE}"),
        (("zones", 1), f"'line\\x0abreak' {UNSAFE}"),
        (("title",), f"'esc\\x1b' {UNSAFE}"),
    ]


def test_a_description_may_not_hold_control_characters() -> None:
    assert check_text({"zones": [{"description": "ok\nbut\x1b[2J"}]}) == [
        (("zones", 0, "description"), f"'ok\\x0abut\\x1b[2J' {UNSAFE_FREE_TEXT}")
    ]


def test_keys_are_checked_in_document_order_and_other_keys_are_left_alone() -> None:
    data = {"a\n": {"b\x07": 1, 2: "two", "description\n": "x\ny"}, "z": ["\u202e", None, 3.5]}
    assert check_text(data) == [
        (("a\n",), f"key 'a\\x0a' {UNSAFE}"),
        (("a\n", "b\x07"), f"key 'b\\x07' {UNSAFE}"),
        (("a\n", "description\n"), f"key 'description\\x0a' {UNSAFE}"),
        (("a\n", "description\n"), f"'x\\x0ay' {UNSAFE}"),
        (("z", 0), f"'\\u202e' {UNSAFE}"),
    ]


# --- check_groups


def groups_data(zones: list[str], slas: list[str], hosts: list[str]) -> dict[str, Any]:
    return {
        "zones": [{"name": name} for name in zones],
        "sla_classes": {name: {} for name in slas},
        "hosts": [{"name": name} for name in hosts],
    }


def test_names_that_become_one_group_are_refused_once_each() -> None:
    data = groups_data(
        zones=["his_x", "his-x", "his_x", "lab"],
        slas=["24x7-critical", "24x7_critical", "lab"],
        hosts=["zone_his_x", "sla_lab", "db", "zone_his_x", "phi", "db_server", "zone_lab"],
    )
    assert check_groups(data, frozenset({"db_server", "zone_lab"})) == [
        (
            ("zones", 1, "name"),
            "zone 'his-x' becomes inventory group 'zone_his_x', which is already the group of zone 'his_x' "
            "(zones[0].name); rename it",
        ),
        (
            ("zones", 3, "name"),
            "zone 'lab' becomes inventory group 'zone_lab', which is already the group of the hosts with service "
            "'zone_lab'; rename it",
        ),
        (
            ("sla_classes", "24x7_critical"),
            "SLA class '24x7_critical' becomes inventory group 'sla_24x7_critical', which is already the group of "
            "SLA class '24x7-critical' (sla_classes.24x7-critical); rename it",
        ),
        (
            ("hosts", 0, "name"),
            "host name 'zone_his_x' is also an inventory group, the group of zone 'his_x' (zones[0].name); rename it, "
            "e.g. zone_his_x-01",
        ),
        (
            ("hosts", 1, "name"),
            "host name 'sla_lab' is also an inventory group, the group of SLA class 'lab' (sla_classes.lab); "
            "rename it, e.g. sla_lab-01",
        ),
        (
            ("hosts", 4, "name"),
            "host name 'phi' is also an inventory group, a group Ansible or medinfra always makes; rename it, "
            "e.g. phi-01",
        ),
        (
            ("hosts", 5, "name"),
            "host name 'db_server' is also an inventory group, the group of the hosts with service 'db_server'; "
            "rename it, e.g. db_server-01",
        ),
        (
            ("hosts", 6, "name"),
            "host name 'zone_lab' is also an inventory group, the group of the hosts with service 'zone_lab'; "
            "rename it, e.g. zone_lab-01",
        ),
    ]


def test_distinct_names_claim_no_group_twice() -> None:
    assert check_groups(groups_data(zones=["x"], slas=["x"], hosts=["x"]), frozenset()) == []


def test_hosts_named_like_the_fixed_groups_are_refused() -> None:
    fixed = ["all", "ungrouped", "managed", "legacy", "database_ha"]
    assert check_groups(groups_data(zones=["a"], slas=["b"], hosts=fixed), frozenset()) == [
        (
            ("hosts", index, "name"),
            f"host name {name!r} is also an inventory group, a group Ansible or medinfra always makes; rename it, "
            f"e.g. {name}-01",
        )
        for index, name in enumerate(fixed)
    ]


# --- _earlier_overlaps and check_zones


def overlaps(*cidrs: str) -> dict[int, list[int]]:
    return _earlier_overlaps([(index, IPv4Network(cidr)) for index, cidr in enumerate(cidrs)])


def test_the_sweep_names_every_earlier_overlapping_zone_in_order() -> None:
    assert overlaps("10.0.0.0/24", "10.0.0.255/32") == {1: [0]}
    assert overlaps("10.0.0.255/32", "10.0.0.0/24") == {1: [0]}
    assert overlaps("10.0.1.0/24", "10.0.0.0/16", "10.0.0.0/8") == {1: [0], 2: [0, 1]}
    # A repeated block is paired with its first occurrence only (the sweep's stack stays short).
    assert overlaps("10.0.1.0/24", "10.0.0.0/16", "10.0.1.0/24") == {1: [0], 2: [0]}
    assert overlaps("10.0.0.0/24", "10.0.1.0/24", "10.0.0.0/23") == {2: [0, 1]}
    assert overlaps("10.0.0.0/25", "10.0.0.128/25", "10.0.1.0/24") == {}
    assert overlaps("10.0.0.0/24", "10.0.0.0/24", "10.0.0.0/24") == {1: [0], 2: [0]}


def test_an_overlap_names_up_to_five_zones() -> None:
    five = [zone(f"z{i}", f"10.0.{i}.0/24") for i in range(5)]
    findings, _ = check_zones([*five, zone("all", "10.0.0.0/16")])
    named = ", ".join(f"10.0.{i}.0/24 of zones[{i}] (z{i})" for i in range(5))
    assert findings == [(("zones", 5, "cidr"), f"10.0.0.0/16 overlaps {named}")]
    six = [zone(f"z{i}", f"10.0.{i}.0/24") for i in range(6)]
    findings, _ = check_zones([*six, zone("all", "10.0.0.0/16")])
    assert findings == [(("zones", 6, "cidr"), f"10.0.0.0/16 overlaps {named} and 1 more")]


def test_zone_findings_in_order_and_the_first_network_of_each_name() -> None:
    zones = [
        zone("a", "10.0.0.7/24", "10.0.0.1"),
        zone("b", "10.1.0.0/24", "10.1.0.0"),
        zone("b", "10.2.0.0/24", "10.2.0.255"),
        zone("c", "10.3.0.0/30", "10.3.0.3"),
        zone("d", "10.4.0.0/31", "10.4.0.0"),
        zone("e", "10.5.0.0/32", "10.5.0.0"),
        zone("f", "10.6.0.0/30", "10.6.0.2"),
        zone("g", "10.7.0.0/24", "10.7.0.300"),
        zone("h", "10.8.0.0/24", "10.9.0.1"),
        zone("i", "10.10.0.0/24"),
        zone("a", "10.0.0.0/33"),
    ]
    findings, networks = check_zones(zones)
    assert findings == [
        (("zones", 2), "duplicate zone name b (already used by zones[1])"),
        (("zones", 10), "duplicate zone name a (already used by zones[0])"),
        (("zones", 0, "cidr"), "'10.0.0.7/24' is not a valid IPv4 network: 10.0.0.7/24 has host bits set"),
        (("zones", 1, "gateway"), "10.1.0.0 is not a usable address of 10.1.0.0/24"),
        (("zones", 2, "gateway"), "10.2.0.255 is not a usable address of 10.2.0.0/24"),
        (("zones", 3, "gateway"), "10.3.0.3 is not a usable address of 10.3.0.0/30"),
        (
            ("zones", 7, "gateway"),
            "'10.7.0.300' is not a valid IPv4 address: Octet 300 (> 255) not permitted in '10.7.0.300'",
        ),
        (("zones", 8, "gateway"), "10.9.0.1 is not a usable address of 10.8.0.0/24"),
        (("zones", 10, "cidr"), "'10.0.0.0/33' is not a valid IPv4 network: '33' is not a valid netmask"),
    ]
    assert networks == {
        "b": IPv4Network("10.1.0.0/24"),
        "c": IPv4Network("10.3.0.0/30"),
        "d": IPv4Network("10.4.0.0/31"),
        "e": IPv4Network("10.5.0.0/32"),
        "f": IPv4Network("10.6.0.0/30"),
        "g": IPv4Network("10.7.0.0/24"),
        "h": IPv4Network("10.8.0.0/24"),
        "i": IPv4Network("10.10.0.0/24"),
    }


def test_the_second_zone_of_a_name_keeps_the_first_network() -> None:
    _, networks = check_zones([zone("a", "10.0.0.0/24"), zone("a", "10.1.0.0/24")])
    assert networks == {"a": IPv4Network("10.0.0.0/24")}


def test_a_duplicate_is_named_against_its_first_use() -> None:
    findings, _ = check_zones([zone("a", "10.0.0.0/24"), zone("a", "10.1.0.0/24"), zone("a", "10.2.0.0/24")])
    assert findings == [
        (("zones", 1), "duplicate zone name a (already used by zones[0])"),
        (("zones", 2), "duplicate zone name a (already used by zones[0])"),
    ]


# --- check_hosts


ZONES = [zone("his", "10.0.1.0/24", "10.0.1.254"), zone("lab", "10.0.2.0/24"), zone("p2p", "10.0.3.0/31", "10.0.3.0")]
NETWORKS = {"his": IPv4Network("10.0.1.0/24"), "lab": IPv4Network("10.0.2.0/24"), "p2p": IPv4Network("10.0.3.0/31")}


def test_hosts_findings_in_order() -> None:
    hosts = [
        host("fw", "his", "10.0.1.254", "zone_firewall"),
        host("app", "his", "10.0.1.10", "his_app"),
        host("his", "lab", "10.0.2.10"),
        host("gw-squatter", "his", "10.0.1.254", "his_db"),
        host("fw-2", "his", "10.0.1.11", "zone_firewall", "bastion"),
        host("fw-lab", "lab", "10.0.2.1", "zone_firewall"),
        host("lost", "icu", "10.9.9.9", sla="silver"),
        host("bad", "his", "10.0.1.300"),
        host("bad", "his", "10.0.1.300"),
        host("outside", "his", "10.0.2.20"),
        host("net", "his", "10.0.1.0"),
        host("bcast", "his", "10.0.1.255"),
        # Both addresses of a /31 (a point-to-point link) are usable.
        host("p2p-a", "p2p", "10.0.3.0", "zone_firewall"),
        host("p2p-b", "p2p", "10.0.3.1"),
        host("twin", "his", "10.0.1.10"),
        host("twin-2", "his", "10.0.1.10"),
    ]
    findings = check_hosts(hosts, ZONES, NETWORKS, {"gold": {}})
    assert findings == [
        (("hosts", 8), "duplicate host name bad (already used by hosts[7])"),
        (("hosts", 2, "name"), "host name 'his' is also a zone name, so flows naming it would be ambiguous"),
        (
            ("hosts", 3, "address"),
            "10.0.1.254 is the gateway of zone 'his'; only a zone_firewall host may hold it",
        ),
        (
            ("hosts", 4, "address"),
            "a zone_firewall host must hold its zone's gateway address 10.0.1.254, not 10.0.1.11",
        ),
        (("hosts", 6, "zone"), "unknown zone 'icu'; zones: ['his', 'lab', 'p2p']"),
        (("hosts", 6, "sla"), "unknown SLA class 'silver'; defined: ['gold']"),
        (
            ("hosts", 7, "address"),
            "'10.0.1.300' is not a valid IPv4 address: Octet 300 (> 255) not permitted in '10.0.1.300'",
        ),
        (
            ("hosts", 8, "address"),
            "'10.0.1.300' is not a valid IPv4 address: Octet 300 (> 255) not permitted in '10.0.1.300'",
        ),
        (
            ("hosts", 9, "address"),
            "10.0.2.20 is outside zone 'his' (10.0.1.0/24) or is its network/broadcast address",
        ),
        (
            ("hosts", 10, "address"),
            "10.0.1.0 is outside zone 'his' (10.0.1.0/24) or is its network/broadcast address",
        ),
        (
            ("hosts", 11, "address"),
            "10.0.1.255 is outside zone 'his' (10.0.1.0/24) or is its network/broadcast address",
        ),
        (("hosts", 3, "address"), "duplicate address 10.0.1.254 (already used by hosts[0])"),
        (("hosts", 14, "address"), "duplicate address 10.0.1.10 (already used by hosts[1])"),
        (("hosts", 15, "address"), "duplicate address 10.0.1.10 (already used by hosts[1])"),
    ]


def test_hosts_in_a_zone_without_a_network_are_not_placed() -> None:
    hosts = [host("a", "lab", "10.0.1.5"), host("b", "icu", "10.0.1.6"), host("c", "his", "10.0.1.254")]
    assert check_hosts(hosts, ZONES, {"lab": IPv4Network("10.0.2.0/24")}, {"gold": {}}) == [
        (("hosts", 0, "address"), "10.0.1.5 is outside zone 'lab' (10.0.2.0/24) or is its network/broadcast address"),
        (("hosts", 1, "zone"), "unknown zone 'icu'; zones: ['his', 'lab', 'p2p']"),
        (("hosts", 2, "address"), "10.0.1.254 is the gateway of zone 'his'; only a zone_firewall host may hold it"),
    ]


def test_a_clean_host_list_has_no_findings() -> None:
    hosts = [host("fw", "his", "10.0.1.254", "zone_firewall"), host("app", "his", "10.0.1.10", "his_app"),
             host("lab-fw", "lab", "10.0.2.9", "zone_firewall")]
    assert check_hosts(hosts, ZONES, NETWORKS, {"gold": {}}) == []


# --- parse_port_range and check_flows


def test_port_ranges_parse_from_numbers_and_text() -> None:
    assert parse_port_range(443) == (443, 443)
    assert parse_port_range("443") == (443, 443)
    assert parse_port_range("1000-2000") == (1000, 2000)


@pytest.mark.parametrize("text", ["1--2", "1-2-3", "-1-2"])
def test_a_port_text_with_more_than_one_dash_is_no_range(text: str) -> None:
    # Python's own unpacking error; 3.14 adds ", got 3" to it.
    with pytest.raises(ValueError, match=r"^too many values to unpack \(expected 2"):
        parse_port_range(text)


def test_flow_findings_in_order() -> None:
    zones = [{"name": "his"}]
    hosts = [{"name": "app"}]
    flows = [
        {"from": "his", "to": "app", "ports": [1, "65535", "1-65535", "5-5", 0, "0-1", "65535-65536", "3-2"]},
        {"from": "icu", "to": "ward", "proto": "icmp"},
        {"from": "app", "to": "his", "ports": [65536]},
    ]
    bad = "ports run from 1 to 65535 and a range must not end before it starts"
    assert check_flows(flows, zones, hosts) == [
        (("flows", 0, "ports", 4), f"bad port range 0: {bad}"),
        (("flows", 0, "ports", 5), f"bad port range '0-1': {bad}"),
        (("flows", 0, "ports", 6), f"bad port range '65535-65536': {bad}"),
        (("flows", 0, "ports", 7), f"bad port range '3-2': {bad}"),
        (("flows", 1, "from"), "'icu' is neither a zone nor a host"),
        (("flows", 1, "to"), "'ward' is neither a zone nor a host"),
        (("flows", 2, "ports", 0), f"bad port range 65536: {bad}"),
    ]


# --- check_interfaces


def test_interface_findings_in_order() -> None:
    hosts = [{"name": "a"}, {"name": "b"}]
    interfaces = [
        {"name": "i1", "from": "a", "to": "b", "sla": "gold"},
        {"name": "i2", "from": "zone", "to": "nowhere", "sla": "silver"},
        {"name": "i1", "from": "b", "to": "b", "sla": "gold"},
    ]
    assert check_interfaces(interfaces, hosts, {"gold": {}, "bronze": {}}) == [
        (("interfaces", 2), "duplicate interface name i1 (already used by interfaces[0])"),
        (("interfaces", 1, "from"), "'zone' is not a host"),
        (("interfaces", 1, "to"), "'nowhere' is not a host"),
        (("interfaces", 1, "sla"), "unknown SLA class 'silver'; defined: ['bronze', 'gold']"),
        (("interfaces", 2, "to"), "an interface joins two different hosts"),
    ]


# --- check_standbys


def member(name: str, *services: str, **more: Any) -> dict[str, Any]:
    return {"name": name, "services": list(services), **more}


def test_a_sound_pair_has_no_findings() -> None:
    hosts = [
        member("db", "his_db", "backup_client", service_address={"host": "proxy"}, legacy=False),
        member("db-2", "backup_client", "his_db", standby_of="db", legacy=False),
        member("proxy", legacy=False),
    ]
    assert check_standbys(hosts) == []


def test_standby_findings_in_order() -> None:
    hosts = [
        member("db", "his_db", service_address={"host": "db-2"}),
        member("db-2", "his_db", standby_of="db"),
        member("db-3", "pacs", standby_of="db", legacy=True),
        member("chain", "his_db", standby_of="db-2"),
        member("self", standby_of="self"),
        member("orphan", standby_of="gone"),
        member("old", "lis", legacy=True, service_address={"host": "old"}),
        member("old-2", "lis", standby_of="old"),
        member("lone", service_address={"host": "nowhere"}),
        member("x", standby_of=None, service_address=None),
    ]
    assert check_standbys(hosts) == [
        (("hosts", 2, "standby_of"), "legacy hosts are left alone, so neither member of a pair may be legacy"),
        (("hosts", 2, "standby_of"), "a standby runs its primary's services ['his_db'], not ['pacs']"),
        (("hosts", 3, "standby_of"), "'db-2' is itself a standby of 'db'"),
        (("hosts", 4, "standby_of"), "a host cannot be its own standby"),
        (("hosts", 5, "standby_of"), "'gone' is not a host"),
        (("hosts", 7, "standby_of"), "legacy hosts are left alone, so neither member of a pair may be legacy"),
        (("hosts", 0, "name"), "'db' has more than one standby: ['db-2', 'db-3']"),
        (
            ("hosts", 0, "service_address", "host"),
            "the service address is on a third host: a member that fails takes its proxy with it",
        ),
        (("hosts", 1), "'db-2' has a standby, so it must declare the service_address clients use"),
        (
            ("hosts", 6, "service_address", "host"),
            "the service address is on a third host: a member that fails takes its proxy with it",
        ),
        (("hosts", 8, "service_address"), "only a host that has a standby declares a service_address"),
    ]


def test_the_service_address_host_must_be_a_managed_third_host() -> None:
    def pair(service_host: str) -> list[dict[str, Any]]:
        return [
            member("db", "his_db", service_address={"host": service_host}),
            member("db-2", "his_db", standby_of="db"),
            member("old", legacy=True),
            member("app", legacy=False),
        ]

    path = ("hosts", 0, "service_address", "host")
    assert check_standbys(pair("app")) == []
    assert check_standbys(pair("old")) == [
        (path, "'old' is legacy: roles leave it alone, so nothing would proxy there")
    ]
    assert check_standbys(pair("ghost")) == [(path, "'ghost' is not a host")]
    assert check_standbys(pair("db")) == [
        (path, "the service address is on a third host: a member that fails takes its proxy with it")
    ]


# --- check_sla_classes


def test_sla_hours_findings() -> None:
    sla_classes = {
        "plain": {"support_hours": "business-hours"},
        "always": {"support_hours": "24x7", "hours": {"start": "08:00", "end": "18:00"}},
        "unset": {"hours": {"start": "08:00", "end": "18:00"}},
        "office": {"support_hours": "business-hours", "hours": {"start": "08:00", "end": "18:00"}},
        "empty": {"support_hours": "business-hours", "hours": {"start": "08:00", "end": "08:00"}},
        "night": {"support_hours": "business-hours", "hours": {"start": "18:00", "end": "08:00"}},
        "none": {"support_hours": "24x7"},
    }
    only = "only a business-hours class counts hours; a 24x7 class counts every second"
    assert check_sla_classes(sla_classes) == [
        (("sla_classes", "always", "hours"), only),
        (("sla_classes", "unset", "hours"), only),
        (("sla_classes", "empty", "hours", "end"), "end 08:00 is not after start 08:00 (hours within one day)"),
        (("sla_classes", "night", "hours", "end"), "end 08:00 is not after start 18:00 (hours within one day)"),
    ]


# --- check_topology


def test_the_topology_findings_come_section_by_section() -> None:
    data = {
        "site": {"title": "t\n"},
        "sla_classes": {"gold": {"support_hours": "24x7", "hours": {"start": "08:00", "end": "18:00"}}},
        "zones": [zone("his", "10.0.1.0/24"), zone("phi", "10.0.1.0/25")],
        "hosts": [
            host("his", "his", "10.0.1.10", "db_server"),
            host("db-2", "his", "10.0.1.11", standby_of="his"),
            host("db_server", "his", "10.0.1.12"),
        ],
        "flows": [{"from": "icu", "to": "his"}],
        "interfaces": [{"name": "i", "from": "his", "to": "his", "sla": "gold"}],
    }
    assert check_topology(data, frozenset({"db_server"})) == [
        (("site", "title"), f"'t\\x0a' {UNSAFE}"),
        (("zones", 1, "cidr"), "10.0.1.0/25 overlaps 10.0.1.0/24 of zones[0] (his)"),
        (
            ("hosts", 2, "name"),
            "host name 'db_server' is also an inventory group, the group of the hosts with service 'db_server'; "
            "rename it, e.g. db_server-01",
        ),
        (
            ("sla_classes", "gold", "hours"),
            "only a business-hours class counts hours; a 24x7 class counts every second",
        ),
        (("hosts", 0, "name"), "host name 'his' is also a zone name, so flows naming it would be ambiguous"),
        (("hosts", 1, "standby_of"), "a standby runs its primary's services ['db_server'], not []"),
        (("hosts", 0), "'his' has a standby, so it must declare the service_address clients use"),
        (("flows", 0, "from"), "'icu' is neither a zone nor a host"),
        (("interfaces", 0, "to"), "an interface joins two different hosts"),
    ]


def test_a_topology_without_interfaces_is_checked_too() -> None:
    data = {
        "sla_classes": {"gold": {}},
        "zones": [zone("his", "10.0.1.0/24")],
        "hosts": [host("app", "his", "10.0.1.10")],
        "flows": [],
    }
    assert check_topology(data, frozenset()) == []
    data["zones"].append(zone("lab", "10.0.2.0/24"))
    data["hosts"].append(host("lab-1", "lab", "10.0.1.11"))
    assert check_topology(data, frozenset()) == [
        (("hosts", 1, "address"), "10.0.1.11 is outside zone 'lab' (10.0.2.0/24) or is its network/broadcast address")
    ]
