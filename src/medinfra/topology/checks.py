"""Semantic checks a JSON Schema cannot express. Pure: raw (schema-valid) data in, problems out."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from ipaddress import AddressValueError, IPv4Address, IPv4Network, NetmaskValueError
from typing import Any

from medinfra.problems import DocPath, format_path
from medinfra.safe_text import clean, one_line
from medinfra.topology.groups import FIXED_GROUPS, SLA_PREFIX, ZONE_PREFIX, group_name

Finding = tuple[DocPath, str]

# Free text that no role renders into a configuration (medinfra_topology carries it, for the record), so it may
# span lines.
FREE_TEXT_KEYS = frozenset({"description"})
# How many of the zones a CIDR overlaps one finding names.
OVERLAPS_NAMED = 5


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


def _unsafe_text(text: str, free_text: bool) -> str | None:
    """Why ``text`` may not stand in a topology, or None. Names, addresses, paths and titles end up in
    configuration lines (audit rules, chrony.conf, firewall comments): a newline there starts a new directive."""
    shown = one_line(text)
    if free_text:
        if clean(text) == text:
            return None
        return f"'{shown}' contains control, bidi or surrogate characters (shown escaped)"
    if shown == text:
        return None
    return f"'{shown}' contains line breaks, control, bidi or surrogate characters (shown escaped)"


def check_text(data: Any) -> list[Finding]:
    """Every string of the document, keys included, must be plain text; descriptions may span lines."""
    findings: list[Finding] = []
    pending: list[tuple[DocPath, Any]] = [((), data)]
    while pending:  # depth-first, in document order (children pushed last first)
        path, value = pending.pop()
        if isinstance(value, str):
            reason = _unsafe_text(value, free_text=bool(path) and path[-1] in FREE_TEXT_KEYS)
            if reason is not None:
                findings.append((path, reason))
        elif isinstance(value, dict):
            for key in value:
                if isinstance(key, str) and (reason := _unsafe_text(key, free_text=False)) is not None:
                    findings.append(((*path, key), f"key {reason}"))
            pending.extend(((*path, key), item) for key, item in reversed(value.items()))
        elif isinstance(value, list):
            pending.extend(((*path, index), item) for index, item in reversed(list(enumerate(value))))
    return findings


def check_groups(data: Mapping[str, Any], service_names: frozenset[str]) -> list[Finding]:
    """Zone, SLA class and host names that become the same inventory group, or a group the inventory makes
    anyway: `--limit` and waivers naming that group would reach hosts nobody meant (``his_x`` and ``his-x``
    are both zone_his_x; a zone ``firewall`` is the zone_firewall service group)."""
    owners = {group: "a group Ansible or medinfra always makes" for group in FIXED_GROUPS}
    owners.update({service: f"the group of the hosts with service {service!r}" for service in service_names})
    findings: list[Finding] = []

    def claim(group: str, path: DocPath, what: str) -> None:
        owner = owners.get(group)
        if owner is None:
            owners[group] = f"the group of {what} ({format_path(path)})"
        else:
            findings.append((path, f"{what} becomes inventory group {group!r}, which is already {owner}; rename it"))

    for index, name in _first_of_each(zone["name"] for zone in data["zones"]):
        claim(group_name(ZONE_PREFIX, name), ("zones", index, "name"), f"zone {name!r}")
    for name in data["sla_classes"]:
        claim(group_name(SLA_PREFIX, name), ("sla_classes", name), f"SLA class {name!r}")
    for index, name in _first_of_each(host["name"] for host in data["hosts"]):
        if name in owners:
            message = f"host name {name!r} is also an inventory group, {owners[name]}; rename it, e.g. {name}-01"
            findings.append((("hosts", index, "name"), message))
    return findings


def _first_of_each(names: Iterable[str]) -> Iterator[tuple[int, str]]:
    """(index, name) for the first occurrence of each name; repeats are reported as duplicates elsewhere."""
    seen: set[str] = set()
    for index, name in enumerate(names):
        if name not in seen:
            seen.add(name)
            yield index, name


def _earlier_overlaps(networks: list[tuple[int, IPv4Network]]) -> dict[int, list[int]]:
    """For each zone index, the earlier zones whose network overlaps its own.

    Two CIDR blocks overlap only when one contains the other, so a sweep in address order with a stack of
    the blocks enclosing the current one finds every overlapping pair. The stack holds at most 33 blocks
    (one per prefix length) once identical blocks are paired with their first occurrence only: the sweep
    costs O(n log n) where comparing every pair was quadratic (20,000 zones took over 300 s).
    """
    clashes: dict[int, list[int]] = {}
    first_of: dict[IPv4Network, int] = {}
    for index, network in networks:
        if network in first_of:
            clashes.setdefault(index, []).append(first_of[network])
        else:
            first_of[network] = index
    blocks = sorted(first_of.items(), key=lambda item: (int(item[0].network_address), item[0].prefixlen))
    enclosing: list[tuple[int, int]] = []  # (last address, zone index) of the blocks around the current one
    for network, index in blocks:
        start = int(network.network_address)
        while enclosing and enclosing[-1][0] < start:
            enclosing.pop()
        for _, outer in enclosing:
            clashes.setdefault(max(index, outer), []).append(min(index, outer))
        enclosing.append((int(network.broadcast_address), index))
    return {index: sorted(earlier) for index, earlier in clashes.items()}


def _overlap_message(network: IPv4Network, earlier: list[int], zones: list[dict[str, Any]]) -> str:
    named = ", ".join(f"{zones[i]['cidr']} of zones[{i}] ({zones[i]['name']})" for i in earlier[:OVERLAPS_NAMED])
    more = f" and {len(earlier) - OVERLAPS_NAMED} more" if len(earlier) > OVERLAPS_NAMED else ""
    return f"{network} overlaps {named}{more}"


def check_zones(zones: list[dict[str, Any]]) -> tuple[list[Finding], dict[str, IPv4Network]]:
    """Valid, non-overlapping CIDRs and gateways inside them; returns the usable networks."""
    findings: list[Finding] = list(_duplicates(((i, z["name"]) for i, z in enumerate(zones)), "zones", "zone name"))
    parsed = [(index, _network(zone["cidr"])) for index, zone in enumerate(zones)]
    overlaps = _earlier_overlaps([(index, net) for index, net in parsed if isinstance(net, IPv4Network)])
    networks: dict[str, IPv4Network] = {}
    for index, network in parsed:
        zone = zones[index]
        if isinstance(network, str):
            findings.append((("zones", index, "cidr"), network))
            continue
        if index in overlaps:
            findings.append((("zones", index, "cidr"), _overlap_message(network, overlaps[index], zones)))
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
    """``443`` -> (443, 443); ``"1000-2000"`` -> (1000, 2000). The schema guarantees the shape; text with more than
    one dash is a ValueError, not a range (``"1--2"`` split at its first dash would end at -2)."""
    if isinstance(port, int) or "-" not in port:  # the inventory's plain data writes ports as text
        return int(port), int(port)
    start, end = port.split("-")
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


def check_interfaces(
    interfaces: list[dict[str, Any]], hosts: list[dict[str, Any]], sla_classes: dict[str, Any]
) -> list[Finding]:
    """Interfaces join two different hosts (not zones: a probe needs one address) and serve a known SLA class."""
    findings = list(_duplicates(((i, f["name"]) for i, f in enumerate(interfaces)), "interfaces", "interface name"))
    host_names = {h["name"] for h in hosts}
    for index, interface in enumerate(interfaces):
        for end in ("from", "to"):
            if interface[end] not in host_names:
                findings.append((("interfaces", index, end), f"{interface[end]!r} is not a host"))
        if interface["from"] == interface["to"]:
            findings.append((("interfaces", index, "to"), "an interface joins two different hosts"))
        if interface["sla"] not in sla_classes:
            message = f"unknown SLA class {interface['sla']!r}; defined: {sorted(sla_classes)}"
            findings.append((("interfaces", index, "sla"), message))
    return findings


def check_standbys(hosts: list[dict[str, Any]]) -> list[Finding]:
    """A standby names another managed host that is no standby itself, runs the same services and has at most this
    one standby; the primary says where clients reach the pair, on a third host."""
    findings: list[Finding] = []
    by_name = {h["name"]: h for h in hosts}
    standbys: dict[str, list[str]] = {}
    for index, host in enumerate(hosts):
        primary_name = host.get("standby_of")
        if primary_name is None:
            continue
        path: tuple[str | int, ...] = ("hosts", index, "standby_of")
        primary = by_name.get(primary_name)
        if primary is None:
            findings.append((path, f"{primary_name!r} is not a host"))
            continue
        if primary_name == host["name"]:
            findings.append((path, "a host cannot be its own standby"))
            continue
        if primary.get("standby_of"):
            findings.append((path, f"{primary_name!r} is itself a standby of {primary['standby_of']!r}"))
        if host.get("legacy") or primary.get("legacy"):
            findings.append((path, "legacy hosts are left alone, so neither member of a pair may be legacy"))
        if sorted(host["services"]) != sorted(primary["services"]):
            services = f"{sorted(primary['services'])}, not {sorted(host['services'])}"
            findings.append((path, f"a standby runs its primary's services {services}"))
        standbys.setdefault(primary_name, []).append(host["name"])
    for index, host in enumerate(hosts):
        own_standbys = standbys.get(host["name"], [])
        if len(own_standbys) > 1:
            findings.append((("hosts", index, "name"), f"{host['name']!r} has more than one standby: {own_standbys}"))
        service = host.get("service_address")
        if own_standbys and service is None:
            message = f"{host['name']!r} has a standby, so it must declare the service_address clients use"
            findings.append((("hosts", index), message))
        if service is None:
            continue
        path = ("hosts", index, "service_address", "host")
        if not own_standbys:
            message = "only a host that has a standby declares a service_address"
            findings.append((("hosts", index, "service_address"), message))
        elif service["host"] not in by_name:
            findings.append((path, f"{service['host']!r} is not a host"))
        elif service["host"] in (host["name"], *own_standbys):
            message = "the service address is on a third host: a member that fails takes its proxy with it"
            findings.append((path, message))
        elif by_name[service["host"]].get("legacy"):
            message = f"{service['host']!r} is legacy: roles leave it alone, so nothing would proxy there"
            findings.append((path, message))
    return findings


def check_sla_classes(sla_classes: dict[str, Any]) -> list[Finding]:
    """Counted hours belong to business-hours classes only (a 24x7 class counts every second) and end after they
    start."""
    findings: list[Finding] = []
    for name, sla in sla_classes.items():
        hours = sla.get("hours")
        if hours is None:
            continue
        if sla.get("support_hours") != "business-hours":
            message = "only a business-hours class counts hours; a 24x7 class counts every second"
            findings.append((("sla_classes", name, "hours"), message))
        elif hours["end"] <= hours["start"]:  # "HH:MM" strings sort as times
            message = f"end {hours['end']} is not after start {hours['start']} (hours within one day)"
            findings.append((("sla_classes", name, "hours", "end"), message))
    return findings


def check_topology(data: dict[str, Any], service_names: frozenset[str]) -> list[Finding]:
    """Every semantic problem of a schema-valid topology, in document order per section."""
    zone_findings, networks = check_zones(data["zones"])
    return (
        check_text(data)
        + zone_findings
        + check_groups(data, service_names)
        + check_sla_classes(data["sla_classes"])
        + check_hosts(data["hosts"], data["zones"], networks, data["sla_classes"])
        + check_standbys(data["hosts"])
        + check_flows(data["flows"], data["zones"], data["hosts"])
        + check_interfaces(data.get("interfaces", []), data["hosts"], data["sla_classes"])
    )
