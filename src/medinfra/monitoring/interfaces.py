"""What the interface probe exporter checks and Prometheus scrapes, from the topology alone (pure).

The monitoring server probes every clinical interface in its own protocol (HL7 ACK, DICOM C-ECHO, FHIR
CapabilityStatement, HTTPS) by connecting to the interface's destination itself, so it needs a topology flow from
the server to that host and port: a probe the firewall must drop would only raise a false alarm. Such interfaces
are skipped and listed with the reason.

Two views of the same selection: the exporter's configuration (where and how to probe each interface) and the
file_sd targets of the Prometheus job `interfaces` (one target per interface, labelled for routing).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from medinfra.segmentation.rules import intended
from medinfra.topology.model import Host, Interface, Topology


@dataclass(frozen=True)
class Probed:
    interfaces: list[Interface]
    skipped: list[str]


def probed(topology: Topology, server: Host) -> Probed:
    """The interfaces the server may reach in their protocol, and why each other one is not probed."""
    reachable: list[Interface] = []
    skipped: list[str] = []
    for interface in topology.interfaces:
        destination = topology.host(interface.destination)
        if destination == server or intended(topology, server, destination, "tcp", interface.port):
            reachable.append(interface)
        else:
            skipped.append(
                f"{interface.name} ({interface.protocol} to {destination.name}:{interface.port}): "
                f"no flow from {server.name}"
            )
    return Probed(reachable, skipped)


def probe_entry(topology: Topology, interface: Interface, timeout_seconds: float) -> dict[str, Any]:
    destination = topology.host(interface.destination)
    return {
        "protocol": interface.protocol,
        "host": str(destination.address),
        # Certificates of the site CA name the host (role _common), so TLS checks the host name, not the address.
        "server_name": destination.name,
        "port": interface.port,
        "tls": interface.tls,
        "identity": dict(interface.identity),
        "timeout_seconds": timeout_seconds,
        "latency_budget_seconds": interface.latency_budget_ms / 1000,
    }


def probe_config(topology: Topology, server: Host, ca_file: str, timeout_seconds: float) -> dict[str, Any]:
    """The exporter's configuration JSON: every interface the server may reach."""
    if not 0 < timeout_seconds <= 60:
        raise ValueError(f"timeout_seconds: {timeout_seconds!r} is not between 0 (excluded) and 60 seconds")
    return {
        "ca_file": ca_file,
        "interfaces": {
            interface.name: probe_entry(topology, interface, timeout_seconds)
            for interface in probed(topology, server).interfaces
        },
    }


def target_labels(interface: Interface) -> dict[str, str]:
    return {
        "interface": interface.name,
        "protocol": interface.protocol,
        "from": interface.source,
        "to": interface.destination,
        "owner": interface.owner,
        "vendor": interface.vendor.name if interface.vendor else "",
        "sla": interface.sla,
    }


def interface_targets(topology: Topology, server: Host) -> tuple[list[dict[str, Any]], list[str]]:
    """file_sd entries of the job `interfaces` (target = interface name), and the skipped interfaces."""
    selection = probed(topology, server)
    targets = [{"targets": [interface.name], "labels": target_labels(interface)} for interface in selection.interfaces]
    return targets, selection.skipped
