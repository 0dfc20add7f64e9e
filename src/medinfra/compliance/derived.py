"""Facts the controller derives from one host's own evidence and its inventory view, before any control runs
(pure, like the evaluator): what the host's firewall does with probe packets, where its PHI paths are stored,
which audit rules watch them, how a database pair member replicates with the other. Checks read them under
`derived`; a host's evidence cannot supply them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace
from ipaddress import ip_address, ip_network
from typing import Any

from medinfra.collector import collector_module
from medinfra.compliance.checks import is_unavailable
from medinfra.compliance.database import database_view
from medinfra.compliance.firewall import Probe, probe_verdict
from medinfra.segmentation.rules import MANAGEMENT_PURPOSE
from medinfra.topology.checks import parse_port_range

SSH_PORT = 22
# A port no medinfra role opens, and sources outside every site (RFC 5737 / RFC 3849 documentation ranges).
CLOSED_PORT = 4444
OUTSIDE_SOURCES = ("203.0.113.10", "2001:db8::10")
# New connections from a zone to outside the site that a zone firewall must not route unless declared: web, DNS.
EGRESS_SAMPLES = (("tcp", 443), ("udp", 53))


def unavailable(reason: str) -> dict[str, str]:
    return {"unavailable": reason}


def derived_views(facts: Mapping[str, Any], inventory: Mapping[str, Any], host: str) -> dict[str, Any]:
    return {
        "firewall": firewall_view(facts.get("nftables"), facts.get("network"), facts.get("sockets"), inventory),
        "storage": storage_view(facts.get("mounts"), inventory),
        "audit": audit_view(facts.get("auditd"), inventory),
        "database": database_view(facts.get("database"), inventory, host),
    }


def zone_sample(cidr: str) -> str:
    """One host address inside a zone (its middle one, which a rule for the zone's first hosts does not cover)."""
    network = ip_network(cidr, strict=False)
    return (
        str(network.network_address + network.num_addresses // 2)
        if network.num_addresses > 2
        else str(network.network_address)
    )


def declared_flow(flows: Iterable[Mapping[str, Any]], source_zone: str, protocol: str, port: int) -> str | None:
    """The purpose of a topology flow that opens this port on the host to a whole zone, if one does."""
    for flow in flows:
        ranges = [parse_port_range(p) for p in flow.get("ports") or ()]
        if flow.get("from") == source_zone and flow.get("proto") == protocol and any(a <= port <= b for a, b in ranges):
            return str(flow.get("purpose") or "declared flow")
    return None


def firewall_probes(
    zones: Iterable[Mapping[str, Any]], own_zone: str | None, flows_in: Iterable[Mapping[str, Any]] = ()
) -> list[tuple[str, str, Probe]]:
    """(purpose, intended verdict, packet) of the new connections a compliant host's input filter must judge:
    SSH from every management zone (accepted), from every other zone and from outside (dropped, unless the
    topology declares a flow from that zone to this host's SSH port: then accepted, and named), and a port
    nothing opens, from outside and from the host's own zone (dropped)."""
    flows_in = list(flows_in)
    probes: list[tuple[str, str, Probe]] = []
    for zone in zones:
        source = zone_sample(str(zone["cidr"]))
        declared = declared_flow(flows_in, str(zone["name"]), "tcp", SSH_PORT)
        if zone.get("purpose") == MANAGEMENT_PURPOSE:
            probes.append(("ssh_from_management", "accept", Probe(source, "tcp", SSH_PORT)))
        elif declared:
            probes.append(
                (f"ssh_from_zone_{zone['name']} (declared flow: {declared})", "accept", Probe(source, "tcp", SSH_PORT))
            )
        else:
            probes.append((f"ssh_from_zone_{zone['name']}", "drop", Probe(source, "tcp", SSH_PORT)))
        if zone.get("name") == own_zone:
            probes.append(("closed_port_from_own_zone", "drop", Probe(source, "tcp", CLOSED_PORT)))
    for source in OUTSIDE_SOURCES:
        probes.append(("ssh_from_outside", "drop", Probe(source, "tcp", SSH_PORT)))
        probes.append(("closed_port_from_outside", "drop", Probe(source, "tcp", CLOSED_PORT)))
        probes.append(("closed_udp_port_from_outside", "drop", Probe(source, "udp", CLOSED_PORT)))
    return probes


def route_device(network: Any, address: str) -> str | None:
    """The interface the host's main routing table sends `address` by: with the symmetric routing that strict
    reverse-path filtering enforces, also the one a packet from it arrives on. None when the routes are unknown,
    or the address has no route or an unreachable, blackhole or prohibit one."""
    if not isinstance(network, Mapping) or not isinstance(network.get("routes"), list):
        return None
    target = ip_address(address)
    everything = "0.0.0.0/0" if target.version == 4 else "::/0"
    best: tuple[int, str | None] | None = None
    for route in network["routes"]:
        if not isinstance(route, Mapping):
            continue
        destination = str(route.get("destination"))
        try:
            net = ip_network(everything if destination == "default" else destination, strict=False)
        except ValueError:
            continue
        if net.version == target.version and target in net and (best is None or net.prefixlen > best[0]):
            device = route.get("device") if route.get("type", "unicast") == "unicast" else None
            best = (net.prefixlen, str(device) if device else None)
    return best[1] if best else None


def covered(flows: Iterable[Mapping[str, Any]], probe: Probe) -> str | None:
    """The purpose of the forwarded flow that routes this packet, if one does."""
    source, destination = ip_address(probe.saddr), ip_address(str(probe.daddr))
    for flow in flows:
        ranges = [parse_port_range(p) for p in flow.get("ports") or ()]
        if (
            flow.get("proto") == probe.protocol
            and any(source in ip_network(net) for net in flow.get("sources") or ())
            and any(destination in ip_network(net) for net in flow.get("destinations") or ())
            and any(a <= probe.dport <= b for a, b in ranges)
        ):
            return str(flow.get("purpose") or "declared flow")
    return None


def forward_probes(
    zones: Iterable[Mapping[str, Any]], flows: Iterable[Mapping[str, Any]], network: Any
) -> list[tuple[str, str, Probe]]:
    """(purpose, intended verdict, packet) of the new connections a zone firewall must judge: between every two
    zones a port nothing opens and SSH, from every zone to outside the site (egress) and from outside into every
    zone; each dropped unless a forwarded flow of the topology routes it (then accepted, and named). Each packet
    enters and leaves by the interfaces the host's routes give."""
    flows = list(flows)
    samples = [(str(zone["name"]), zone_sample(str(zone["cidr"]))) for zone in zones]
    outside = OUTSIDE_SOURCES[0]
    packets: list[tuple[str, str, str, int, str]] = []  # purpose, source, protocol, port, destination
    for name, source in samples:
        for other, destination in samples:
            if other != name:
                packets.append((f"closed_port_between_zones {name}->{other}", source, "tcp", CLOSED_PORT, destination))
                packets.append((f"ssh_between_zones {name}->{other}", source, "tcp", SSH_PORT, destination))
        for protocol, port in EGRESS_SAMPLES:
            packets.append((f"egress_from_zone {name}", source, protocol, port, outside))
        packets.append((f"from_outside_to_zone {name}", outside, "tcp", 443, source))
    probes = []
    for purpose, source, protocol, port, destination in packets:
        probe = Probe(
            source,
            protocol,
            port,
            daddr=destination,
            hook="forward",
            iifname=route_device(network, source),
            oifname=route_device(network, destination),
        )
        declared = covered(flows, probe)
        named = f"{purpose} (declared flow: {declared})" if declared else purpose
        probes.append((named, "accept" if declared else "drop", probe))
    return probes


def judged(purpose: str, intended: str, probe: Probe, ruleset: list[dict[str, Any]]) -> dict[str, str]:
    """One probe's verdict as the evidence shows it."""
    verdict = probe_verdict(ruleset, probe)
    to = f" to {probe.daddr}" if probe.daddr else ""
    via = "".join(f", {word} {name}" for word, name in (("in", probe.iifname), ("out", probe.oifname)) if name)
    packet = f"new {probe.protocol} from {probe.saddr}{to} port {probe.dport}{via}"
    return {
        "purpose": purpose,
        "intended": intended,
        "verdict": verdict.verdict,
        # One line a finding can quote: what happened to which packet, and the rule that decided it.
        "outcome": f"{verdict.verdict}: {packet}, by {verdict.decided_by}",
    }


def listener_probes(
    listening: Iterable[Mapping[str, Any]],
    zones: Iterable[Mapping[str, Any]],
    flows_in: Iterable[Mapping[str, Any]],
) -> list[tuple[str, str, Probe]]:
    """(purpose, intended verdict, packet) of new connections to each service listening beyond loopback, from every
    zone but the management zones and from outside the site: dropped unless a topology flow opens that port to that
    zone (then accepted, and named). SSH has its own probes; management zones are left out because roles open
    their consoles to them (Prometheus, Alertmanager) without a topology flow."""
    flows_in = list(flows_in)
    ports = sorted(
        {
            (str(listener["protocol"]), int(listener["port"]), str(listener.get("process") or "?"))
            for listener in listening
            if listener.get("protocol") in ("tcp", "udp")
            and not listener.get("loopback_only")
            and isinstance(listener.get("port"), int)
            and listener["port"] != SSH_PORT
        }
    )
    probes: list[tuple[str, str, Probe]] = []
    for protocol, port, process in ports:
        service = f"{protocol}/{port} ({process})"
        for zone in zones:
            if zone.get("purpose") == MANAGEMENT_PURPOSE:
                continue
            probe = Probe(zone_sample(str(zone["cidr"])), protocol, port)
            declared = declared_flow(flows_in, str(zone["name"]), protocol, port)
            purpose = f"{service} from zone {zone['name']}"
            probes.append(
                (f"{purpose} (declared flow: {declared})", "accept", probe) if declared else (purpose, "drop", probe)
            )
        for source in OUTSIDE_SOURCES:
            probes.append((f"{service} from outside", "drop", Probe(source, protocol, port)))
    return probes


def own_address(network: Any, inventory: Mapping[str, Any]) -> str | None:
    """The inventory's address of the host when the host's interfaces hold it (not a jump name, not a NAT address):
    where the probes are sent, so that rules matching `ip daddr` can be decided."""
    address = str(inventory.get("address") or "")
    return address if address in collector_module().local_addresses(network) else None


def inbound(probe: Probe, network: Any, address: str | None) -> Probe:
    """The probe as it reaches this host: by the interface the routes give, to its own address of the same IP
    version where one is known."""
    same_version = address is not None and ip_address(address).version == ip_address(probe.saddr).version
    return replace(probe, iifname=route_device(network, probe.saddr), daddr=address if same_version else None)


def firewall_view(nftables: Any, network: Any, sockets: Any, inventory: Mapping[str, Any]) -> Any:
    """What the host's nftables ruleset, evaluated as the kernel would, does with each probe packet (arriving by
    the interface the host's routes give): SSH and closed ports, each listening service, and on a zone firewall
    what its forward hook does with routed packets."""
    if not isinstance(nftables, Mapping):
        return unavailable("no nftables evidence")
    if is_unavailable(nftables):
        return nftables
    ruleset = nftables.get("ruleset")
    if not isinstance(ruleset, list):
        return unavailable("nftables.ruleset: absent from the evidence (collector older than 1.4)")
    zones = [z for z in inventory.get("zones") or () if isinstance(z, Mapping) and "cidr" in z]
    if not any(z.get("purpose") == MANAGEMENT_PURPOSE for z in zones):
        return unavailable("the inventory names no management zone, so SSH from management cannot be probed")
    address = own_address(network, inventory)
    view: dict[str, Any] = {
        "input_probes": [
            judged(purpose, intended, inbound(probe, network, address), ruleset)
            for purpose, intended, probe in firewall_probes(
                zones, inventory.get("zone"), inventory.get("flows_in") or ()
            )
        ]
    }
    listening = sockets.get("listening") if isinstance(sockets, Mapping) else None
    if isinstance(listening, list):
        view["listener_probes"] = [
            judged(purpose, intended, inbound(probe, network, address), ruleset)
            for purpose, intended, probe in listener_probes(listening, zones, inventory.get("flows_in") or ())
        ]
    else:
        view["listener_probes"] = sockets if is_unavailable(sockets) else unavailable("no listening sockets evidence")
    if "zone_firewall" in (inventory.get("services") or ()):
        flows = inventory.get("forwarded_flows") or ()
        view["forward_probes"] = (
            [
                judged(purpose, intended, probe, ruleset)
                for purpose, intended, probe in forward_probes(zones, flows, network)
            ]
            if flows
            else unavailable("the inventory gives this zone firewall no forwarded flows (medinfra_forwarded_flows)")
        )
    return view


def data_paths(inventory: Mapping[str, Any]) -> list[str] | str:
    """The host's PHI paths from the topology, or why there are none to check."""
    paths = [str(path) for path in inventory.get("data_paths") or ()]
    if not paths:
        return "the inventory names no data_paths for this host, so where its PHI lies is unknown"
    return paths


def under(path: str, directory: str) -> bool:
    """Whether a path is the directory or lies below it."""
    return path == directory or path.startswith(directory.rstrip("/") + "/")


def storage_view(mounts: Any, inventory: Mapping[str, Any]) -> Any:
    """Each PHI path with the file system that holds it (the longest mount point above it) and whether that
    file system sits on dm-crypt."""
    paths = data_paths(inventory)
    if isinstance(paths, str):
        return unavailable(paths)
    if not isinstance(mounts, Mapping) or is_unavailable(mounts) or not isinstance(mounts.get("mounts"), list):
        return unavailable("no mount evidence")
    entries = [m for m in mounts["mounts"] if isinstance(m, Mapping) and "mountpoint" in m]
    phi = []
    for path in paths:
        holders = [m for m in entries if under(path, str(m["mountpoint"]))]
        if not holders:
            phi.append({"path": path, "mountpoint": None, "encrypted": False})
            continue
        mount = max(holders, key=lambda m: len(str(m["mountpoint"])))
        phi.append(
            {
                "path": path,
                "mountpoint": mount["mountpoint"],
                "device": mount.get("device"),
                "fstype": mount.get("fstype"),
                "encrypted": mount.get("encrypted") is True,
            }
        )
    return {"phi_paths": phi}


def watch_covers(rule: str, path: str) -> bool:
    """Whether an audit rule records both reads and writes of a path: a watch (`-w DIR -p ...r..w..`) on it
    or a directory above it."""
    words = rule.split()
    if len(words) < 4 or words[0] != "-w" or "-p" not in words:
        return False
    permissions = words[words.index("-p") + 1] if words.index("-p") + 1 < len(words) else ""
    return under(path, words[1].rstrip("/") or "/") and "r" in permissions and "w" in permissions


def audit_view(auditd: Any, inventory: Mapping[str, Any]) -> Any:
    """Each PHI path with the audit rule in force that records its reads and writes (or none)."""
    paths = data_paths(inventory)
    if isinstance(paths, str):
        return unavailable(paths)
    if not isinstance(auditd, Mapping) or is_unavailable(auditd):
        return unavailable("no auditd evidence")
    effective = auditd.get("effective")
    if not isinstance(effective, Mapping) or not isinstance(effective.get("rules"), list):
        return unavailable("auditd.effective.rules: absent from the evidence")
    rules = [str(rule) for rule in effective["rules"]]
    return {
        "phi_paths": [
            {"path": path, "watched_by": next((rule for rule in rules if watch_covers(rule, path)), None)}
            for path in paths
        ]
    }
