"""What to do next about each open item: whether `medinfra fix` repairs it, who owns it and by when.

The POA&M (report.poam) and the HTML report's "what to do next" both read these, so they always agree.

The due-date rule, kept as data in DUE_DAYS:
- a failure an expired waiver covered belongs again to whoever approved the waiver, and was due when the waiver
  expired (the earliest expiry if several): it is overdue;
- otherwise the site's operations own it, due the audit's start date (UTC) plus the days of the control's severity,
  the shorter column when any of its hosts is in a round-the-clock SLA class (the same test as the fix plan's
  one-host-at-a-time: a class whose support hours are not business hours, or a host of unknown class);
- without the topology every host is taken to be round-the-clock and changeable by medinfra.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from medinfra.compliance.model import Bilingual
from medinfra.fix.plan import HostPolicy, LeftAlone, OpenItem, host_policies, open_items, plan_fix
from medinfra.report.i18n import ui
from medinfra.report.model import Report
from medinfra.topology.model import Topology

# Days from the audit's start to remediate a failure of this severity: (business-hours hosts, round-the-clock hosts).
DUE_DAYS: Mapping[str, tuple[int, int]] = {
    "critical": (14, 7),
    "high": (30, 14),
    "medium": (90, 45),
    "low": (180, 90),
}
# A host the topology does not describe: the strictest assumption.
UNKNOWN_HOST = HostPolicy(legacy=False, one_at_a_time=True)


@dataclass(frozen=True)
class NextStep:
    item: OpenItem
    fixed_hosts: tuple[str, ...]  # `medinfra fix` repairs these with the control's remediation role and tags
    left_alone: tuple[LeftAlone, ...]  # the other hosts, and why people must act on them
    owners: tuple[str, ...]  # approvers of the expired waivers; none: the site's operations
    due: date
    overdue: bool
    basis: Bilingual  # why it is due then


def audit_date(report: Report) -> date:
    """The UTC day the audit started (a findings document's start always carries its zone)."""
    return datetime.fromisoformat(report.started_at).astimezone(UTC).date()


def next_step(item: OpenItem, policies: Mapping[str, HostPolicy], started: date, today: date) -> NextStep:
    plan = plan_fix([item], policies)
    left = {host for entry in plan.left_alone for host in entry.hosts}
    if item.expired_waivers:
        waiver = min(item.expired_waivers, key=lambda w: w.expires)
        owners = tuple(dict.fromkeys(w.approver for w in item.expired_waivers))
        due = waiver.expires
        basis = Bilingual(
            f"the waiver approved by {waiver.approver} expired on {due.isoformat()}",
            f"{waiver.approver} 批准的豁免已于 {due.isoformat()} 到期",
        )
    else:
        round_the_clock = any(policies.get(host, UNKNOWN_HOST).one_at_a_time for host in item.hosts)
        days = DUE_DAYS[item.control.severity][round_the_clock]
        owners, due = (), started + timedelta(days=days)
        hours = ("round-the-clock", "全天候") if round_the_clock else ("business-hours", "工作时间")
        basis = Bilingual(
            f"{item.control.severity} severity on {hours[0]} hosts: {days} days from the audit",
            f"{hours[1]}主机上严重程度为{ui('zh')[item.control.severity]}的问题：审计后 {days} 天内",
        )
    return NextStep(
        item=item,
        fixed_hosts=tuple(host for host in item.hosts if host not in left),
        left_alone=plan.left_alone,
        owners=owners,
        due=due,
        overdue=due < today,
        basis=basis,
    )


def next_steps(report: Report, topology: Topology | None, now: datetime) -> list[NextStep]:
    """One step per open item, most severe first; `now` decides what is overdue."""
    items = open_items(report)
    if topology is not None:
        policies: Mapping[str, HostPolicy] = host_policies(topology)
    else:
        policies = {host: UNKNOWN_HOST for item in items for host in item.hosts}
    started, today = audit_date(report), now.astimezone(UTC).date()
    return [next_step(item, policies, started, today) for item in items]
