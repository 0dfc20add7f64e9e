"""Who is on duty when: the rotations unrolled into concrete shifts, in the site's time zone (pure)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from medinfra.oncall.model import ROLES, Duty, OnCall, Rotation


def _rotation_duties(oncall: OnCall, rotation: Rotation, start: datetime, end: datetime) -> Iterator[Duty]:
    zone = ZoneInfo(oncall.timezone)
    # A shift lasts at most 24 hours: one that started the day before ``start`` may still run.
    day = start.astimezone(zone).date() - timedelta(days=1)
    last = end.astimezone(zone).date()
    while day <= last:
        person = rotation.person_for(day)
        for shift in rotation.shifts if person is not None else ():
            if day.weekday() not in shift.days:
                continue
            begins = datetime.combine(day, shift.start, zone)
            ends_on = day + timedelta(days=1) if shift.crosses_midnight else day
            ends = datetime.combine(ends_on, shift.end, zone)
            if begins < end and ends > start:
                yield Duty(rotation.role, oncall.person(str(person)), rotation.name, begins, ends)
        day += timedelta(days=1)


def duties(oncall: OnCall, start: datetime, end: datetime) -> list[Duty]:
    """Every shift overlapping [start, end) (aware datetimes), by start time then role."""
    found = [d for r in oncall.rotations for d in _rotation_duties(oncall, r, start, end)]
    return sorted(found, key=lambda d: (d.start, ROLES.index(d.role), d.person.id))


def on_duty(oncall: OnCall, at: datetime) -> list[Duty]:
    """Who holds each role at the instant ``at`` (an aware datetime), in the order of ROLES; a role nobody holds
    then is absent."""
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError("on_duty needs an aware datetime (with a time zone)")
    found = [d for d in duties(oncall, at, at + timedelta(microseconds=1)) if d.start <= at < d.end]
    return sorted(found, key=lambda d: (ROLES.index(d.role), d.rotation, d.person.id))
