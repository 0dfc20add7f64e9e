"""The knowledge base as plain data: pages from the topology, the backups the inventory declares, the history's last
audit and drills, the runbooks and the rota. Pure: every input is given, nothing is read here, no clock.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from ipaddress import IPv4Network
from typing import Any

from medinfra.segmentation.rules import Allow, forward_rules
from medinfra.topology.model import Flow, Host, Interface, SlaClass, Topology, Zone
from medinfra.topology.redundancy import database_pairs

# The control whose finding says how this host's last restore drill went (the audit reads the backup runner's state).
RESTORE_DRILL_CONTROL = "backup_restore_drill_recent"


@dataclass(frozen=True)
class BackupSet:
    name: str
    paths: tuple[str, ...]
    databases: tuple[str, ...]


@dataclass(frozen=True)
class Backups:
    """A host's backups as its inventory declares them to role `backup` (what, where, when)."""

    sets: tuple[BackupSet, ...]
    server: str
    server_root: str
    interval_minutes: int
    check_calendar: str
    drill_calendar: str
    keep: tuple[int, int, int]  # daily, weekly, monthly


@dataclass(frozen=True)
class Drill:
    kind: str  # failover | plan
    name: str
    started_at: datetime
    seconds: float
    passed: bool
    evidence: str


@dataclass(frozen=True)
class HostAudit:
    """One host in the last recorded audit of the site."""

    run: str  # "#12" for a recorded run, else the findings file it came from
    started_at: datetime
    status: str  # audited | unreachable | error
    reason: str
    counts: Mapping[str, int]
    score: float | None
    failing: tuple[str, ...]  # control ids, failing or in error
    restore_drill: RestoreDrill | None = None


@dataclass(frozen=True)
class RestoreDrill:
    """The last audit's finding of RESTORE_DRILL_CONTROL on a host: its status, why, and the drill facts seen."""

    status: str
    reason: str
    evidence: str


@dataclass(frozen=True)
class History:
    """What the history holds of this site, or `read` False when no history was given."""

    read: bool
    audits: Mapping[str, HostAudit]  # by host; empty when no audit is recorded
    last_run: tuple[str, datetime] | None  # the run the audits come from: its label and start
    drills: tuple[Drill, ...]  # newest first


NO_HISTORY = History(False, {}, None, ())


@dataclass(frozen=True)
class HostPage:
    host: Host
    zone: Zone
    sla: SlaClass
    flows_in: tuple[Flow, ...]
    flows_out: tuple[Flow, ...]
    interfaces: tuple[Interface, ...]
    backups: Backups | None  # None: not read (no inventory variables given)
    audit: HostAudit | None
    failover: Drill | None
    pair: str | None  # the database pair this host belongs to (its failover drills' name)


@dataclass(frozen=True)
class MatrixCell:
    """What may pass from one zone to another: the declared flows, each as `proto ports purpose (endpoints)`."""

    rules: tuple[Allow, ...]


@dataclass(frozen=True)
class ZoneMatrix:
    zones: tuple[Zone, ...]
    cells: Mapping[tuple[str, str], MatrixCell]


def host_pages(
    topology: Topology, backups: Mapping[str, Backups] | None, history: History
) -> list[HostPage]:
    """One page per host, in the topology's order."""
    pairs = {member: pair.name for pair in database_pairs(topology) for member in pair.members}
    pages = []
    for host in topology.hosts:
        pair = pairs.get(host.name)
        failover = next((d for d in history.drills if d.kind == "failover" and pair and d.name == pair), None)
        pages.append(
            HostPage(
                host=host,
                zone=topology.zone(host.zone),
                sla=topology.sla_classes[host.sla],
                flows_in=topology.flows_to(host),
                flows_out=topology.flows_from(host),
                interfaces=tuple(i for i in topology.interfaces if host.name in (i.source, i.destination)),
                backups=None if backups is None else backups.get(host.name),
                audit=history.audits.get(host.name),
                failover=failover,
                pair=pair,
            )
        )
    return pages


def _zones_of(topology: Topology, networks: Sequence[IPv4Network]) -> list[str]:
    return [z.name for z in topology.zones if any(net.subnet_of(z.network) for net in networks)]


def zone_matrix(topology: Topology) -> ZoneMatrix:
    """Which zone may reach which on which ports: the zone firewall's forward rules (and, inside a zone, the same
    flows the hosts' own firewalls accept), placed by the zones their networks lie in."""
    cells: dict[tuple[str, str], list[Allow]] = {}
    for rule in forward_rules(topology):
        for source in _zones_of(topology, rule.sources):
            for destination in _zones_of(topology, rule.destinations):
                cells.setdefault((source, destination), []).append(rule)
    return ZoneMatrix(topology.zones, {key: MatrixCell(tuple(rules)) for key, rules in cells.items()})


def host_audits(document: Mapping[str, Any], run: str, started_at: datetime) -> dict[str, HostAudit]:
    """Each host's part of a recorded findings document (the shape HistoryStore.document checked)."""
    counts: dict[str, dict[str, int]] = {}
    failing: dict[str, list[str]] = {}
    restores: dict[str, RestoreDrill] = {}
    for finding in document["findings"]:
        host, status = finding["host"], finding["status"]
        counts.setdefault(host, {})[status] = counts.get(host, {}).get(status, 0) + 1
        if status in ("fail", "error"):
            failing.setdefault(host, []).append(finding["control"])
        if finding["control"] == RESTORE_DRILL_CONTROL:
            evidence = "; ".join(f"{key} = {value}" for key, value in sorted((finding.get("evidence") or {}).items()))
            restores[host] = RestoreDrill(status, finding.get("reason") or "", evidence)
    audits = {}
    for host in document["hosts"]:
        name = host["name"]
        tally = counts.get(name, {})
        applicable = sum(n for status, n in tally.items() if status != "not_applicable")
        good = tally.get("pass", 0) + tally.get("waived", 0)
        audits[name] = HostAudit(
            run=run,
            started_at=started_at,
            status=host["status"],
            reason=host.get("reason") or "",
            counts=tally,
            score=good / applicable if applicable and host["status"] == "audited" else None,
            failing=tuple(sorted(set(failing.get(name, ())))),
            restore_drill=restores.get(name),
        )
    return audits


@dataclass(frozen=True)
class SearchEntry:
    """One thing the search box finds: its kind, the page (relative to the KB's root) and words in both languages."""

    kind: str  # host | alert | control | interface | vendor | zone
    url: str
    title_en: str
    title_zh: str
    words: str  # further text the search matches (not shown)

    def as_list(self) -> list[str]:
        return [self.kind, self.url, self.title_en, self.title_zh, self.words]
