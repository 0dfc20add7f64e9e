"""`medinfra segmentation verify`: real connection attempts between the hospital's hosts, judged against the topology.

Every declared flow is tried once from a host it covers (it must get through), and from every host a
sample of undeclared ports towards one host of every zone (they must not). The probes run on the
source hosts (plugins/module_utils/reachability.py) over the same SSH transport as the audit.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from medinfra.safe_text import one_line
from medinfra.segmentation.rules import intended
from medinfra.topology.model import Host, Topology

# Ports a hospital network should never expose between zones unless declared: telnet, SMB, RDP, VNC, Redis;
# TFTP and SNMP over UDP.
SAMPLE_PORTS: tuple[tuple[str, int | None], ...] = (
    ("tcp", 23), ("tcp", 445), ("tcp", 3389), ("tcp", 5900), ("tcp", 6379), ("udp", 69), ("udp", 161), ("icmp", None),
)
VERDICTS = ("ok", "unexpected", "unconfirmed")


@dataclass(frozen=True)
class Probe:
    source: str
    destination: str
    address: str
    proto: str
    port: int | None
    expected: str  # allowed or blocked
    reason: str

    def as_plan_item(self) -> dict[str, Any]:
        return {
            "destination": self.destination, "address": self.address, "proto": self.proto, "port": self.port,
            "expected": self.expected, "reason": self.reason,
        }


def probe_hosts(topology: Topology) -> list[Host]:
    """Hosts that send and receive probes: the zone firewall routes, it is not an endpoint."""
    return [host for host in topology.hosts if "zone_firewall" not in host.services]


def flow_probes(topology: Topology, hosts: Sequence[Host]) -> list[Probe]:
    probes = []
    for flow in topology.flows:
        sources = [h for h in hosts if topology.endpoint_covers(flow.source, h)]
        for source in sources[:1]:
            destinations = [h for h in hosts if topology.endpoint_covers(flow.destination, h) and h != source]
            for destination in destinations[:1]:
                ports: list[int | None] = [*sorted({p for r in flow.ports for p in (r.start, r.end)})] or [None]
                probes += [
                    Probe(source.name, destination.name, str(destination.address), flow.proto, port, "allowed",
                          flow.purpose)
                    for port in ports
                ]
    return probes


def sample_probes(topology: Topology, hosts: Sequence[Host]) -> list[Probe]:
    """From every host to one host of every zone, the sample ports; a port the topology allows there is skipped."""
    probes = []
    for source in hosts:
        for zone in topology.zones:
            # A legacy host keeps no host firewall: inside its zone only the zone firewall could stop traffic, and
            # it does not see that traffic. Such pairs are not probed (the matrix says so).
            targets = [h for h in hosts if h.zone == zone.name and h != source
                       and not (h.legacy and h.zone == source.zone)]
            for destination in targets[:1]:
                for proto, port in SAMPLE_PORTS:
                    if not intended(topology, source, destination, proto, port):
                        probes.append(Probe(source.name, destination.name, str(destination.address), proto, port,
                                            "blocked", "not declared"))
    return probes


def plan(topology: Topology) -> dict[str, list[Probe]]:
    """Probes by source host, without duplicates."""
    hosts = probe_hosts(topology)
    by_source: dict[str, dict[tuple[str, str, int | None], Probe]] = {h.name: {} for h in hosts}
    for probe in [*flow_probes(topology, hosts), *sample_probes(topology, hosts)]:
        by_source[probe.source].setdefault((probe.address, probe.proto, probe.port), probe)
    return {name: list(probes.values()) for name, probes in by_source.items() if probes}


def probe_script(source: str, host: str, probes: Sequence[Probe], timeout: float, record: str | None) -> str:
    """The reachability module plus the call that runs this host's probes; `record` is the host's state directory
    (its medinfra_paths.state, where the audit reads the verdict), or None to leave no record."""
    document = {"host": host, "timeout": timeout, "record": record, "probes": [p.as_plan_item() for p in probes]}
    return f"{source}\nmain(json.loads({json.dumps(json.dumps(document))}))\n"


@dataclass(frozen=True)
class Observation:
    source: str
    source_zone: str
    destination: str
    destination_zone: str
    address: str
    proto: str
    port: int | None
    expected: str
    observed: str
    verdict: str
    reason: str
    detail: str

    def label(self) -> str:
        port = f"/{self.port}" if self.port is not None else ""
        return (f"{self.source} ({self.source_zone}) -> {self.destination} {self.address} {self.proto}{port}: "
                f"{self.observed}, expected {self.expected} ({self.reason}; {self.detail})")


_TEXT_FIELDS = ("address", "proto", "expected", "observed", "reason", "detail")
EXPECTATIONS = ("allowed", "blocked")


def host_observations(topology: Topology, source: str, evidence: Mapping[str, Any]) -> list[Observation]:
    """One host's reported attempts with the zones filled in; ValueError naming what a hostile or broken
    host sent instead (the matrix must not stop at one host's output)."""
    hosts = topology.hosts_by_name
    items = evidence.get("results")
    if not isinstance(items, list):
        raise ValueError("its output has no list of results")
    found = []
    for index, item in enumerate(items):
        where = f"results[{index}]"
        if not isinstance(item, dict):
            raise ValueError(f"{where} is not an object")
        destination = item.get("destination")
        if not isinstance(destination, str) or destination not in hosts:
            raise ValueError(f"{where}.destination is not a host of the topology")
        shown = {name: one_line(text) for name in _TEXT_FIELDS if isinstance(text := item.get(name), str)}
        if len(shown) < len(_TEXT_FIELDS):
            raise ValueError(f"{where}: {', '.join(_TEXT_FIELDS)} must all be text")
        port = item.get("port")
        if port is not None and (type(port) is not int or not 0 < port < 65536):
            raise ValueError(f"{where}.port is not a port number")
        if item.get("verdict") not in VERDICTS or item["expected"] not in EXPECTATIONS:
            raise ValueError(f"{where}: verdict must be one of {VERDICTS}, expected one of {EXPECTATIONS}")
        found.append(Observation(source, hosts[source].zone, destination, hosts[destination].zone, port=port,
                                 verdict=item["verdict"], **shown))
    return found


def matrix_text(topology: Topology, found: Sequence[Observation]) -> str:
    """Zone by zone: allowed as declared / blocked as intended, and how many were unexpected."""
    zones = [z.name for z in topology.zones]
    width = max(12, *(len(z) + 2 for z in zones))
    lines = ["from/to".ljust(width) + "".join(z.ljust(width) for z in zones)]
    for source in zones:
        cells = []
        for destination in zones:
            here = [o for o in found if o.source_zone == source and o.destination_zone == destination]
            if not here:
                cells.append("-".ljust(width))
                continue
            allowed = sum(o.verdict == "ok" and o.expected == "allowed" for o in here)
            blocked = sum(o.verdict == "ok" and o.expected == "blocked" for o in here)
            bad = sum(o.verdict == "unexpected" for o in here)
            cell = f"{allowed}a {blocked}b" + (f" !{bad}" if bad else "")
            cells.append(cell.ljust(width))
        lines.append(source.ljust(width) + "".join(cells))
    lines.append("a: declared and reached; b: undeclared and blocked; !n: unexpected (listed below)")
    return "\n".join(lines)


def summary(found: Sequence[Observation]) -> dict[str, int]:
    return {verdict: sum(o.verdict == verdict for o in found) for verdict in VERDICTS}
