"""What each firewall accepts, from the topology alone: a pure function, then nftables text.

Rules are first plain `Allow` records (sources, destinations, protocol, ports), so tests can ask
"is this packet accepted?" of the same records the nftables text is written from.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Network, collapse_addresses, ip_network
from typing import Any

from medinfra.topology.checks import parse_port_range
from medinfra.topology.model import Flow, Host, PortRange, Topology

TABLE = "medinfra"
SSH = (PortRange(22, 22),)
MANAGEMENT_PURPOSE = "mgmt"
LOG_RATE = "5/minute burst 10 packets"
VERSION_PREFIX = "medinfra ruleset "


@dataclass(frozen=True)
class Allow:
    """Traffic a chain accepts: from any source network to any destination network, one protocol, these ports."""

    sources: tuple[IPv4Network, ...]
    destinations: tuple[IPv4Network, ...]
    proto: str  # tcp, udp or icmp
    ports: tuple[PortRange, ...]  # empty for icmp
    comment: str

    def accepts(self, source: IPv4Address, destination: IPv4Address, proto: str, port: int | None) -> bool:
        return (
            proto == self.proto
            and any(source in net for net in self.sources)
            and any(destination in net for net in self.destinations)
            and (proto == "icmp" or any(r.start <= (port or 0) <= r.end for r in self.ports))
        )


@dataclass(frozen=True)
class Opening:
    """A port another role needs open on a host, declared through `network_segmentation_openings`."""

    proto: str
    ports: tuple[PortRange, ...]
    sources: tuple[str, ...]  # zone or host names
    comment: str


@dataclass(frozen=True)
class Egress:
    """Where one service user's sockets may not send new traffic: every internal network but `allowed`."""

    user: str
    uid: int
    allowed: tuple[IPv4Network, ...]
    comment: str


def parse_egress(
    topology: Topology, items: Iterable[Mapping[str, Any]], uids: Mapping[str, int], where: str
) -> list[Egress]:
    """Egress limits from role variables. A user not (yet) on the host is skipped: its role has not run there, and
    nft resolves no names, so the rule is rendered by uid once the user exists."""
    limits, problems = [], []
    endpoints = {zone.name for zone in topology.zones} | {host.name for host in topology.hosts}
    for index, item in enumerate(items):
        here = f"{where}[{index}]"
        user, allowed = str(item.get("user") or ""), item.get("allow") or []
        networks: list[IPv4Network] = []
        for entry in allowed if isinstance(allowed, list) else [allowed]:
            try:
                named = isinstance(entry, str) and entry in endpoints
                networks += endpoint_networks(topology, entry) if named else [IPv4Network(str(entry))]
            except ValueError:
                problems.append(f"{here}.allow: {entry!r} is no zone or host of the topology, nor an IPv4 network")
        if not user:
            problems.append(f"{here}.user: needs the service's user name")
        elif user in uids and not problems:
            limits.append(Egress(user, uids[user], tuple(networks), str(item.get("comment") or f"{user} egress")))
    if problems:
        raise ValueError("; ".join(problems))
    return limits


def parse_openings(topology: Topology, items: Iterable[Mapping[str, Any]], where: str) -> list[Opening]:
    """Openings from role variables, each checked: a wrong one names its variable, index and fault."""
    openings, problems = [], []
    endpoints = {zone.name for zone in topology.zones} | {host.name for host in topology.hosts}
    for index, item in enumerate(items):
        here = f"{where}[{index}]"
        proto, sources, ports = str(item.get("proto")), item.get("from") or [], item.get("ports") or []
        if proto not in ("tcp", "udp"):
            problems.append(f"{here}.proto: {proto!r} is not tcp or udp")
        if not isinstance(sources, list) or not sources or not set(sources) <= endpoints:
            unknown = sorted(set(sources) - endpoints) if isinstance(sources, list) else sources
            problems.append(f"{here}.from: needs zone or host names of the topology (unknown: {unknown})")
        try:
            ranges = tuple(PortRange(*parse_port_range(port)) for port in ports)
        except ValueError:
            ranges = ()
        if not ranges or any(not 1 <= r.start <= r.end <= 65535 for r in ranges):
            problems.append(f"{here}.ports: {ports!r} is not a list of ports or ranges (1-65535)")
        if not problems:
            openings.append(Opening(proto, ranges, tuple(sources), str(item.get("comment") or "declared opening")))
    if problems:
        raise ValueError("; ".join(problems))
    return openings


def endpoint_networks(topology: Topology, endpoint: str) -> tuple[IPv4Network, ...]:
    """A zone is its CIDR; a host is its address."""
    for zone in topology.zones:
        if zone.name == endpoint:
            return (zone.network,)
    return (IPv4Network(topology.host(endpoint).address),)


def management_networks(topology: Topology) -> tuple[IPv4Network, ...]:
    return tuple(zone.network for zone in topology.zones if zone.purpose == MANAGEMENT_PURPOSE)


def flow_allow(topology: Topology, flow: Flow, destinations: tuple[IPv4Network, ...]) -> Allow:
    return Allow(endpoint_networks(topology, flow.source), destinations, flow.proto, flow.ports, flow.purpose)


def input_rules(
    topology: Topology,
    host: Host,
    openings: Sequence[Opening] = (),
    management: Sequence[IPv4Network] = (),
) -> list[Allow]:
    """What `host` accepts: SSH from management, the flows to it, and other roles' declared openings.

    `management` adds networks allowed to SSH besides the management zones (e.g. an Ansible controller).
    """
    own = (IPv4Network(host.address),)
    admins = tuple(dict.fromkeys((*management_networks(topology), *management)))
    rules = [Allow(admins, own, "tcp", SSH, "administration over SSH from management")] if admins else []
    rules += [flow_allow(topology, flow, own) for flow in topology.flows_to(host)]
    for opening in openings:
        sources = tuple(net for name in opening.sources for net in endpoint_networks(topology, name))
        rules.append(Allow(sources, own, opening.proto, opening.ports, opening.comment))
    return rules


def forward_rules(topology: Topology) -> list[Allow]:
    """What the zone firewall routes: exactly the declared flows, SSH from management included."""
    return [flow_allow(topology, flow, endpoint_networks(topology, flow.destination)) for flow in topology.flows]


def intended(topology: Topology, source: Host, destination: Host, proto: str, port: int | None) -> str:
    """Why the topology allows this connection, or "" if it does not: a declared flow, or SSH inside a
    management zone (management reaches other zones only through declared flows, as the zone firewall
    forwards nothing else)."""
    for flow in topology.flows:
        if (
            flow.proto == proto
            and topology.endpoint_covers(flow.source, source)
            and topology.endpoint_covers(flow.destination, destination)
            and (proto == "icmp" or any(r.start <= (port or 0) <= r.end for r in flow.ports))
        ):
            return flow.purpose
    same_zone = source.zone == destination.zone
    if same_zone and proto == "tcp" and port == 22 and topology.zone(source.zone).purpose == MANAGEMENT_PURPOSE:
        return "administration over SSH within management"
    return ""


def accepted(
    rules: Iterable[Allow], source: IPv4Address, destination: IPv4Address, proto: str, port: int | None
) -> bool:
    """Whether a new connection passes a chain whose policy is drop (the reference meaning of the rules)."""
    return any(rule.accepts(source, destination, proto, port) for rule in rules)


def zone_sets(topology: Topology) -> list[str]:
    return [
        f"  set zone_{zone.name.replace('-', '_')} {{\n    type ipv4_addr; flags interval;\n"
        f"    elements = {{ {zone.network} }}\n  }}"
        for zone in topology.zones
    ]


def address_expression(topology: Topology, networks: tuple[IPv4Network, ...]) -> str:
    """A zone's named set where the networks are exactly one zone, else an anonymous set."""
    by_network = {zone.network: zone.name for zone in topology.zones}
    if len(networks) == 1 and networks[0] in by_network:
        return f"@zone_{by_network[networks[0]].replace('-', '_')}"
    items = ", ".join(str(net.network_address) if net.prefixlen == 32 else str(net) for net in networks)
    return items if len(networks) == 1 else f"{{ {items} }}"


def port_expression(ports: tuple[PortRange, ...]) -> str:
    items = ", ".join(str(p) for p in ports)
    return items if len(ports) == 1 else f"{{ {items} }}"


def quote(comment: str) -> str:
    return '"' + comment.replace('"', "'").replace("\\", "/")[:120] + '"'


def rule_line(topology: Topology, rule: Allow, match_destination: bool) -> str:
    parts = [f"ip saddr {address_expression(topology, rule.sources)}"]
    if match_destination:
        parts.append(f"ip daddr {address_expression(topology, rule.destinations)}")
    if rule.proto == "icmp":
        parts.append("icmp type echo-request")
    else:
        parts.append(f"{rule.proto} dport {port_expression(rule.ports)}")
    return f"    {' '.join(parts)} counter accept comment {quote(rule.comment)}"


def chain(name: str, hook: str, lines: Iterable[str], log_prefix: str) -> str:
    body = [
        f"  chain {name} {{",
        f"    type filter hook {hook} priority filter; policy drop;",
        "    ct state established,related accept",
        "    ct state invalid counter drop",
        *lines,
        f'    limit rate {LOG_RATE} log prefix "{log_prefix}" level info',
        "    counter drop",
        "  }",
    ]
    return "\n".join(body)


def render_table(topology: Topology, chains: Iterable[str]) -> str:
    """Our table only, replaced atomically: declare it (so delete never fails), delete it, define it anew.

    `nft -f` applies the whole file as one transaction; other tables (Docker's, a vendor's) are untouched.
    """
    body = "\n\n".join([*zone_sets(topology), *chains])
    header = (
        "#!/usr/sbin/nft -f\n"
        "# Managed by medinfra (role network_segmentation) from the site topology; replaced as a whole.\n"
        f"table inet {TABLE}\ndelete table inet {TABLE}\n"
    )
    # The version travels with the loaded table, so the role can tell whether this exact ruleset is in force.
    comment = f'  comment "{VERSION_PREFIX}{hashlib.sha256(body.encode()).hexdigest()[:16]}"\n'
    return header + f"table inet {TABLE} {{\n" + comment + body + "\n}\n"


def input_chain(topology: Topology, host: Host, openings: Sequence[Opening], management: Sequence[IPv4Network]) -> str:
    lines = [
        '    iifname "lo" accept',
        # Neighbour discovery keeps IPv6 working on the link; nothing else over IPv6 is accepted.
        "    icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert, nd-router-advert } accept",
        *(rule_line(topology, rule, False) for rule in input_rules(topology, host, openings, management)),
    ]
    return chain("input", "input", lines, "medinfra-in-drop: ")


def internal_networks(topology: Topology, special: Iterable[str]) -> tuple[list[IPv4Network], list[IPv6Network]]:
    """The site's zones and the `special` networks (private, loopback, link-local...), merged per IP version so
    that nft gets an interval set without overlaps."""
    networks = [ip_network(text) for text in special] + [zone.network for zone in topology.zones]
    v4 = list(collapse_addresses(n for n in networks if isinstance(n, IPv4Network)))
    v6 = list(collapse_addresses(n for n in networks if isinstance(n, IPv6Network)))
    return v4, v6


def output_chain(topology: Topology, limits: Sequence[Egress], special: Iterable[str]) -> str:
    """Policy accept: only the listed users are limited, and only for new traffic (replies to clients, which sit in
    internal zones too, are established)."""
    v4, v6 = internal_networks(topology, special)
    lines = ["  chain output {", "    type filter hook output priority filter; policy accept;",
             "    ct state established,related accept"]
    for limit in limits:
        owner = f"meta skuid {limit.uid}"
        if limit.allowed:
            lines.append(f"    {owner} ip daddr {address_expression(topology, limit.allowed)} counter accept "
                         f"comment {quote(f'{limit.user}: allowed internal peers')}")
        for family, networks in (("ip", v4), ("ip6", v6)):
            if networks:
                targets = "{ " + ", ".join(str(n) for n in networks) + " }"
                lines += [
                    f"    {owner} {family} daddr {targets} limit rate {LOG_RATE} "
                    f'log prefix "medinfra-out-drop: " level info',
                    f"    {owner} {family} daddr {targets} counter drop comment {quote(limit.comment)}",
                ]
    lines.append("  }")
    return "\n".join(lines)


def host_ruleset(
    topology: Topology,
    host: Host,
    openings: Sequence[Opening] = (),
    management: Sequence[IPv4Network] = (),
    egress: Sequence[Egress] = (),
    special: Iterable[str] = (),
) -> str:
    """A host's table; the zone firewall's also limits forwarding to the declared flows. `egress` limits service
    users' new traffic to internal networks (the topology's zones and `special`)."""
    chains = [input_chain(topology, host, openings, management)]
    if egress:
        chains.append(output_chain(topology, egress, special))
    if "zone_firewall" in host.services:
        forward = [rule_line(topology, rule, True) for rule in forward_rules(topology)]
        chains.append(chain("forward", "forward", forward, "medinfra-fwd-drop: "))
    return render_table(topology, chains)
