"""The hospital topology as plain, immutable data: what every other layer reads."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from ipaddress import IPv4Address, IPv4Network


@dataclass(frozen=True)
class Site:
    name: str
    title: str
    domain: str | None
    timezone: str | None
    time_servers: tuple[str, ...]


@dataclass(frozen=True)
class SlaClass:
    name: str
    rpo_minutes: int
    rto_minutes: int
    support_hours: str | None
    description: str | None


@dataclass(frozen=True)
class Zone:
    name: str
    network: IPv4Network
    trust: str
    purpose: str
    gateway: IPv4Address | None
    description: str | None


@dataclass(frozen=True)
class Host:
    name: str
    zone: str
    address: IPv4Address
    services: tuple[str, ...]
    sla: str
    data_classification: str
    data_paths: tuple[str, ...]
    legacy: bool
    description: str | None


@dataclass(frozen=True)
class PortRange:
    start: int
    end: int

    def __str__(self) -> str:
        return str(self.start) if self.start == self.end else f"{self.start}-{self.end}"


@dataclass(frozen=True)
class Flow:
    source: str
    destination: str
    proto: str
    ports: tuple[PortRange, ...]
    purpose: str


@dataclass(frozen=True)
class Topology:
    """A validated hospital: every name referenced here exists and every address fits."""

    source: str
    site: Site
    sla_classes: dict[str, SlaClass]
    zones: tuple[Zone, ...]
    hosts: tuple[Host, ...]
    flows: tuple[Flow, ...]

    def zone(self, name: str) -> Zone:
        return next(z for z in self.zones if z.name == name)

    @cached_property
    def hosts_by_name(self) -> Mapping[str, Host]:
        """Every host by its name, built once: a lookup per host must not walk every host."""
        return {h.name: h for h in self.hosts}

    def host(self, name: str) -> Host:
        return self.hosts_by_name[name]

    def hosts_in(self, zone: str) -> tuple[Host, ...]:
        return tuple(h for h in self.hosts if h.zone == zone)

    def endpoint_covers(self, endpoint: str, host: Host) -> bool:
        """Whether a flow endpoint (a zone or host name) includes ``host``."""
        return endpoint in (host.name, host.zone)

    def flows_to(self, host: Host) -> tuple[Flow, ...]:
        return tuple(f for f in self.flows if self.endpoint_covers(f.destination, host))

    def flows_from(self, host: Host) -> tuple[Flow, ...]:
        return tuple(f for f in self.flows if self.endpoint_covers(f.source, host))

    def zone_firewalls(self) -> tuple[Host, ...]:
        return tuple(h for h in self.hosts if "zone_firewall" in h.services)
