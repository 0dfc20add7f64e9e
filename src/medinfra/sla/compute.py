"""The month's SLA figures from plain series (pure: no I/O; `medinfra.sla.source` fetches the series).

Time is whole Unix seconds. Prometheus is asked for one value per step (the scrape interval) at step times
``period.start + k * step``; the value at step time t stands for [t, t + step): a probe that failed at t is down
until the step of the next successful probe. So an outage runs from its first failed probe to the first probe that
succeeded again, and durations are multiples of the step (the report's resolution).

- A system is a topology host: it is down while any of its probes fails, "no data" while none fails but one has no
  value (a gap in the series is never counted as up), up otherwise.
- Availability = up seconds / counted seconds of the month, where a 24x7 class counts every second and a
  business-hours class only the seconds inside its hours (site time zone, zoneinfo: DST moves the hours with the
  wall clock). "No data" seconds are counted but not up.
- An outage is acknowledged by the first Alertmanager silence matching one of the alerts that fired during it and
  active while it lasted: acknowledged at max(silence start, outage start). Time to resolve is the outage's
  duration. Both are counted in the class's hours, as the availability is. An alerted outage never acknowledged
  meets the acknowledgement target only if it was resolved within it; an outage that raised no alert needs none.
- RPO: per backup set, the worst age of its last successful backup over the month (step time minus
  ``medinfra_backup_last_success_timestamp_seconds``) against the class's RPO.
- A class meets its targets when every one of its systems reaches the availability target (at least, exactly at
  the target passes), every outage meets the acknowledge and resolve targets and every backup set its RPO.
"""

from __future__ import annotations

import math
import re
from array import array
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from fractions import Fraction
from zoneinfo import ZoneInfo

from medinfra.topology.model import BusinessHours, SlaClass, Topology

Interval = tuple[int, int]  # [start, end) in Unix seconds
UP, DOWN, NO_DATA = "up", "down", "no data"
MONTH = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")


@dataclass(frozen=True)
class Period:
    """The reported month in the site's zone, cut at `end` when the month is not over yet."""

    month: str
    timezone: str
    start: int
    end: int
    month_end: int
    step: int

    @property
    def complete(self) -> bool:
        return self.end == self.month_end

    def steps(self) -> range:
        return range(self.start, self.end, self.step)


def month_period(month: str, timezone: str, step: int, now: int) -> Period:
    """The calendar month `month` (YYYY-MM) in `timezone`, up to `now` (rounded down to a step); ValueError when the
    month is malformed or has not begun."""
    found = MONTH.match(month)
    if not found:
        raise ValueError(f"{month!r} is not a month like 2026-11")
    year, number = int(found[1]), int(found[2])
    zone = ZoneInfo(timezone)
    start = int(datetime(year, number, 1, tzinfo=zone).timestamp())
    following = (year + 1, 1) if number == 12 else (year, number + 1)
    month_end = int(datetime(*following, 1, tzinfo=zone).timestamp())
    if now <= start:
        raise ValueError(f"{month} has not begun in {timezone}")
    end = min(month_end, start + (now - start) // step * step)
    return Period(month, timezone, start, end, month_end, step)


def local_days(period: Period) -> list[tuple[date, Interval]]:
    """Each local day of the period with its [midnight, next midnight) in Unix seconds (23 or 25 h across DST)."""
    zone = ZoneInfo(period.timezone)
    day = datetime.fromtimestamp(period.start, zone).date()
    days: list[tuple[date, Interval]] = []
    while True:
        start = int(datetime.combine(day, time(), zone).timestamp())
        if start >= period.end:
            return days
        end = int(datetime.combine(day + timedelta(days=1), time(), zone).timestamp())
        days.append((day, (start, min(end, period.end))))
        day += timedelta(days=1)


def counted_windows(period: Period, hours: BusinessHours | None) -> list[Interval]:
    """The seconds a class counts: the whole period (24x7), else its hours on its weekdays, in local wall time."""
    if hours is None:
        return [(period.start, period.end)]
    zone = ZoneInfo(period.timezone)
    first, last = BusinessHours.minutes(hours.start), BusinessHours.minutes(hours.end)
    windows = []
    for day, _ in local_days(period):
        if day.weekday() in hours.days:
            midnight = datetime.combine(day, time(), zone)
            # Wall-clock arithmetic through combine(): 08:00 stays 08:00 on a DST day.
            start = datetime.combine(day, time(first // 60, first % 60), zone)
            end = (midnight + timedelta(days=1)) if last == 24 * 60 else datetime.combine(
                day, time(last // 60, last % 60), zone)
            window = (max(int(start.timestamp()), period.start), min(int(end.timestamp()), period.end))
            if window[0] < window[1]:
                windows.append(window)
    return windows


def overlap(interval: Interval, windows: Sequence[Interval]) -> int:
    """Seconds of `interval` inside the (disjoint) windows."""
    start, end = interval
    return sum(max(0, min(end, w_end) - max(start, w_start)) for w_start, w_end in windows)


@dataclass(frozen=True)
class Matcher:
    """One matcher of an Alertmanager silence (its regular expressions are anchored, as Alertmanager's are)."""

    name: str
    value: str
    is_regex: bool = False
    is_equal: bool = True

    def matches(self, labels: Mapping[str, str]) -> bool:
        value = labels.get(self.name, "")
        hit = re.fullmatch(self.value, value) is not None if self.is_regex else value == self.value
        return hit == self.is_equal


@dataclass(frozen=True)
class Silence:
    id: str
    matchers: tuple[Matcher, ...]
    starts_at: int
    ends_at: int
    created_by: str
    comment: str = ""

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(matcher.matches(labels) for matcher in self.matchers)


class StepValues(Mapping[int, float]):
    """{step time: value} kept as one float per step (NaN: no value), 8 bytes a step: a month of 30 s steps of a
    hundred series is 70 MB, where a dict would take a gigabyte."""

    def __init__(self, first: int, step: int, count: int) -> None:
        self.first, self.step = first, step
        self.array = array("d", [math.nan]) * count

    def set(self, at: int, value: float) -> None:
        index, rest = divmod(at - self.first, self.step)
        if not rest and 0 <= index < len(self.array):
            self.array[index] = value

    def __getitem__(self, at: int) -> float:
        index, rest = divmod(at - self.first, self.step)
        if rest or not 0 <= index < len(self.array) or math.isnan(self.array[index]):
            raise KeyError(at)
        return self.array[index]

    def __iter__(self) -> Iterator[int]:
        return (self.first + i * self.step for i, value in enumerate(self.array) if not math.isnan(value))

    def __len__(self) -> int:
        return sum(1 for value in self.array if not math.isnan(value))


@dataclass(frozen=True)
class Series:
    """One series at step times: {step time: value}; a step without a value is a gap."""

    labels: Mapping[str, str]
    values: Mapping[int, float]


@dataclass(frozen=True)
class Outage:
    start: int
    end: int
    counted_seconds: int  # inside the class's hours
    services: tuple[str, ...]
    alerts: tuple[str, ...]  # alert names that fired during it
    acknowledged_at: int | None
    acknowledged_by: str | None
    acknowledge_seconds: int | None  # counted, from start to acknowledgement
    acknowledge_met: bool
    resolve_met: bool
    open_start: bool  # began before the period (cut at its start)
    open_end: bool  # still down at the period's end

    @property
    def duration(self) -> int:
        return self.end - self.start


@dataclass(frozen=True)
class Gap:
    start: int
    end: int
    counted_seconds: int

    @property
    def duration(self) -> int:
        return self.end - self.start


@dataclass(frozen=True)
class Day:
    day: date
    counted_seconds: int
    up_seconds: int

    @property
    def availability(self) -> Fraction | None:
        return Fraction(self.up_seconds, self.counted_seconds) if self.counted_seconds else None


@dataclass(frozen=True)
class SystemResult:
    host: str
    sla: str
    services: tuple[str, ...]
    counted_seconds: int
    up_seconds: int
    down_seconds: int
    no_data_seconds: int
    outages: tuple[Outage, ...]
    gaps: tuple[Gap, ...]
    days: tuple[Day, ...]
    availability_met: bool

    @property
    def availability(self) -> Fraction | None:
        return Fraction(self.up_seconds, self.counted_seconds) if self.counted_seconds else None

    @property
    def met(self) -> bool:
        return self.availability_met and all(o.acknowledge_met and o.resolve_met for o in self.outages)


@dataclass(frozen=True)
class BackupResult:
    host: str
    set: str
    sla: str
    worst_age_seconds: int | None  # None: no value in the period
    rpo_seconds: int

    @property
    def met(self) -> bool:
        return self.worst_age_seconds is not None and self.worst_age_seconds <= self.rpo_seconds


@dataclass(frozen=True)
class Miss:
    """One reason a class missed its targets: `kind` availability | acknowledge | resolve | rpo."""

    kind: str
    host: str
    at: int | None = None  # the outage's start
    availability: Fraction | None = None
    backup_set: str = ""
    age: int | None = None  # the backup's worst age; None: no backup metric


@dataclass(frozen=True)
class ClassResult:
    sla: SlaClass
    systems: tuple[str, ...]
    counted_seconds: int
    up_seconds: int
    missed: tuple[Miss, ...]

    @property
    def availability(self) -> Fraction | None:
        return Fraction(self.up_seconds, self.counted_seconds) if self.counted_seconds else None

    @property
    def met(self) -> bool:
        return not self.missed


@dataclass(frozen=True)
class SlaReport:
    site: str
    title: str
    period: Period
    systems: tuple[SystemResult, ...]
    classes: tuple[ClassResult, ...]
    backups: tuple[BackupResult, ...]
    not_probed: tuple[str, ...]  # topology hosts without a probe series in the period
    sources: Mapping[str, str] = field(default_factory=dict)

    @property
    def met(self) -> bool:
        return all(result.met for result in self.classes)


def meets(up: int, counted: int, percent: float) -> bool:
    """Availability at least the target, in exact arithmetic (99.9 % of 2,592,000 s is 2,589,408 s, not a float)."""
    return counted == 0 or Fraction(up, counted) * 100 >= Fraction(str(percent))


def column(period: Period, series: Series) -> Sequence[float]:
    """The series' value at each step of the period, NaN where it has none (a slice when it is kept per step)."""
    values, count = series.values, (period.end - period.start) // period.step
    if isinstance(values, StepValues) and values.step == period.step:
        offset, rest = divmod(period.start - values.first, period.step)
        if not rest and offset >= 0 and offset + count <= len(values.array):
            return values.array[offset:offset + count]
    return [values.get(at, math.nan) for at in period.steps()]


def runs(period: Period, probes: Sequence[Series]) -> list[tuple[str, int, int, frozenset[str]]]:
    """The system's state over the period as maximal runs (state, start, end, services down)."""
    found: list[tuple[str, int, int, frozenset[str]]] = []
    services = [p.labels.get("service", "") for p in probes]
    columns = [column(period, p) for p in probes]
    # zip(*columns) hands over each step's row as a tuple, without indexing every column in Python.
    for at, row in zip(period.steps(), zip(*columns, strict=True), strict=True):
        down = frozenset(s for s, v in zip(services, row, strict=True) if v == 0) if 0 in row else frozenset()
        total = sum(row)  # NaN when any probe has no value: NaN is the only value != itself
        state = DOWN if down else NO_DATA if total != total else UP
        if found and found[-1][0] == state:
            previous = found[-1]
            found[-1] = (state, previous[1], at + period.step, previous[3] | down)
        else:
            found.append((state, at, at + period.step, down))
    return found


def alert_intervals(period: Period, alerts: Series) -> list[Interval]:
    """The steps an ALERTS series was firing, as intervals."""
    intervals: list[Interval] = []
    for at, value in zip(period.steps(), column(period, alerts), strict=True):
        if not value or value != value:  # not firing, or no value
            continue
        if intervals and intervals[-1][1] == at:
            intervals[-1] = (intervals[-1][0], at + period.step)
        else:
            intervals.append((at, at + period.step))
    return intervals


def outage(period: Period, sla: SlaClass, windows: Sequence[Interval], span: Interval, services: frozenset[str],
           alerts: Sequence[Series], silences: Sequence[Silence], open_start: bool) -> Outage:
    start, end = span
    fired = [a for a in alerts if any(s < end and start < e for s, e in alert_intervals(period, a))]
    acks = sorted(
        (max(silence.starts_at, start), silence.created_by)
        for silence in silences
        if silence.starts_at < end and silence.ends_at > start and any(silence.matches(a.labels) for a in fired)
    )
    counted = overlap((start, end), windows)
    acknowledged_at, by = acks[0] if acks else (None, None)
    ack_seconds = None if acknowledged_at is None else overlap((start, acknowledged_at), windows)
    ack_limit = sla.acknowledge_minutes * 60
    return Outage(
        start=start, end=end, counted_seconds=counted, services=tuple(sorted(services)),
        alerts=tuple(sorted({a.labels.get("alertname", "") for a in fired})),
        acknowledged_at=acknowledged_at, acknowledged_by=by, acknowledge_seconds=ack_seconds,
        acknowledge_met=(not fired) or (ack_seconds if ack_seconds is not None else counted) <= ack_limit,
        resolve_met=counted <= sla.resolve_limit_minutes * 60,
        open_start=open_start, open_end=end == period.end,
    )


def system_result(period: Period, host: str, sla: SlaClass, probes: Sequence[Series], alerts: Sequence[Series],
                  silences: Sequence[Silence]) -> SystemResult:
    """One host's month. A probe's value one step before the period says whether an outage began earlier."""
    before = period.start - period.step
    failing_before = any(p.values.get(before) == 0 for p in probes)
    windows = counted_windows(period, sla.hours)
    state_runs = runs(period, probes)
    outages, gaps = [], []
    totals = {UP: 0, DOWN: 0, NO_DATA: 0}
    for state, start, end, down in state_runs:
        totals[state] += overlap((start, end), windows)
        if state == DOWN:
            open_start = failing_before and start == period.start
            outages.append(outage(period, sla, windows, (start, end), down, alerts, silences, open_start))
        elif state == NO_DATA:
            gaps.append(Gap(start, end, overlap((start, end), windows)))
    days = []
    for day, bounds in local_days(period):
        day_windows = [(max(s, bounds[0]), min(e, bounds[1])) for s, e in windows if s < bounds[1] and e > bounds[0]]
        up = sum(overlap((s, e), day_windows) for state, s, e, _ in state_runs if state == UP)
        days.append(Day(day, sum(e - s for s, e in day_windows), up))
    counted = sum(totals.values())
    return SystemResult(
        host=host, sla=sla.name, services=tuple(sorted({p.labels.get("service", "") for p in probes})),
        counted_seconds=counted, up_seconds=totals[UP], down_seconds=totals[DOWN], no_data_seconds=totals[NO_DATA],
        outages=tuple(outages), gaps=tuple(gaps), days=tuple(days),
        availability_met=meets(totals[UP], counted, sla.availability_percent),
    )


def backup_result(period: Period, host: str, sla: SlaClass, series: Series) -> BackupResult:
    ages = [at - int(value) for at, value in zip(period.steps(), column(period, series), strict=True)
            if value == value]  # NaN (no value) is the only value != itself
    return BackupResult(host, series.labels.get("set", ""), sla.name, max(ages) if ages else None,
                        sla.rpo_minutes * 60)


def local_time(at: int, timezone: str) -> str:
    """ISO 8601 in the site's zone, with its offset: 2026-11-03T10:00:00+08:00."""
    return datetime.fromtimestamp(at, ZoneInfo(timezone)).isoformat()


def class_result(sla: SlaClass, systems: Sequence[SystemResult], backups: Sequence[BackupResult]) -> ClassResult:
    missed: list[Miss] = []
    for system in systems:
        if not system.availability_met:
            missed.append(Miss("availability", system.host, availability=system.availability))
        for item in system.outages:
            if not item.acknowledge_met:
                missed.append(Miss("acknowledge", system.host, at=item.start))
            if not item.resolve_met:
                missed.append(Miss("resolve", system.host, at=item.start))
    missed += [Miss("rpo", b.host, backup_set=b.set, age=b.worst_age_seconds) for b in backups if not b.met]
    return ClassResult(sla, tuple(s.host for s in systems), sum(s.counted_seconds for s in systems),
                       sum(s.up_seconds for s in systems), tuple(missed))


def by_host(series: Iterable[Series], label: str = "host") -> dict[str, list[Series]]:
    grouped: dict[str, list[Series]] = {}
    for item in series:
        grouped.setdefault(item.labels.get(label, ""), []).append(item)
    return grouped


def sla_report(topology: Topology, period: Period, probes: Sequence[Series], alerts: Sequence[Series],
               silences: Sequence[Silence], backups: Sequence[Series],
               sources: Mapping[str, str] | None = None) -> SlaReport:
    """The report: probe series (labels host, service; values from one step before the period), firing ALERTS
    series (label host or instance), silences and backup series (labels instance, set)."""
    probed, alerted = by_host(probes), by_host(alerts)
    for name, items in by_host(alerts, "instance").items():
        alerted.setdefault(name, []).extend(items)
    systems, backup_results = [], []
    for host in topology.hosts:
        sla = topology.sla_classes[host.sla]
        if host.name in probed:
            systems.append(system_result(period, host.name, sla, probed[host.name], alerted.get(host.name, ()),
                                         silences))
    for name, items in sorted(by_host(backups, "instance").items()):
        if name in topology.hosts_by_name:
            sla = topology.sla_classes[topology.hosts_by_name[name].sla]
            backup_results += [backup_result(period, name, sla, s) for s in sorted(items, key=lambda s: s.labels.get(
                "set", ""))]
    classes = tuple(
        class_result(sla, [s for s in systems if s.sla == name], [b for b in backup_results if b.sla == name])
        for name, sla in topology.sla_classes.items()
    )
    return SlaReport(
        site=topology.site.name, title=topology.site.title, period=period, systems=tuple(systems), classes=classes,
        backups=tuple(backup_results), not_probed=tuple(h.name for h in topology.hosts if h.name not in probed),
        sources=dict(sources or {}),
    )
