"""Team sizing (`medinfra plan team`): what a topology gives people to do, and how many people that takes.

Pure: topologies and the reference (scales.yml) in, a Plan out. Every constant comes from the reference:
- Counts: what drives work on a site (one inventory is one site, a campus of a group).
- Scale: `site.scale` when the topology declares it, else the first scale of the table whose server bound the
  site does not exceed; the estimate is then compared with that scale's reference range.
- Roles (ops, network, application, security): base + count x weight for the counts the reference names.
- Duty watch: none without a server in a round-the-clock SLA class; on call from home below the reference's
  on-site threshold (the night and weekend hours at the on-call weight); on site from it (those hours in full).
- Rota: an on-call rota is covered when the team has the reference's minimum of people for it; below that, the
  night and weekend watch is shared with other campuses or bought in. An on-site watch is staffed by the estimate.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from medinfra.plan.reference import DutyModel, Reference, RoleModel, Scale
from medinfra.topology.model import Topology

# The counts a role's weights may name (scales.yml `roles.*.per`), in the order they are shown.
COUNTED = (
    "hosts", "servers", "systems", "servers_24x7", "relays", "interfaces", "vendors", "zones", "legacy_hosts",
    "database_pairs",
)
WATCH_NONE, WATCH_ON_CALL, WATCH_ON_SITE = "none", "on_call", "on_site"


@dataclass(frozen=True)
class Counts:
    site: str
    title: str
    source: str
    declared_scale: str | None
    classes_24x7: tuple[str, ...]  # the SLA classes supported round the clock
    hosts: int
    servers: int  # hosts with a service other than the endpoint services
    systems: int  # distinct application services
    servers_24x7: int  # servers in a round-the-clock class
    relays: int
    interfaces: int
    vendors: int  # distinct vendors of the interfaces
    zones: int
    legacy_hosts: int
    database_pairs: int

    def value(self, name: str) -> int:
        if name not in COUNTED:
            raise KeyError(f"{name!r} is not a count (one of {', '.join(COUNTED)})")
        number: int = getattr(self, name)
        return number


def count(topology: Topology, reference: Reference) -> Counts:
    servers = [h for h in topology.hosts if not set(h.services) <= reference.endpoint_services]
    classes = tuple(name for name, sla in topology.sla_classes.items() if sla.round_the_clock)
    vendors = {i.vendor.name for i in topology.interfaces if i.vendor is not None}
    return Counts(
        site=topology.site.name,
        title=topology.site.title,
        source=topology.source,
        declared_scale=topology.site.scale,
        classes_24x7=classes,
        hosts=len(topology.hosts),
        servers=len(servers),
        systems=len({s for h in topology.hosts for s in h.services if s in reference.application_services}),
        servers_24x7=sum(1 for h in servers if h.sla in classes),
        relays=sum(1 for h in topology.hosts if reference.relay_service in h.services),
        interfaces=len(topology.interfaces),
        vendors=len(vendors),
        zones=len(topology.zones),
        legacy_hosts=sum(1 for h in topology.hosts if h.legacy),
        database_pairs=sum(1 for h in topology.hosts if h.standby_of is not None),
    )


@dataclass(frozen=True)
class ScaleMatch:
    scale: Scale  # the one the estimate is compared with
    derived: Scale  # what the servers alone give
    declared: bool  # scale is the topology's site.scale
    above: int | None  # the derived scale holds sites of more than this many servers (None: from the first)


def derived_scale(servers: int, scales: Sequence[Scale]) -> tuple[Scale, int | None]:
    """The first scale whose bound `servers` does not exceed, and the bound of the scale before it."""
    above = None
    for scale in scales:
        if scale.up_to_servers is None or servers <= scale.up_to_servers:
            return scale, above
        above = scale.up_to_servers
    return scales[-1], above


def match_scale(counts: Counts, reference: Reference) -> ScaleMatch:
    derived, above = derived_scale(counts.servers, reference.scales)
    if counts.declared_scale is None:
        return ScaleMatch(derived, derived, False, above)
    return ScaleMatch(reference.scale(counts.declared_scale), derived, True, above)


@dataclass(frozen=True)
class Term:
    count: str
    value: int
    weight: float

    @property
    def fte(self) -> float:
        return self.value * self.weight


@dataclass(frozen=True)
class RoleEstimate:
    role: RoleModel
    terms: tuple[Term, ...]

    @property
    def fte(self) -> float:
        return self.role.base + sum(t.fte for t in self.terms)


def estimate_role(counts: Counts, role: RoleModel) -> RoleEstimate:
    return RoleEstimate(role, tuple(Term(name, counts.value(name), weight) for name, weight in role.per.items()))


@dataclass(frozen=True)
class Watch:
    mode: str  # WATCH_NONE, WATCH_ON_CALL or WATCH_ON_SITE
    duty: DutyModel

    @property
    def fte(self) -> float:
        if self.mode == WATCH_NONE:
            return 0.0
        weight = self.duty.on_call_weight if self.mode == WATCH_ON_CALL else 1.0
        return self.duty.off_hours * weight / self.duty.available_hours


def watch(counts: Counts, duty: DutyModel) -> Watch:
    if counts.servers_24x7 == 0:
        return Watch(WATCH_NONE, duty)
    return Watch(WATCH_ON_SITE if counts.servers_24x7 >= duty.on_site_from_servers else WATCH_ON_CALL, duty)


def people(fte: float) -> int:
    """Whole people for `fte` as shown (one decimal), half up (round() would make 2.5 two), at least one."""
    return max(1, math.floor(round(fte, 1) + 0.5))


@dataclass(frozen=True)
class SiteEstimate:
    counts: Counts
    scale: ScaleMatch
    roles: tuple[RoleEstimate, ...]
    watch: Watch
    spread: float

    @property
    def total(self) -> float:
        return sum(r.fte for r in self.roles) + self.watch.fte

    @property
    def people(self) -> int:
        return people(self.total)

    @property
    def low(self) -> int:
        return people(self.total * (1 - self.spread))

    @property
    def high(self) -> int:
        return people(self.total * (1 + self.spread))

    @property
    def within_reference(self) -> bool:
        low, high = self.scale.scale.people
        return low <= self.people <= high

    @property
    def rota_covered(self) -> bool:
        """Whether the estimated team keeps the night and weekend watch itself."""
        return self.watch.mode != WATCH_ON_CALL or self.people >= self.watch.duty.min_rota


def estimate_site(counts: Counts, reference: Reference) -> SiteEstimate:
    return SiteEstimate(
        counts=counts,
        scale=match_scale(counts, reference),
        roles=tuple(estimate_role(counts, role) for role in reference.roles),
        watch=watch(counts, reference.duty),
        spread=reference.spread,
    )


@dataclass(frozen=True)
class GroupEstimate:
    """A hospital group: a team per campus, added up; campuses too small for their own rota may share one."""

    sites: tuple[SiteEstimate, ...]

    @property
    def total(self) -> float:
        return sum(s.total for s in self.sites)

    @property
    def people(self) -> int:
        return sum(s.people for s in self.sites)

    @property
    def low(self) -> int:
        return sum(s.low for s in self.sites)

    @property
    def high(self) -> int:
        return sum(s.high for s in self.sites)

    @property
    def reference(self) -> tuple[int, int]:
        return sum(s.scale.scale.people[0] for s in self.sites), sum(s.scale.scale.people[1] for s in self.sites)

    @property
    def within_reference(self) -> bool:
        low, high = self.reference
        return low <= self.people <= high

    @property
    def short_rotas(self) -> tuple[SiteEstimate, ...]:
        """The campuses whose team is too small to keep their on-call rota alone."""
        return tuple(s for s in self.sites if not s.rota_covered)

    @property
    def shared_rota(self) -> int:
        """The people of those campuses, were they to keep one on-call rota together."""
        return sum(s.people for s in self.short_rotas)

    @property
    def shared_rota_covered(self) -> bool:
        return all(self.shared_rota >= s.watch.duty.min_rota for s in self.short_rotas)


@dataclass(frozen=True)
class Plan:
    sites: tuple[SiteEstimate, ...]
    group: GroupEstimate | None  # when more than one site


def plan_team(topologies: Sequence[Topology], reference: Reference) -> Plan:
    sites = tuple(estimate_site(count(t, reference), reference) for t in topologies)
    return Plan(sites, GroupEstimate(sites) if len(sites) > 1 else None)
