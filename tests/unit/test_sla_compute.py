"""The SLA month computed from plain series, to the second (medinfra.sla.compute)."""

from __future__ import annotations

import math
from array import array
from collections.abc import Sequence
from datetime import datetime
from fractions import Fraction
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from medinfra.sla.compute import (
    Matcher,
    Miss,
    Period,
    Series,
    Silence,
    StepValues,
    column,
    counted_windows,
    meets,
    month_period,
    sla_report,
)
from medinfra.topology.model import Topology

SHANGHAI = ZoneInfo("Asia/Shanghai")
STEP = 30
NOVEMBER_START = int(datetime(2026, 11, 1, tzinfo=SHANGHAI).timestamp())
NOVEMBER_END = int(datetime(2026, 12, 1, tzinfo=SHANGHAI).timestamp())


def at(day: int, hour: int, minute: int = 0, second: int = 0, month: int = 11) -> int:
    return int(datetime(2026, month, day, hour, minute, second, tzinfo=SHANGHAI).timestamp())


def topology(**classes: dict[str, Any]) -> Topology:
    hosts = [
        {"name": "his-app", "zone": "his", "address": "10.0.0.10", "services": ["his_app"], "sla": "critical",
         "data_classification": "phi"},
        {"name": "office-01", "zone": "his", "address": "10.0.0.11", "services": ["file_server"], "sla": "office",
         "data_classification": "internal"},
    ]
    return Topology.from_dict({
        "site": {"name": "t", "title": "Test", "timezone": "Asia/Shanghai"},
        "sla_classes": {
            "critical": {"rpo_minutes": 15, "rto_minutes": 60, "support_hours": "24x7", "availability_percent": 99.5,
                         "acknowledge_minutes": 5, **classes.get("critical", {})},
            "office": {"rpo_minutes": 1440, "rto_minutes": 480, "support_hours": "business-hours",
                       "availability_percent": 99.0, **classes.get("office", {})},
        },
        "zones": [{"name": "his", "cidr": "10.0.0.0/24", "trust": "high", "purpose": "his"}],
        "hosts": hosts,
        "flows": [],
    }, source="test.yml")


def november() -> Period:
    return month_period("2026-11", "Asia/Shanghai", STEP, NOVEMBER_END + 86400)


def probe(period: Period, host: str, service: str, down: Sequence[tuple[int, int]] = (),
          gaps: Sequence[tuple[int, int]] = ()) -> Series:
    """A probe series from one step before the period: 1, but 0 inside `down` and missing inside `gaps`."""
    values = {}
    for t in range(period.start - period.step, period.end, period.step):
        if any(s <= t < e for s, e in gaps):
            continue
        values[t] = 0.0 if any(s <= t < e for s, e in down) else 1.0
    return Series({"host": host, "service": service, "job": "blackbox"}, values)


def alert(period: Period, name: str, host: str, firing: tuple[int, int]) -> Series:
    return Series({"alertname": name, "host": host, "severity": "critical", "site": "t"},
                  {t: 1.0 for t in range(firing[0], firing[1], period.step)})


def test_a_month_is_counted_in_the_sites_zone() -> None:
    period = november()
    assert (period.start, period.end) == (NOVEMBER_START, NOVEMBER_END)
    assert datetime.fromtimestamp(period.start, ZoneInfo("UTC")).isoformat() == "2026-10-31T16:00:00+00:00"
    assert period.complete and period.end - period.start == 30 * 86400


def test_a_running_month_stops_at_now_on_a_step() -> None:
    period = month_period("2026-11", "Asia/Shanghai", STEP, NOVEMBER_START + 3600 + 29)
    assert period.end == NOVEMBER_START + 3600 and not period.complete


@pytest.mark.parametrize("month", ["2026-13", "2026-1", "26-11", "2026-11-01"])
def test_a_malformed_month_is_refused(month: str) -> None:
    with pytest.raises(ValueError, match="is not a month"):
        month_period(month, "UTC", STEP, NOVEMBER_END)


def test_a_month_not_begun_is_refused() -> None:
    with pytest.raises(ValueError, match="has not begun"):
        month_period("2026-12", "Asia/Shanghai", STEP, NOVEMBER_END)


def test_dst_shortens_the_month_and_keeps_business_hours_on_the_wall_clock() -> None:
    berlin = ZoneInfo("Europe/Berlin")
    period = month_period("2026-03", "Europe/Berlin", STEP, NOVEMBER_END)
    assert period.end - period.start == 31 * 86400 - 3600
    hours = topology().sla_classes["office"].hours
    windows = counted_windows(period, hours)
    # Friday 27 March (CET) and Monday 30 March (CEST): 08:00-18:00 local both days.
    friday, monday = (int(datetime(2026, 3, d, 8, tzinfo=berlin).timestamp()) for d in (27, 30))
    assert (friday, friday + 36000) in windows and (monday, monday + 36000) in windows
    assert monday - friday == 3 * 86400 - 3600
    assert len(windows) == 22  # weekdays of March 2026


def test_business_hours_count_only_weekdays_between_start_and_end() -> None:
    period = november()
    windows = counted_windows(period, topology().sla_classes["office"].hours)
    assert len(windows) == 21  # weekdays of November 2026
    assert windows[0] == (at(2, 8), at(2, 18))  # Monday 2 November
    assert datetime.fromtimestamp(windows[0][0], SHANGHAI).weekday() == 0


def test_business_hours_boundaries_count_to_the_second() -> None:
    period = november()
    office = probe(period, "office-01", "file_server",
                   down=[(at(2, 7, 59, 30), at(2, 8, 0, 30)),  # across the start: 30 s inside
                         (at(2, 17, 59, 30), at(2, 18, 0, 30)),  # across the end: 30 s inside
                         (at(7, 10), at(7, 12))])  # Saturday: not counted at all
    report = sla_report(topology(), period, [office], [], [], [])
    (system,) = report.systems
    assert [(o.start, o.end, o.duration, o.counted_seconds) for o in system.outages] == [
        (at(2, 7, 59, 30), at(2, 8, 0, 30), 60, 30),
        (at(2, 17, 59, 30), at(2, 18, 0, 30), 60, 30),
        (at(7, 10), at(7, 12), 7200, 0),
    ]
    assert system.counted_seconds == 21 * 36000
    assert system.down_seconds == 60 and system.up_seconds == 21 * 36000 - 60
    saturday = next(d for d in system.days if d.day.day == 7)
    assert saturday.counted_seconds == 0 and saturday.availability is None


def test_a_gap_is_no_data_reported_apart_and_never_up() -> None:
    period = november()
    his = probe(period, "his-app", "his_app", down=[(at(3, 10), at(3, 10, 5)), (at(3, 10, 10), at(3, 10, 20))],
                gaps=[(at(3, 10, 5), at(3, 10, 10))])
    report = sla_report(topology(), period, [his], [], [], [])
    (system,) = report.systems
    assert [(o.start, o.end) for o in system.outages] == [(at(3, 10), at(3, 10, 5)), (at(3, 10, 10), at(3, 10, 20))]
    assert [(g.start, g.end, g.duration) for g in system.gaps] == [(at(3, 10, 5), at(3, 10, 10), 300)]
    assert (system.down_seconds, system.no_data_seconds) == (900, 300)
    assert system.up_seconds == 30 * 86400 - 1200
    assert system.availability == Fraction(30 * 86400 - 1200, 30 * 86400)


def test_overlapping_probe_outages_make_one_outage_of_the_system() -> None:
    period = november()
    web = probe(period, "his-app", "his_app", down=[(at(4, 1), at(4, 1, 20))])
    icmp = probe(period, "his-app", "host", down=[(at(4, 1, 10), at(4, 1, 45))])
    report = sla_report(topology(), period, [web, icmp], [], [], [])
    (outage,) = report.systems[0].outages
    assert (outage.start, outage.end, outage.duration) == (at(4, 1), at(4, 1, 45), 2700)
    assert outage.services == ("his_app", "host")


@pytest.mark.parametrize(("steps_down", "met"), [(432, True), (433, False)])
def test_a_class_exactly_at_its_target_meets_it(steps_down: int, met: bool) -> None:
    # 99.5 % of 2,592,000 s leaves 12,960 s = 432 steps of 30 s.
    period = november()
    his = probe(period, "his-app", "his_app", down=[(at(5, 0), at(5, 0) + steps_down * STEP)])
    report = sla_report(topology(critical={"resolve_minutes": 1440}), period, [his], [], [], [])
    (system,) = report.systems
    assert system.availability_met is met
    critical = next(c for c in report.classes if c.sla.name == "critical")
    assert critical.met is met and report.met is met
    assert meets(2_589_408, 2_592_000, 99.9) and not meets(2_589_407, 2_592_000, 99.9)


def test_an_outage_is_acknowledged_by_the_first_matching_silence() -> None:
    period = november()
    start, end = at(10, 3), at(10, 3, 40)
    his = probe(period, "his-app", "his_app", down=[(start, end)])
    fired = alert(period, "HisEndpointDown", "his-app", (start + 60, end))
    silences = [
        Silence("late", (Matcher("alertname", "HisEndpointDown"),), start + 600, end + 3600, "wang.fang"),
        Silence("first", (Matcher("host", "his-.*", is_regex=True), Matcher("site", "t")), start + 240,
                end + 3600, "li.wei"),
        Silence("other", (Matcher("host", "pacs-01"),), start, end, "nobody"),
        Silence("negated", (Matcher("host", "his-app", is_equal=False),), start, end, "nobody"),
    ]
    report = sla_report(topology(), period, [his], [fired], silences, [])
    (outage,) = report.systems[0].outages
    assert outage.alerts == ("HisEndpointDown",)
    assert (outage.acknowledged_at, outage.acknowledged_by, outage.acknowledge_seconds) == (start + 240, "li.wei", 240)
    assert outage.acknowledge_met and outage.resolve_met  # 4 min <= 5, 40 min <= 60
    assert report.met


def test_an_alerted_outage_nobody_acknowledged_misses_when_it_outlasts_the_target() -> None:
    period = november()
    long_one, short_one = (at(11, 3), at(11, 3, 30)), (at(12, 3), at(12, 3, 4))
    his = probe(period, "his-app", "his_app", down=[long_one, short_one])
    alerts = [alert(period, "HisEndpointDown", "his-app", long_one), alert(period, "HisEndpointDown", "his-app",
                                                                           short_one)]
    report = sla_report(topology(), period, [his], alerts, [], [])
    first, second = report.systems[0].outages
    assert (first.acknowledged_at, first.acknowledge_met) == (None, False)
    assert (second.acknowledged_at, second.acknowledge_met) == (None, True)  # resolved within the 5 min
    critical = next(c for c in report.classes if c.sla.name == "critical")
    assert not critical.met and critical.missed == (Miss("acknowledge", "his-app", at=long_one[0]),)


def test_an_outage_longer_than_the_resolve_target_misses_it() -> None:
    period = november()
    his = probe(period, "his-app", "his_app", down=[(at(13, 3), at(13, 4, 0, 30))])
    report = sla_report(topology(), period, [his], [], [], [])
    (outage,) = report.systems[0].outages
    assert outage.counted_seconds == 3630 and not outage.resolve_met and outage.acknowledge_met  # no alert fired


def test_month_edges_an_outage_from_before_and_one_still_running() -> None:
    period = november()
    his = probe(period, "his-app", "his_app", down=[(period.start - period.step, period.start + 90),
                                                     (period.end - 60, period.end + 600)])
    report = sla_report(topology(), period, [his], [], [], [])
    first, last = report.systems[0].outages
    assert (first.start, first.end, first.open_start, first.open_end) == (period.start, period.start + 90, True,
                                                                          False)
    assert (last.start, last.end, last.open_start, last.open_end) == (period.end - 60, period.end, False, True)


def test_rpo_is_the_worst_age_of_the_last_successful_backup() -> None:
    period = november()
    # A backup every 10 minutes, but the one of 02:10 on the 20th missing: at 02:19:30 the 02:00 backup is 19 min 30 s
    # old (the worst, above the 15 min RPO).
    backups = {}
    last = period.start - 600
    for t in range(period.start, period.end, STEP):
        if t - last >= 600 and not at(20, 2) < t < at(20, 2, 20):
            last = t
        backups[t] = float(last)
    series = Series({"instance": "his-app", "set": "his-db", "job": "node"}, backups)
    his = probe(period, "his-app", "his_app")
    report = sla_report(topology(), period, [his], [], [], [series])
    (backup,) = report.backups
    assert (backup.set, backup.worst_age_seconds, backup.rpo_seconds, backup.met) == ("his-db", 1170, 900, False)
    critical = next(c for c in report.classes if c.sla.name == "critical")
    assert critical.missed == (Miss("rpo", "his-app", backup_set="his-db", age=1170),)


def test_hosts_without_probes_are_named() -> None:
    period = november()
    report = sla_report(topology(), period, [probe(period, "his-app", "his_app")], [], [], [])
    assert report.not_probed == ("office-01",)
    assert [s.host for s in report.systems] == ["his-app"] and report.met


def test_step_values_keep_one_float_a_step_and_nan_as_a_gap() -> None:
    values = StepValues(1000, 30, 4)
    values.set(1000, 1.0)
    values.set(1060, 0.0)
    values.set(1075, 1.0)  # between steps: not a step value
    values.set(1120, 1.0)  # beyond the last step
    assert dict(values) == {1000: 1.0, 1060: 0.0} and len(values) == 2
    assert 1030 not in values and values.get(1060) == 0.0 and values.get(1075) is None


def test_a_series_kept_at_the_period_s_step_reads_as_the_same_column_as_any_other() -> None:
    """The per-step array is sliced where it lines up with the period (the fast path) and read step by step where it
    does not: either way each step gets its value, NaN where there is none."""
    period = november()
    count = (period.end - period.start) // period.step
    lined_up = StepValues(period.start - period.step, period.step, count + 2)  # one step before, one after
    for index, at_step in enumerate(range(period.start - period.step, period.end + period.step, period.step)):
        if index % 7:
            lined_up.set(at_step, float(index % 2))
    expected = [lined_up.get(at_step, math.nan) for at_step in period.steps()]
    fast = column(period, Series({}, lined_up))
    assert len(fast) == count and fast[:2] == array("d", [1.0, 0.0]) and math.isnan(fast[6])  # index 7 of the array
    assert [repr(value) for value in fast] == [repr(value) for value in expected]
    as_dict = {at_step: value for at_step, value in lined_up.items()}
    assert [repr(value) for value in column(period, Series({}, as_dict))] == [repr(value) for value in expected]
    offset = StepValues(period.start + 1, period.step, count)  # between steps: no step value at all
    offset.set(period.start + 1, 1.0)
    assert all(math.isnan(value) for value in column(period, Series({}, offset)))
    short = StepValues(period.start, period.step, count - 1)  # ends a step early: the last step has no value
    short.set(period.start, 1.0)
    assert [repr(value) for value in column(period, Series({}, short))[:1]] == ["1.0"]
    assert math.isnan(column(period, Series({}, short))[-1])

