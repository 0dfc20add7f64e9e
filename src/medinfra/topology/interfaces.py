"""What a topology's clinical interfaces imply: the flow each needs and whether PHI crosses zones in plaintext.

Pure. Both are validation warnings (`medinfra topology validate`) and audit failures (controls
interface_flows_declared and interface_phi_encrypted, from the same functions).
"""

from __future__ import annotations

from typing import Any

from medinfra.problems import DocPath
from medinfra.topology.model import Host, Interface, Topology

Finding = tuple[DocPath, str]

# AE titles DICOM software ships with (Orthanc, dcmtk's tools and SCPs, common PACS and viewer defaults): an AE
# check that accepts one of them accepts any installation of that software, so a site must choose its own.
DEFAULT_AE_TITLES = frozenset({
    "ORTHANC", "ANY-SCP", "ANY-SCU", "ECHOSCU", "STORESCU", "STORESCP", "FINDSCU", "MOVESCU", "GETSCU", "DCMQRSCP",
    "DCMRECV", "DCMSEND", "PYNETDICOM", "DCM4CHEE", "CONQUESTSRV1", "PACS", "SCU", "SCP", "AE_TITLE",
})


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


def default_ae_titles(interface: Interface) -> list[str]:
    """The interface's declared AE titles that are software defaults (upper-cased: AE titles are compared so)."""
    titles = (interface.identity.get(key, "") for key in ("calling_ae", "called_ae"))
    return sorted({title for title in titles if title.upper() in DEFAULT_AE_TITLES})


def served_interfaces(topology: Topology, host: Host) -> list[dict[str, Any]]:
    """The interfaces ``host`` serves, with what the audit judges of each (the inventory's medinfra_interfaces_in)."""
    return [
        {
            "name": interface.name,
            "from": interface.source,
            "protocol": interface.protocol,
            "port": interface.port,
            "tls": interface.tls,
            "phi": interface.phi,
            "owner": interface.owner,
            "vendor": interface.vendor.name if interface.vendor else None,
            "sla": interface.sla,
            "flow_declared": flow_declared(topology, interface),
            "crosses_zones": crosses_zones(topology, interface),
            "plaintext_phi_across_zones": plaintext_phi_across_zones(topology, interface),
            "default_ae_titles": default_ae_titles(interface),
        }
        for interface in topology.interfaces
        if interface.destination == host.name
    ]
