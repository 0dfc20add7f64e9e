"""on_duty: who holds each role at an instant, across week boundaries, midnight and weekends, in the site's zone."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from medinfra.oncall.load import load_oncall
from medinfra.oncall.model import Channel, OnCall, Person, Rotation, Shift
from medinfra.oncall.schedule import duties, on_duty
from tests.conftest import LAB_TOPOLOGY, TERTIARY_TOPOLOGY

SHANGHAI = ZoneInfo("Asia/Shanghai")


def holders(oncall: OnCall, at: datetime) -> dict[str, str]:
    found = on_duty(oncall, at)
    assert len({d.role for d in found}) == len(found), "one person per role"
    return {d.role: d.person.id for d in found}


def local(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=SHANGHAI)


LAB = load_oncall(LAB_TOPOLOGY.parent / "oncall.yml")


@pytest.mark.parametrize(
    ("at", "duty"),
    [
        # Week 4 of the lab rota (Monday 2026-11-30 is 28 days after its start, 2026-11-02).
        ("2026-12-03T10:00", "wang-lei"),  # Thursday day, week 4: duty-office people[4 % 2]
        ("2026-12-03T17:59", "wang-lei"),
        ("2026-12-03T18:00", "chen-jing"),  # the night watch, week 4: duty-night people[4 % 3]
        ("2026-12-04T03:00", "chen-jing"),  # after midnight: the shift that began the evening before
        ("2026-12-05T12:00", "liu-yang"),  # Saturday: the weekend watch, people[4 % 2]
        ("2026-12-06T03:00", "chen-jing"),  # Sunday 03:00: Saturday's night shift
        ("2026-12-07T07:59", "chen-jing"),  # Monday 07:59, week 5 already: Sunday night's shift is still week 4's
        ("2026-12-07T08:00", "li-na"),  # handover: week 5's office duty
        ("2026-12-07T18:00", "liu-yang"),  # week 5's night watch: people[5 % 3]
    ],
)
def test_lab_duty_watch(at: str, duty: str) -> None:
    assert holders(LAB, local(at))["duty"] == duty


def test_week_handover_of_a_24_hour_rotation() -> None:
    assert holders(LAB, local("2026-12-07T07:59"))["ops"] == "li-na"
    assert holders(LAB, local("2026-12-07T08:00"))["ops"] == "wang-lei"


def test_office_roles_only_in_office_hours() -> None:
    assert "security" in holders(LAB, local("2026-12-03T09:00"))
    assert "security" not in holders(LAB, local("2026-12-03T08:59"))
    assert "security" not in holders(LAB, local("2026-12-05T10:00"))  # Saturday
    assert "application" not in holders(LAB, local("2026-12-03T18:00"))


def test_any_time_zone_in_gives_the_same_answer() -> None:
    # 2026-12-05 19:00 UTC is Sunday 03:00 in Shanghai.
    assert holders(LAB, datetime(2026, 12, 5, 19, 0, tzinfo=UTC)) == holders(LAB, local("2026-12-06T03:00"))
    assert on_duty(LAB, local("2026-12-06T03:00"))[0].start.tzinfo == SHANGHAI


def test_naive_times_are_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        on_duty(LAB, datetime(2026, 12, 6, 3, 0))


def test_before_the_rotation_starts_nobody_holds_it() -> None:
    assert holders(LAB, local("2026-11-01T12:00")) == {}
    assert holders(LAB, local("2026-11-02T07:59")) == {}  # the first night shift starts Monday 18:00
    assert holders(LAB, local("2026-11-02T08:00"))["duty"] == "wang-lei"


def test_round_the_clock_roles_are_held_every_minute_of_a_week() -> None:
    for path in (LAB_TOPOLOGY.parent / "oncall.yml", TERTIARY_TOPOLOGY.parent / "oncall.yml"):
        oncall = load_oncall(path)
        at = local("2026-12-07T00:00")
        for _ in range(7 * 48):
            assert set(oncall.round_the_clock) <= set(holders(oncall, at)), at
            at += timedelta(minutes=30)


def test_daily_period_changes_every_night() -> None:
    tertiary = load_oncall(TERTIARY_TOPOLOGY.parent / "oncall.yml")
    nights = [holders(tertiary, local(f"2026-12-{day:02d}T23:00"))["duty"] for day in (7, 8, 9, 10)]
    # 2026-12-07 is 336 days (a multiple of 3) after the rotation starts.
    assert nights == ["han-mei", "deng-chao", "it-duty-room", "han-mei"]


def tiny(zone: str) -> OnCall:
    person = [Person(p, p, ("duty",), (Channel("email", address=f"{p}@x.test"),)) for p in ("a", "b")]
    night = Shift((6,), time(22, 0), time(6, 0))  # Sunday nights only
    rotation = Rotation("n", "duty", date(2026, 3, 2), 7, ("a", "b"), (night,))
    return OnCall("test", zone, tuple(person), (rotation,))


def test_wall_clock_in_a_zone_with_daylight_saving() -> None:
    # Europe/Berlin goes to summer time on 2026-03-29 at 02:00: the night of the 29th is an hour shorter.
    oncall = tiny("Europe/Berlin")
    berlin = ZoneInfo("Europe/Berlin")
    shifts = duties(oncall, datetime(2026, 3, 22, tzinfo=berlin), datetime(2026, 4, 1, tzinfo=berlin))
    assert [(d.person.id, d.start.isoformat(), d.end.isoformat()) for d in shifts] == [
        ("a", "2026-03-22T22:00:00+01:00", "2026-03-23T06:00:00+01:00"),
        ("b", "2026-03-29T22:00:00+02:00", "2026-03-30T06:00:00+02:00"),
    ]
    assert holders(oncall, datetime(2026, 3, 23, 4, 59, tzinfo=UTC)) == {"duty": "a"}
    assert holders(oncall, datetime(2026, 3, 23, 5, 0, tzinfo=UTC)) == {}
