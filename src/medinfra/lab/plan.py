"""What a lab is made of, computed from the topology alone (pure: no podman, no I/O)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network

from medinfra.problems import DocPath, Problem, UserInputError
from medinfra.topology.model import Host, Topology

LABEL = "io.medinfra.lab"
HOST_LABEL = "io.medinfra.lab.host"
SPEC_LABEL = "io.medinfra.lab.spec"

# Every lab host runs systemd and may manage its own network stack and network sysctls (those are
# per network namespace; kernel-wide ones stay out of reach without CAP_SYS_ADMIN). AUDIT_WRITE and
# DAC_READ_SEARCH are what a real host's services expect (sshd/PAM audit records, AIDE's scanner).
RUN_OPTIONS = (
    "--systemd=always",
    "--cap-add",
    # NET_RAW: ICMP probes from the monitoring server (blackbox exporter), as a real host allows.
    "NET_ADMIN,AUDIT_WRITE,DAC_READ_SEARCH,NET_RAW",
    "--security-opt",
    "unmask=/proc/sys",
    # podman's systemd mode puts the journal on a tmpfs; a real server keeps it on disk, and the
    # audit checks that it does. An anonymous volume, removed with its container.
    "--volume",
    "/var/log/journal",
)


@dataclass(frozen=True)
class LabNetwork:
    name: str
    zone: str
    subnet: IPv4Network
    controller_address: IPv4Address  # the bridge's own address on the controller


@dataclass(frozen=True)
class LabContainer:
    name: str
    host: str
    zone: str
    address: IPv4Address
    attachments: tuple[tuple[str, IPv4Address], ...]  # (network name, address)
    routes: tuple[tuple[IPv4Network, IPv4Address], ...]  # (destination, via)
    forwards: bool

    def spec_digest(self, image: str) -> str:
        """Changes whenever the container would be created differently, so `lab up` recreates it."""
        spec = {
            "image": image,
            "options": RUN_OPTIONS,
            "attachments": [(n, str(a), mac_address(a)) for n, a in self.attachments],
            "forwards": self.forwards,
        }
        return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class LabPlan:
    site: str
    networks: tuple[LabNetwork, ...]
    containers: tuple[LabContainer, ...]

    def network_for_zone(self, zone: str) -> LabNetwork:
        return next(n for n in self.networks if n.zone == zone)


def network_name(site: str, zone: str) -> str:
    return f"medinfra-{site}-{zone}"


def container_name(site: str, host: str) -> str:
    return f"{site}-{host}"


def mac_address(address: IPv4Address) -> str:
    """A locally administered MAC derived from the address, so a recreated container keeps its MAC
    and its neighbours' ARP caches stay valid (a new random MAC would black-hole traffic for a while)."""
    return "02:00:" + ":".join(f"{byte:02x}" for byte in address.packed)


def controller_address(subnet: IPv4Network) -> IPv4Address:
    """The lab reserves each zone's first address for the controller's end of the bridge."""
    return subnet.network_address + 1


def _lab_problems(topology: Topology) -> list[Problem]:
    findings: list[tuple[DocPath, str]] = []
    firewalls = topology.zone_firewalls()
    if len(firewalls) > 1:
        names = ", ".join(h.name for h in firewalls)
        findings.append((("hosts",), f"the lab supports one zone_firewall host, found: {names}"))
    for index, host in enumerate(topology.hosts):
        zone = topology.zone(host.zone)
        if host.address == controller_address(zone.network):
            message = f"{host.address} is the first address of zone {zone.name!r}, kept for the lab controller"
            findings.append((("hosts", index, "address"), message))
    for index, zone in enumerate(topology.zones if firewalls else ()):
        if zone.gateway is None:
            message = f"zone {zone.name!r} has no gateway: the lab's zone_firewall needs an address in every zone"
            findings.append((("zones", index), message))
        elif zone.gateway == controller_address(zone.network):
            message = f"{zone.gateway} is the first address of zone {zone.name!r}, kept for the lab controller"
            findings.append((("zones", index, "gateway"), message))
    return [Problem(topology.source, path, message) for path, message in findings]


def _container(topology: Topology, host: Host, router: Host | None) -> LabContainer:
    site = topology.site.name
    own = (network_name(site, host.zone), host.address)
    if router is not None and host.name == router.name:
        others = tuple(
            (network_name(site, z.name), z.gateway)
            for z in topology.zones
            if z.name != host.zone and z.gateway is not None
        )
        return LabContainer(
            container_name(site, host.name), host.name, host.zone, host.address, (own, *others), (), True
        )
    gateway = topology.zone(host.zone).gateway
    routes: tuple[tuple[IPv4Network, IPv4Address], ...] = ()
    if router is not None and gateway is not None:
        routes = tuple((z.network, gateway) for z in topology.zones if z.name != host.zone)
    return LabContainer(container_name(site, host.name), host.name, host.zone, host.address, (own,), routes, False)


def plan_lab(topology: Topology) -> LabPlan:
    problems = _lab_problems(topology)
    if problems:
        raise UserInputError(problems)
    firewalls = topology.zone_firewalls()
    router = firewalls[0] if firewalls else None
    site = topology.site.name
    return LabPlan(
        site=site,
        networks=tuple(
            LabNetwork(network_name(site, z.name), z.name, z.network, controller_address(z.network))
            for z in topology.zones
        ),
        containers=tuple(_container(topology, h, router) for h in topology.hosts),
    )
