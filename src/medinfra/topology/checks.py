"""Semantic checks a JSON Schema cannot express. Pure: raw (schema-valid) data in, problems out."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from ipaddress import AddressValueError, IPv4Address, IPv4Network, NetmaskValueError
from typing import Any

from medinfra.problems import DocPath

Finding = tuple[DocPath, str]

# Group names the inventory creates besides zone_* and sla_*; a host of the same name would clash.
FIXED_GROUPS = frozenset({"all", "ungrouped", "phi", "legacy", "managed"})


def _network(text: str) -> IPv4Network | str:
    try:
        return IPv4Network(text, strict=True)
    except (AddressValueError, NetmaskValueError, ValueError) as exc:
        return f"{text!r} is not a valid IPv4 network: {exc}"


def _address(text: str) -> IPv4Address | str:
    try:
        return IPv4Address(text)
    except (AddressValueError, ValueError) as exc:
        return f"{text!r} is not a valid IPv4 address: {exc}"


def _duplicates(values: Iterable[tuple[int, Any]], section: str, what: str) -> Iterator[Finding]:
    """Flag every (index, value) whose value an earlier index already had."""
    first_seen: dict[Any, int] = {}
    for index, value in values:
        if value in first_seen:
            yield (section, index), f"duplicate {what} {value!s} (already used by {section}[{first_seen[value]}])"
        else:
            first_seen[value] = index


def check_zones(zones: list[dict[str, Any]]) -> tuple[list[Finding], dict[str, IPv4Network]]:
    """Valid, non-overlapping CIDRs and gateways inside them; returns the usable networks."""
    findings: list[Finding] = list(_duplicates(((i, z["name"]) for i, z in enumerate(zones)), "zones", "zone name"))
    networks: dict[str, IPv4Network] = {}
    placed: list[tuple[int, IPv4Network]] = []
    for index, zone in enumerate(zones):
        network = _network(zone["cidr"])
        if isinstance(network, str):
            findings.append((("zones", index, "cidr"), network))
            continue
        clashes = [
            f"{other} of zones[{other_index}] ({zones[other_index]['name']})"
            for other_index, other in placed
            if network.overlaps(other)
        ]
        if clashes:
            findings.append((("zones", index, "cidr"), f"{network} overlaps {', '.join(clashes)}"))
        placed.append((index, network))
        networks.setdefault(zone["name"], network)
        if "gateway" in zone:
            gateway = _address(zone["gateway"])
            if isinstance(gateway, str):
                findings.append((("zones", index, "gateway"), gateway))
            elif not _usable_in(gateway, network):
                findings.append((("zones", index, "gateway"), f"{gateway} is not a usable address of {network}"))
    return findings, networks


def _usable_in(address: IPv4Address, network: IPv4Network) -> bool:
    if address not in network:
        return False
    if network.prefixlen >= 31:
        return True
    return address not in (network.network_address, network.broadcast_address)


def check_hosts(
    hosts: list[dict[str, Any]],
    zones: list[dict[str, Any]],
    networks: dict[str, IPv4Network],
    sla_classes: dict[str, Any],
    service_names: frozenset[str],
) -> list[Finding]:
    findings: list[Finding] = list(_duplicates(((i, h["name"]) for i, h in enumerate(hosts)), "hosts", "host name"))
    zone_names = {z["name"] for z in zones}
    gateways = {z["name"]: z.get("gateway") for z in zones}
    for index, host in enumerate(hosts):
        if host["name"] in zone_names:
            findings.append(
                (
                    ("hosts", index, "name"),
                    f"host name {host['name']!r} is also a zone name, so flows naming it would be ambiguous",
                )
            )
        if host["name"] in service_names | FIXED_GROUPS:
            findings.append(
                (
                    ("hosts", index, "name"),
                    f"host name {host['name']!r} is also an inventory group name; rename it, e.g. {host['name']}-01",
                )
            )
        if host["zone"] not in zone_names:
            findings.append((("hosts", index, "zone"), f"unknown zone {host['zone']!r}; zones: {sorted(zone_names)}"))
        if host["sla"] not in sla_classes:
            findings.append(
                (("hosts", index, "sla"), f"unknown SLA class {host['sla']!r}; defined: {sorted(sla_classes)}")
            )
        address = _address(host["address"])
        if isinstance(address, str):
            findings.append((("hosts", index, "address"), address))
            continue
        network = networks.get(host["zone"])
        if network is not None and not _usable_in(address, network):
            findings.append(
                (
                    ("hosts", index, "address"),
                    f"{address} is outside zone {host['zone']!r} ({network}) or is its network/broadcast address",
                )
            )
        gateway = gateways.get(host["zone"])
        is_firewall = "zone_firewall" in host["services"]
        if gateway is not None and str(address) == gateway and not is_firewall:
            findings.append(
                (
                    ("hosts", index, "address"),
                    f"{address} is the gateway of zone {host['zone']!r}; only a zone_firewall host may hold it",
                )
            )
        if is_firewall and gateway is not None and str(address) != gateway:
            findings.append(
                (
                    ("hosts", index, "address"),
                    f"a zone_firewall host must hold its zone's gateway address {gateway}, not {address}",
                )
            )
    addresses = ((i, a) for i, h in enumerate(hosts) if isinstance(a := _address(h["address"]), IPv4Address))
    findings.extend(((*path, "address"), message) for path, message in _duplicates(addresses, "hosts", "address"))
    return findings


def parse_port_range(port: int | str) -> tuple[int, int]:
    """``443`` -> (443, 443); ``"1000-2000"`` -> (1000, 2000). The schema guarantees the shape."""
    if isinstance(port, int) or "-" not in port:  # the inventory's plain data writes ports as text
        return int(port), int(port)
    start, end = port.split("-", 1)
    return int(start), int(end)


def check_flows(flows: list[dict[str, Any]], zones: list[dict[str, Any]], hosts: list[dict[str, Any]]) -> list[Finding]:
    findings: list[Finding] = []
    endpoints = {z["name"] for z in zones} | {h["name"] for h in hosts}
    for index, flow in enumerate(flows):
        for end in ("from", "to"):
            if flow[end] not in endpoints:
                findings.append((("flows", index, end), f"{flow[end]!r} is neither a zone nor a host"))
        for port_index, port in enumerate(flow.get("ports", [])):
            start, stop = parse_port_range(port)
            if not (1 <= start <= stop <= 65535):
                findings.append(
                    (
                        ("flows", index, "ports", port_index),
                        f"bad port range {port!r}: ports run from 1 to 65535 and a range must not end before it starts",
                    )
                )
    return findings


def check_topology(data: dict[str, Any], service_names: frozenset[str]) -> list[Finding]:
    """Every semantic problem of a schema-valid topology, in document order per section."""
    zone_findings, networks = check_zones(data["zones"])
    return (
        zone_findings
        + check_hosts(data["hosts"], data["zones"], networks, data["sla_classes"], service_names)
        + check_flows(data["flows"], data["zones"], data["hosts"])
    )
