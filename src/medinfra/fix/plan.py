"""From an audit's failures to what repairs them: open items per control, and the playbook runs of a fix.

Pure: the report model and the topology's view of each host in, plain data out. `medinfra fix` runs the plan,
the POA&M and the HTML report's "what to do next" read the same open items.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase

from medinfra.compliance.model import SEVERITIES, Bilingual, Status, Waiver
from medinfra.report.model import ControlInfo, Report
from medinfra.topology.model import Topology


@dataclass(frozen=True)
class OpenItem:
    """One control that failed, not waived, on some hosts: what the audit asks someone to do."""

    control: ControlInfo
    hosts: tuple[str, ...]
    # Waivers that covered these failures until they expired: whoever accepted the risk owns the item again.
    expired_waivers: tuple[Waiver, ...]

    @property
    def fixable(self) -> bool:
        """A role's tags repair it by converging (else people act on the remediation text)."""
        return bool(self.control.remediation_tags) and not self.control.remediation_manual


@dataclass(frozen=True)
class HostPolicy:
    """What the topology says about changing a host."""

    legacy: bool  # a vendor appliance medinfra's roles leave alone
    one_at_a_time: bool  # its SLA class promises round-the-clock service
    services: frozenset[str] = frozenset()  # the topology's services on the host


@dataclass(frozen=True)
class PlaybookRun:
    """One `ansible-playbook` run of the roles' playbooks: exactly these hosts, exactly these tags."""

    hosts: tuple[str, ...]
    tags: tuple[str, ...]
    controls: tuple[str, ...]  # what it repairs, for the plan's reader
    one_at_a_time: bool  # run host by host, stopping at the first that fails
    # Hosts every command of the run also limits to: the remediations' `with_services` (not repaired themselves).
    with_hosts: tuple[str, ...] = ()


@dataclass(frozen=True)
class LeftAlone:
    """Failures the plan does not touch, and why."""

    control: str
    hosts: tuple[str, ...]
    reason: Bilingual


@dataclass(frozen=True)
class FixPlan:
    runs: tuple[PlaybookRun, ...]
    left_alone: tuple[LeftAlone, ...]


LEGACY = Bilingual(
    "legacy host: medinfra's roles leave vendor appliances alone; the vendor or its owner must act",
    "遗留主机：medinfra 的角色不改动厂商设备，需由厂商或其负责人处理",
)
MANUAL = Bilingual("no role repairs this by converging: act on the remediation text",
                   "没有角色能通过收敛修复：请按整改说明人工处理")


def open_items(report: Report) -> list[OpenItem]:
    """Every control that failed and is not waived, with its hosts, most severe first."""
    failing: dict[str, set[str]] = defaultdict(set)
    expired: dict[str, dict[Waiver, None]] = defaultdict(dict)  # insertion-ordered, without duplicates
    for finding in report.findings:
        if finding.status is Status.FAIL:
            failing[finding.control].add(finding.host)
            if finding.expired_waiver is not None:
                expired[finding.control][finding.expired_waiver] = None
    items = [
        OpenItem(report.controls[control], tuple(sorted(hosts)), tuple(expired[control]))
        for control, hosts in failing.items()
    ]
    return sorted(items, key=lambda item: (-SEVERITIES.index(item.control.severity), item.control.id))


def host_selected(host: str, patterns: Sequence[str]) -> bool:
    """`--hosts his-*,pacs-01`: shell-style patterns, any of which selects the host; none given selects all."""
    return not patterns or any(fnmatchcase(host, pattern) for pattern in patterns)


def plan_fix(
    items: Iterable[OpenItem],
    policies: Mapping[str, HostPolicy],
    controls: Sequence[str] = (),
    host_patterns: Sequence[str] = (),
) -> FixPlan:
    """The fewest runs that repair the selected items: hosts that need the same tags under the same change policy
    share a run. Hosts one-at-a-time go last, after the others have shown the change is sound."""
    tags_of_host: dict[str, set[str]] = defaultdict(set)
    controls_of_host: dict[str, set[str]] = defaultdict(set)
    services_of_host: dict[str, set[str]] = defaultdict(set)
    left_alone: list[LeftAlone] = []
    for item in items:
        if controls and item.control.id not in controls:
            continue
        hosts = [host for host in item.hosts if host_selected(host, host_patterns)]
        unknown = [host for host in hosts if host not in policies]
        legacy = [host for host in hosts if host in policies and policies[host].legacy]
        changeable = [host for host in hosts if host in policies and not policies[host].legacy]
        if unknown:
            left_alone.append(LeftAlone(item.control.id, tuple(unknown), Bilingual(
                "not in the inventory's topology: the plan cannot reach it",
                "不在清单的拓扑中：无法触达")))
        if legacy:
            left_alone.append(LeftAlone(item.control.id, tuple(legacy), LEGACY))
        if not changeable:
            continue
        if not item.fixable:
            left_alone.append(LeftAlone(item.control.id, tuple(changeable), MANUAL))
            continue
        for host in changeable:
            tags_of_host[host].update(item.control.remediation_tags)
            controls_of_host[host].add(item.control.id)
            services_of_host[host].update(item.control.remediation_with_services)
    groups: dict[tuple[bool, tuple[str, ...]], list[str]] = defaultdict(list)
    for host in sorted(tags_of_host):
        groups[(policies[host].one_at_a_time, tuple(sorted(tags_of_host[host])))].append(host)
    runs = [
        PlaybookRun(tuple(hosts), tags, tuple(sorted({c for h in hosts for c in controls_of_host[h]})), careful,
                    hosts_with_services({s for h in hosts for s in services_of_host[h]}, policies, exclude=hosts))
        for (careful, tags), hosts in sorted(groups.items())
    ]
    return FixPlan(tuple(runs), tuple(left_alone))


def hosts_with_services(services: set[str], policies: Mapping[str, HostPolicy],
                        exclude: Sequence[str]) -> tuple[str, ...]:
    """The managed hosts offering any of ``services``, other than ``exclude``."""
    return tuple(sorted(host for host, policy in policies.items()
                        if policy.services & services and not policy.legacy and host not in exclude))


def host_policies(topology: Topology) -> dict[str, HostPolicy]:
    """Legacy hosts are left alone; a class without business hours (or none said) is changed one host at a time."""
    return {
        host.name: HostPolicy(
            legacy=host.legacy,
            one_at_a_time=topology.sla_classes[host.sla].round_the_clock
            if host.sla in topology.sla_classes else True,
            services=frozenset(host.services),
        )
        for host in topology.hosts
    }
