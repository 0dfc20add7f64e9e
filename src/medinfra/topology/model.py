"""The hospital topology as plain, immutable data: what every other layer reads.

`to_dict()` / `from_dict()` are the one way between the model and its plain-data form: the hospital.yml
document shape, every optional key present (None when unset), ports as text. The inventory plugin publishes
`to_dict()` as `medinfra_topology` and the filters rebuild the model from it with `from_dict()`, losing nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from ipaddress import IPv4Address, IPv4Network
from typing import Any

from medinfra.topology.checks import parse_port_range


@dataclass(frozen=True)
class Site:
    name: str
    title: str
    domain: str | None
    timezone: str | None
    time_servers: tuple[str, ...]
    scale: str | None = None  # the site's scale in `medinfra plan team`'s reference table, when declared

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "title": self.title,
            "domain": self.domain,
            "timezone": self.timezone,
            "time_servers": list(self.time_servers),
            "scale": self.scale,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Site:
        return cls(
            name=data["name"],
            title=data["title"],
            domain=data.get("domain"),
            timezone=data.get("timezone"),
            time_servers=tuple(data.get("time_servers") or ()),
            scale=data.get("scale"),
        )


WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
# What a class promises when hospital.yml does not say: strict enough that a forgotten target is not a lax one.
DEFAULT_AVAILABILITY_PERCENT = 99.9
DEFAULT_ACKNOWLEDGE_MINUTES = 15
DEFAULT_HOURS = {"weekdays": ["monday:friday"], "start": "08:00", "end": "18:00"}


def weekday_numbers(ranges: Sequence[str]) -> frozenset[int]:
    """Monday = 0: ``["monday:friday", "sunday"]`` -> {0, 1, 2, 3, 4, 6} (Alertmanager's time_intervals syntax)."""
    days: set[int] = set()
    for text in ranges:
        first, _, last = text.partition(":")
        start, end = WEEKDAYS.index(first), WEEKDAYS.index(last or first)
        days.update(range(start, end + 1))
    return frozenset(days)


@dataclass(frozen=True)
class BusinessHours:
    """When a business-hours class counts, in the site's time zone: `start`-`end` minutes after midnight on `days`."""

    weekdays: tuple[str, ...]
    start: str
    end: str

    @property
    def days(self) -> frozenset[int]:
        return weekday_numbers(self.weekdays)

    @staticmethod
    def minutes(text: str) -> int:
        hours, minutes = text.split(":")
        return int(hours) * 60 + int(minutes)

    def to_dict(self) -> dict[str, Any]:
        return {"weekdays": list(self.weekdays), "start": self.start, "end": self.end}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BusinessHours:
        return cls(weekdays=tuple(data["weekdays"]), start=data["start"], end=data["end"])


@dataclass(frozen=True)
class SlaClass:
    name: str
    rpo_minutes: int
    rto_minutes: int
    support_hours: str | None
    description: str | None
    availability_percent: float = DEFAULT_AVAILABILITY_PERCENT
    acknowledge_minutes: int = DEFAULT_ACKNOWLEDGE_MINUTES
    resolve_minutes: int | None = None  # None: the RTO
    hours: BusinessHours | None = None  # business-hours classes only; None for 24x7

    @property
    def resolve_limit_minutes(self) -> int:
        return self.resolve_minutes if self.resolve_minutes is not None else self.rto_minutes

    @property
    def round_the_clock(self) -> bool:
        """Supported around the clock: anything but business hours (a class that does not say is taken as 24x7)."""
        return self.support_hours != "business-hours"

    def to_dict(self) -> dict[str, Any]:
        """The class without its name, which is its key in ``sla_classes``."""
        return {
            "rpo_minutes": self.rpo_minutes,
            "rto_minutes": self.rto_minutes,
            "support_hours": self.support_hours,
            "description": self.description,
            "availability_percent": self.availability_percent,
            "acknowledge_minutes": self.acknowledge_minutes,
            "resolve_minutes": self.resolve_minutes,
            "hours": self.hours.to_dict() if self.hours is not None else None,
        }

    @classmethod
    def from_dict(cls, name: str, data: Mapping[str, Any]) -> SlaClass:
        business = data.get("support_hours") == "business-hours"
        hours = data.get("hours") or (DEFAULT_HOURS if business else None)
        return cls(
            name=name,
            rpo_minutes=data["rpo_minutes"],
            rto_minutes=data["rto_minutes"],
            support_hours=data.get("support_hours"),
            description=data.get("description"),
            availability_percent=data.get("availability_percent") or DEFAULT_AVAILABILITY_PERCENT,
            acknowledge_minutes=data.get("acknowledge_minutes") or DEFAULT_ACKNOWLEDGE_MINUTES,
            resolve_minutes=data.get("resolve_minutes"),
            hours=BusinessHours.from_dict(hours) if hours else None,
        )


@dataclass(frozen=True)
class Zone:
    name: str
    network: IPv4Network
    trust: str
    purpose: str
    gateway: IPv4Address | None
    description: str | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "cidr": str(self.network),
            "gateway": str(self.gateway) if self.gateway else None,
            "trust": self.trust,
            "purpose": self.purpose,
            "description": self.description,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Zone:
        return cls(
            name=data["name"],
            network=IPv4Network(data["cidr"]),
            trust=data["trust"],
            purpose=data["purpose"],
            gateway=IPv4Address(data["gateway"]) if data.get("gateway") else None,
            description=data.get("description"),
        )


@dataclass(frozen=True)
class ServiceAddress:
    """Where clients reach a database pair's primary: a port on a host that proxies to whichever member leads."""

    host: str
    port: int

    def to_dict(self) -> dict[str, Any]:
        return {"host": self.host, "port": self.port}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ServiceAddress:
        return cls(host=data["host"], port=int(data["port"]))


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
    standby_of: str | None = None
    service_address: ServiceAddress | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "zone": self.zone,
            "address": str(self.address),
            "services": list(self.services),
            "sla": self.sla,
            "data_classification": self.data_classification,
            "data_paths": list(self.data_paths),
            "legacy": self.legacy,
            "description": self.description,
            "standby_of": self.standby_of,
            "service_address": self.service_address.to_dict() if self.service_address else None,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Host:
        return cls(
            name=data["name"],
            zone=data["zone"],
            address=IPv4Address(data["address"]),
            services=tuple(data["services"]),
            sla=data["sla"],
            data_classification=data["data_classification"],
            data_paths=tuple(data.get("data_paths") or ()),
            legacy=data.get("legacy", False),
            description=data.get("description"),
            standby_of=data.get("standby_of"),
            service_address=ServiceAddress.from_dict(data["service_address"]) if data.get("service_address") else None,
        )


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

    def to_dict(self) -> dict[str, Any]:
        return {
            "from": self.source,
            "to": self.destination,
            "proto": self.proto,
            "ports": [str(p) for p in self.ports],
            "purpose": self.purpose,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Flow:
        return cls(
            source=data["from"],
            destination=data["to"],
            proto=data["proto"],
            ports=tuple(PortRange(*parse_port_range(p)) for p in data.get("ports") or ()),
            purpose=data["purpose"],
        )


# What a probe and a reader assume when the topology does not say.
DEFAULT_LATENCY_BUDGET_MS = 1000


@dataclass(frozen=True)
class Vendor:
    name: str
    contact: str | None


@dataclass(frozen=True)
class Interface:
    """A clinical interface: ``source`` opens a connection to ``destination`` on ``port`` in ``protocol``."""

    name: str
    source: str
    destination: str
    protocol: str
    port: int
    tls: bool
    phi: bool
    identity: Mapping[str, str]
    owner: str
    vendor: Vendor | None
    sla: str
    change_window: str | None
    latency_budget_ms: int
    dependents: tuple[str, ...]
    description: str | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "from": self.source,
            "to": self.destination,
            "protocol": self.protocol,
            "port": self.port,
            "tls": self.tls,
            "phi": self.phi,
            "identity": dict(self.identity),
            "owner": self.owner,
            "vendor": {"name": self.vendor.name, "contact": self.vendor.contact} if self.vendor else None,
            "sla": self.sla,
            "change_window": self.change_window,
            "latency_budget_ms": self.latency_budget_ms,
            "dependents": list(self.dependents),
            "description": self.description,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Interface:
        vendor = data.get("vendor")
        return cls(
            name=data["name"],
            source=data["from"],
            destination=data["to"],
            protocol=data["protocol"],
            port=data["port"],
            tls=data["tls"],
            phi=data.get("phi", True) is not False,
            identity=dict(data.get("identity") or {}),
            owner=data["owner"],
            vendor=Vendor(vendor["name"], vendor.get("contact")) if vendor else None,
            sla=data["sla"],
            change_window=data.get("change_window"),
            latency_budget_ms=data.get("latency_budget_ms") or DEFAULT_LATENCY_BUDGET_MS,
            dependents=tuple(data.get("dependents") or ()),
            description=data.get("description"),
        )


@dataclass(frozen=True)
class Topology:
    """A validated hospital: every name referenced here exists and every address fits."""

    source: str
    site: Site
    sla_classes: dict[str, SlaClass]
    zones: tuple[Zone, ...]
    hosts: tuple[Host, ...]
    flows: tuple[Flow, ...]
    interfaces: tuple[Interface, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """The whole site as JSON-ready plain data (the inventory's ``medinfra_topology``); `from_dict` reverses it."""
        return {
            "source": self.source,
            "site": self.site.to_dict(),
            "sla_classes": {name: sla.to_dict() for name, sla in self.sla_classes.items()},
            "zones": [z.to_dict() for z in self.zones],
            "hosts": [h.to_dict() for h in self.hosts],
            "flows": [f.to_dict() for f in self.flows],
            "interfaces": [i.to_dict() for i in self.interfaces],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str | None = None) -> Topology:
        """The model of `to_dict`'s output, or of a hospital.yml document (then `source` names its file).

        Trusts its input to be valid (load_topology validates documents; `to_dict` writes valid data): data of
        another shape raises KeyError, TypeError or ValueError.
        """
        return cls(
            source=data["source"] if source is None else source,
            site=Site.from_dict(data["site"]),
            sla_classes={name: SlaClass.from_dict(name, sla) for name, sla in data["sla_classes"].items()},
            zones=tuple(Zone.from_dict(z) for z in data["zones"]),
            hosts=tuple(Host.from_dict(h) for h in data["hosts"]),
            flows=tuple(Flow.from_dict(f) for f in data["flows"]),
            interfaces=tuple(Interface.from_dict(i) for i in data.get("interfaces") or ()),
        )

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

    def interface(self, name: str) -> Interface:
        return next(i for i in self.interfaces if i.name == name)

    def zone_firewalls(self) -> tuple[Host, ...]:
        return tuple(h for h in self.hosts if "zone_firewall" in h.services)
