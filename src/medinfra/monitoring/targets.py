"""What the monitoring server scrapes and probes, from the topology alone (pure; rendered as file_sd JSON).

- Every host that is not legacy runs the node exporter: one TLS scrape target each. A member of a database pair
  also carries `database_cluster` (the pair's name), so an alert can tell a member whose database metrics are
  missing from a host that has none (not `cluster`: that is a label of the scraped series themselves).
- Every service a host runs is probed the way the site's probe table says (HTTPS for web front ends, TCP+TLS
  for DICOM or TURN, plain TCP for HL7 MLLP), but only where a topology flow lets the monitoring server reach
  that port: a probe the firewall must drop would only raise a false alarm. Such skipped probes are listed.
- ICMP reachability where a flow allows ICMP from the monitoring server.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from medinfra.segmentation.rules import intended
from medinfra.topology.model import Host, Topology
from medinfra.topology.redundancy import database_pairs

MODULES = ("https", "tcp_tls", "tcp")


@dataclass(frozen=True)
class ServiceProbe:
    module: str
    port: int
    path: str = "/"


@dataclass(frozen=True)
class Targets:
    node: list[dict[str, Any]]
    blackbox: list[dict[str, Any]]
    skipped: list[str]


def parse_probes(table: Mapping[str, Iterable[Mapping[str, Any]]] | Any, where: str) -> dict[str, list[ServiceProbe]]:
    """The probe table ``{service: [{module, port, path}]}``; a bad entry names its place and fault."""
    probes: dict[str, list[ServiceProbe]] = {}
    if not isinstance(table, Mapping):
        raise ValueError(f"{where}: must map each service to a list of probes, got {type(table).__name__}")
    for service, entries in table.items():
        if not isinstance(entries, list):
            raise ValueError(f"{where}.{service}: must be a list of probes, got {type(entries).__name__}")
        for index, entry in enumerate(entries):
            place = f"{where}.{service}[{index}]"
            if not isinstance(entry, Mapping):
                raise ValueError(f"{place}: must be a mapping {{module, port, path}}, got {type(entry).__name__}")
            module, port = entry.get("module"), entry.get("port")
            if module not in MODULES:
                raise ValueError(f"{place}.module: {module!r} is not one of {', '.join(MODULES)}")
            if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
                raise ValueError(f"{place}.port: {port!r} is not a port number")
            probes.setdefault(service, []).append(ServiceProbe(module, port, str(entry.get("path", "/"))))
    return probes


def host_labels(host: Host) -> dict[str, str]:
    return {"zone": host.zone, "sla": host.sla}


def node_targets(topology: Topology, port: int) -> list[dict[str, Any]]:
    clusters = {member: pair.name for pair in database_pairs(topology) for member in pair.members}
    return [
        {
            "targets": [f"{host.address}:{port}"],
            "labels": {"instance": host.name, **host_labels(host),
                       **({"database_cluster": clusters[host.name]} if host.name in clusters else {})},
        }
        for host in topology.hosts
        if not host.legacy
    ]


def probe_target(host: Host, probe: ServiceProbe) -> str:
    if probe.module == "https":
        return f"https://{host.address}:{probe.port}{probe.path}"
    return f"{host.address}:{probe.port}"


def scrape_targets(
    topology: Topology, server: Host, probes: Mapping[str, Sequence[ServiceProbe]], node_port: int
) -> Targets:
    blackbox: list[dict[str, Any]] = []
    skipped: list[str] = []
    for host in topology.hosts:
        labels = {"host": host.name, **host_labels(host)}
        if host != server and intended(topology, server, host, "icmp", None):
            blackbox.append({"targets": [str(host.address)], "labels": {**labels, "service": "host", "module": "icmp"}})
        probed: set[tuple[str, str]] = set()
        for service in host.services:
            for probe in probes.get(service, ()):
                target = probe_target(host, probe)
                if (target, probe.module) in probed:
                    continue  # two services behind one port (HIS and PACS web on 443): one probe, the first's name
                if host == server or intended(topology, server, host, "tcp", probe.port):
                    probed.add((target, probe.module))
                    blackbox.append(
                        {"targets": [target], "labels": {**labels, "service": service, "module": probe.module}}
                    )
                else:
                    skipped.append(f"{host.name}:{probe.port} ({service}, {probe.module}): no flow from {server.name}")
    return Targets(node_targets(topology, node_port), blackbox, skipped)
