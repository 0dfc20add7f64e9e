"""What breaks when a host, a zone, an interface or a vendor's systems are down or upgraded (`medinfra impact`).

Pure: a Topology in, an Impact out, then text or JSON. The target becomes a set of hosts taken down:
a host itself, a zone's hosts, the host that serves an interface, or the hosts that serve a vendor's interfaces.
- Down: every interface and flow with a target host at either end.
- At risk (one step, not transitive): the hosts that depend on a target host, and their interfaces not already
  down. A host depends on a target host when a tcp/udp flow leads from it to that host by name, or to the host's
  zone on a port the host serves by a declared interface: a zone-wide flow is a permission to reach the zone's
  services, not a dependency on every host in it. Flows from or to a management zone are no clinical dependency
  (administration, monitoring, backups, logs and time keep no clinic working).
- Alerts: what the monitoring will fire, only for what it sees (a monitoring server that is not itself down).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from medinfra.monitoring.interfaces import probed
from medinfra.safe_text import one_line
from medinfra.segmentation.rules import MANAGEMENT_PURPOSE, intended
from medinfra.topology.model import Flow, Host, Interface, Topology, Vendor

IMPACT_FORMAT = "medinfra-impact/1"
KINDS = ("host", "zone", "interface", "vendor")
MONITORING_SERVICE = "monitoring_server"
# Host-level alerts of roles/monitoring_server/files/medinfra-alerts.rules.yml (group medinfra-availability) that a
# host going down fires: ExporterDown (`up{job="node"} == 0`: the node exporter every non-legacy host runs) and
# HostUnreachable (`probe_success{module="icmp"} == 0`: the ICMP probe, where a flow lets the monitoring server ping).
EXPORTER_DOWN, HOST_UNREACHABLE = "ExporterDown", "HostUnreachable"
HOST_DOWN_ALERTS = (EXPORTER_DOWN, HOST_UNREACHABLE)
# The interface alert of roles/monitoring_server/files/medinfra-interfaces.rules.yml an outage fires: a peer that is
# down refuses the probe's connection (result connect_failed), which no protocol-specific alert (Hl7AckMissing,
# DicomAssociationRejected: the peer answered) describes.
INTERFACE_DOWN = "InterfaceDown"
DEPENDENCY_PROTOCOLS = ("tcp", "udp")
T = TypeVar("T")


@dataclass(frozen=True)
class Dependency:
    """`dependent` needs `needs` (a target host) for `purpose` (the flow's)."""

    dependent: str
    needs: str
    purpose: str

    def __str__(self) -> str:
        return f"{self.dependent} needs {self.needs}: {self.purpose}"


@dataclass(frozen=True)
class AtRisk:
    """An interface not down whose host depends on a target host, and why."""

    interface: Interface
    reasons: tuple[Dependency, ...]


@dataclass(frozen=True)
class Alert:
    name: str
    subject: str  # the host or interface it fires for


@dataclass(frozen=True)
class Impact:
    target: str
    kind: str
    hosts: tuple[Host, ...]  # the target's hosts, down
    down_interfaces: tuple[Interface, ...]
    down_flows: tuple[Flow, ...]
    dependencies: tuple[Dependency, ...]  # every reason a host is at risk
    at_risk: tuple[AtRisk, ...]
    sla_classes: tuple[str, ...]  # worst first, in the order the topology lists its classes
    owners: tuple[str, ...]
    vendors: tuple[Vendor, ...]
    dependents: tuple[str, ...]  # the systems and departments the affected interfaces serve
    alerts: tuple[Alert, ...]
    unseen: tuple[str, ...]  # why some of the above fire no alert

    @property
    def at_risk_hosts(self) -> tuple[str, ...]:
        return _unique(d.dependent for d in self.dependencies)


def _unique(items: Iterable[T]) -> tuple[T, ...]:
    """`items` without repeats, in the order first seen."""
    return tuple(dict.fromkeys(items))


def vendor_names(topology: Topology) -> tuple[str, ...]:
    return _unique(i.vendor.name for i in topology.interfaces if i.vendor is not None)


def candidates(topology: Topology, name: str) -> tuple[str, ...]:
    """The kinds of thing `name` names in the topology (exact match)."""
    found = {
        "host": name in topology.hosts_by_name,
        "zone": any(z.name == name for z in topology.zones),
        "interface": any(i.name == name for i in topology.interfaces),
        "vendor": name in vendor_names(topology),
    }
    return tuple(kind for kind in KINDS if found[kind])


def _kinds(kinds: Sequence[str]) -> str:
    return " and ".join(f"{'an' if kind[0] in 'aeiou' else 'a'} {kind}" for kind in kinds)


def resolve(topology: Topology, name: str, kind: str | None = None) -> str:
    """The kind of target `name` is (the one asked for, or the only one); ValueError saying what exists otherwise."""
    kinds = candidates(topology, name)
    if kind in kinds:
        return str(kind)
    if kind is None and len(kinds) == 1:
        return kinds[0]
    if kind is None and kinds:
        choices = " or ".join(f"--kind {k}" for k in kinds)
        raise ValueError(f"{name!r} is {_kinds(kinds)}: say which with {choices}")
    names = {
        "host": [h.name for h in topology.hosts],
        "zone": [z.name for z in topology.zones],
        "interface": [i.name for i in topology.interfaces],
        "vendor": list(vendor_names(topology)),
    }
    wanted = KINDS if kind is None else (kind,)
    close = difflib.get_close_matches(name, [n for k in wanted for n in names[k]], n=3)
    hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
    vendors = f"; vendors: {', '.join(names['vendor'])}" if "vendor" in wanted and names["vendor"] else ""
    counts = ", ".join(f"{len(names[k])} {k}s" for k in wanted)
    what = "host, zone, interface or vendor" if kind is None else kind
    other = f"; it is {_kinds(kinds)}" if kinds else ""
    raise ValueError(f"{name!r} is no {what} of site {topology.site.name} (it has {counts}){other}{hint}{vendors}")


def target_hosts(topology: Topology, name: str, kind: str) -> tuple[Host, ...]:
    if kind == "host":
        return (topology.host(name),)
    if kind == "zone":
        return topology.hosts_in(name)
    served = [i.destination for i in topology.interfaces if (i.name if kind == "interface" else _vendor(i)) == name]
    return tuple(h for h in topology.hosts if h.name in served)


def _vendor(interface: Interface) -> str | None:
    return interface.vendor.name if interface.vendor is not None else None


def _in_management(topology: Topology, host: Host) -> bool:
    return topology.zone(host.zone).purpose == MANAGEMENT_PURPOSE


def _served_ports(topology: Topology, host: Host) -> set[int]:
    return {i.port for i in topology.interfaces if i.destination == host.name}


def dependencies(topology: Topology, down: Sequence[Host]) -> tuple[Dependency, ...]:
    """The hosts (not down) whose declared tcp/udp flows lead to a down host, one entry per reason."""
    names = {h.name for h in down}
    found: list[Dependency] = []
    for target in down:
        if _in_management(topology, target):
            continue
        served = _served_ports(topology, target)
        for flow in topology.flows:
            if flow.proto not in DEPENDENCY_PROTOCOLS:
                continue
            by_zone = flow.destination == target.zone and any(r.start <= p <= r.end for r in flow.ports for p in served)
            if flow.destination != target.name and not by_zone:
                continue
            for source in topology.hosts:
                if (topology.endpoint_covers(flow.source, source) and source.name not in names
                        and not _in_management(topology, source)):
                    found.append(Dependency(source.name, target.name, flow.purpose))
    return _unique(found)


def _alerts(topology: Topology, down: Sequence[Host], interfaces: Sequence[Interface]) -> tuple[list[Alert], list[str]]:
    names = {h.name for h in down}
    watchers = [h for h in topology.hosts if MONITORING_SERVICE in h.services and h.name not in names]
    if not watchers:
        return [], ["no monitoring server that is not itself down: no alert fires"]
    alerts: list[Alert] = []
    unseen: list[str] = []
    # The probes run on the monitoring servers: only where a flow lets one reach the interface's port.
    watched = {i.name for w in watchers for i in probed(topology, w).interfaces}
    for interface in interfaces:
        if interface.name in watched:
            alerts.append(Alert(INTERFACE_DOWN, interface.name))
        else:
            unseen.append(f"no flow lets a monitoring server probe {interface.name}, so {INTERFACE_DOWN} does not fire")
    for host in down:
        if host.legacy:
            unseen.append(f"{host.name} is legacy: it runs no node exporter, so {EXPORTER_DOWN} does not fire")
        else:
            alerts.append(Alert(EXPORTER_DOWN, host.name))
        if any(intended(topology, w, host, "icmp", None) for w in watchers):
            alerts.append(Alert(HOST_UNREACHABLE, host.name))
        else:
            unseen.append(f"no flow lets a monitoring server ping {host.name}, so {HOST_UNREACHABLE} does not fire")
    return alerts, unseen


def impact(topology: Topology, target: str, kind: str) -> Impact:
    """What breaks when `target` (a name of this `kind`, see `resolve`) is down or upgraded."""
    down = target_hosts(topology, target, kind)
    names = {h.name for h in down}
    down_interfaces = tuple(i for i in topology.interfaces if i.source in names or i.destination in names)
    down_flows = tuple(f for f in topology.flows
                       if any(topology.endpoint_covers(f.source, h) or topology.endpoint_covers(f.destination, h)
                              for h in down))
    reasons = dependencies(topology, down)
    at_risk = tuple(
        AtRisk(i, tuple(r for r in reasons if r.dependent in (i.source, i.destination)))
        for i in topology.interfaces
        if i not in down_interfaces and any(r.dependent in (i.source, i.destination) for r in reasons)
    )
    affected = down_interfaces + tuple(a.interface for a in at_risk)
    used = {h.sla for h in down} | {i.sla for i in affected}
    alerts, unseen = _alerts(topology, down, down_interfaces)
    return Impact(
        target=target,
        kind=kind,
        hosts=down,
        down_interfaces=down_interfaces,
        down_flows=down_flows,
        dependencies=reasons,
        at_risk=at_risk,
        sla_classes=tuple(name for name in topology.sla_classes if name in used),
        owners=_unique(i.owner for i in affected),
        vendors=_unique(i.vendor for i in affected if i.vendor is not None),
        dependents=_unique(d for i in affected for d in i.dependents),
        alerts=tuple(alerts),
        unseen=tuple(unseen),
    )


def _vendor_record(vendor: Vendor | None) -> dict[str, Any] | None:
    return None if vendor is None else {"name": vendor.name, "contact": vendor.contact}


def _interface_record(interface: Interface) -> dict[str, Any]:
    return {
        "name": interface.name,
        "protocol": interface.protocol,
        "from": interface.source,
        "to": interface.destination,
        "port": interface.port,
        "sla": interface.sla,
        "owner": interface.owner,
        "vendor": _vendor_record(interface.vendor),
        "change_window": interface.change_window,
        "dependents": list(interface.dependents),
    }


def impact_record(result: Impact, site: str) -> dict[str, Any]:
    """The JSON document of `medinfra impact --format json` (shape: README, "What an outage breaks")."""
    return {
        "format": IMPACT_FORMAT,
        "site": site,
        "target": {"name": result.target, "kind": result.kind, "hosts": [h.name for h in result.hosts]},
        "down": {
            "hosts": [h.name for h in result.hosts],
            "interfaces": [_interface_record(i) for i in result.down_interfaces],
            "flows": [f.to_dict() for f in result.down_flows],
        },
        "at_risk": {
            "hosts": [
                {"name": host, "needs": [{"host": d.needs, "purpose": d.purpose}
                                         for d in result.dependencies if d.dependent == host]}
                for host in result.at_risk_hosts
            ],
            "interfaces": [{**_interface_record(a.interface), "reasons": [str(r) for r in a.reasons]}
                           for a in result.at_risk],
        },
        "notify": {"owners": list(result.owners), "vendors": [_vendor_record(v) for v in result.vendors]},
        "sla_classes": list(result.sla_classes),
        "dependents": list(result.dependents),
        "alerts": [{"alert": a.name, "for": a.subject} for a in result.alerts],
        "unseen": list(result.unseen),
    }


def _table(rows: Sequence[Sequence[str]], indent: str = "    ") -> list[str]:
    """Rows of escaped cells in aligned columns (the last one is left ragged)."""
    cells = [[one_line(cell) for cell in row] for row in rows]
    widths = [max(len(row[i]) for row in cells if i < len(row)) for i in range(max(map(len, cells), default=0))]
    return [indent + "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=False)).rstrip() for row in cells]


def _interface_row(interface: Interface) -> list[str]:
    vendor = interface.vendor.name if interface.vendor is not None else "-"
    return [interface.name, interface.protocol, f"{interface.source} -> {interface.destination}:{interface.port}",
            interface.sla, interface.owner, vendor, interface.change_window or "-",
            ", ".join(interface.dependents) or "-"]


def _interfaces(title: str, interfaces: Sequence[Interface]) -> list[str]:
    if not interfaces:
        return [f"  {title}: none"]
    header = ["name", "protocol", "from -> to:port", "sla", "owner", "vendor", "change window", "dependents"]
    return [f"  {title}:", *_table([header, *(_interface_row(i) for i in interfaces)])]


def impact_text(result: Impact) -> str:
    hosts = ", ".join(h.name for h in result.hosts) or "none"
    lines = [f"Target: {result.kind} {one_line(result.target)}, down or upgraded: hosts {one_line(hosts)}", "", "Down:"]
    lines += _interfaces("interfaces", result.down_interfaces)
    flows = [[f"{f.source} -> {f.destination}", f"{f.proto}/{','.join(map(str, f.ports)) or '-'}", f.purpose]
             for f in result.down_flows]
    lines += [f"  flows: {'none' if not flows else ''}".rstrip(), *_table(flows)]
    lines += ["", "At risk (one step: hosts that depend on a target host, and their interfaces):"]
    # One line per needed host and purpose: twelve workstations viewing images are one reason, not twelve.
    grouped: dict[tuple[str, str], list[str]] = {}
    for reason in result.dependencies:
        grouped.setdefault((reason.needs, reason.purpose), []).append(reason.dependent)
    needs = [[f"need {host}:", purpose, ", ".join(hosts)] for (host, purpose), hosts in grouped.items()]
    lines += [f"  hosts: {'none' if not needs else ''}".rstrip(), *_table(needs)]
    lines += _interfaces("interfaces", [a.interface for a in result.at_risk])
    lines += _table([[f"{a.interface.name}:", "; ".join(map(str, a.reasons))] for a in result.at_risk])
    vendors = [[v.name, v.contact or "(no contact declared)"] for v in result.vendors]
    lines += ["", "Notify:", f"  owners: {one_line(', '.join(result.owners)) or 'none'}",
              f"  vendors: {'none' if not vendors else ''}".rstrip(), *_table(vendors)]
    lines += [f"  dependent systems: {one_line(', '.join(result.dependents)) or 'none'}"]
    lines += ["", f"SLA classes: {one_line(', '.join(result.sla_classes)) or 'none'}", "", "Alerts:"]
    lines += _table([[a.name, a.subject] for a in result.alerts], "  ") or ["  none"]
    lines += [f"  ({one_line(note)})" for note in result.unseen]
    return "\n".join(lines)
