"""What a topology's clinical interfaces imply: the flow each needs and whether PHI crosses zones in plaintext.

Pure. Both are validation warnings (`medinfra topology validate`) and audit failures (controls
interface_flows_declared and interface_phi_encrypted, from the same functions).
"""

from __future__ import annotations

from medinfra.problems import DocPath
from medinfra.topology.model import Interface, Topology

Finding = tuple[DocPath, str]


def flow_declared(topology: Topology, interface: Interface) -> bool:
    """Whether a declared flow lets the interface's source open its connection (the firewall drops anything else)."""
    # Imported here: the segmentation rules import the topology package, which loads topologies with this module.
    from medinfra.segmentation.rules import intended

    source, destination = topology.host(interface.source), topology.host(interface.destination)
    return bool(intended(topology, source, destination, "tcp", interface.port))


def crosses_zones(topology: Topology, interface: Interface) -> bool:
    return topology.host(interface.source).zone != topology.host(interface.destination).zone


def plaintext_phi_across_zones(topology: Topology, interface: Interface) -> bool:
    return interface.phi and not interface.tls and crosses_zones(topology, interface)


def interface_warnings(topology: Topology) -> list[Finding]:
    """Interfaces the firewall would drop, and PHI that crosses zones in plaintext, located in hospital.yml."""
    findings: list[Finding] = []
    for index, interface in enumerate(topology.interfaces):
        if not flow_declared(topology, interface):
            findings.append(
                (
                    ("interfaces", index),
                    f"no flow lets {interface.source} reach {interface.destination} on tcp/{interface.port}: the "
                    "firewall drops this interface; declare the flow",
                )
            )
        if plaintext_phi_across_zones(topology, interface):
            zones = f"{topology.host(interface.source).zone} to {topology.host(interface.destination).zone}"
            findings.append((("interfaces", index, "tls"), f"carries PHI from zone {zones} without TLS"))
    return findings
