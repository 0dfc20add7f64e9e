"""The on-call rota as plain, immutable data; `to_dict`/`from_dict` are its one plain-data form (the inventory's
``medinfra_oncall``, read by the monitoring_server role's filter)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time
from typing import Any

ROLES = ("ops", "network", "application", "security", "duty", "vendor")
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
DAY_SETS = {"daily": tuple(range(7)), "weekdays": tuple(range(5)), "weekend": (5, 6)}
PERIOD_DAYS = {"weekly": 7, "daily": 1}


@dataclass(frozen=True)
class Channel:
    """How a person is reached: kind email (address) or a webhook kind wecom, dingtalk or generic.

    A webhook's URL carries its robot's token: either ``url`` itself or ``url_vault``, the name of the Ansible
    variable (vaulted) holding it. Neither is ever shown (repr=False) nor printed by medinfra.
    """

    kind: str
    address: str | None = None
    url: str | None = field(default=None, repr=False)
    url_vault: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "address": self.address, "url": self.url, "url_vault": self.url_vault}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Channel:
        return cls(data["kind"], data.get("address"), data.get("url"), data.get("url_vault"))

    @classmethod
    def from_document(cls, data: Mapping[str, Any]) -> Channel:
        if data["type"] == "email":
            return cls("email", address=data["address"])
        url = data["url"]
        if isinstance(url, Mapping):
            return cls(data["kind"], url_vault=url["vault"])
        return cls(data["kind"], url=url)


@dataclass(frozen=True)
class Person:
    id: str
    name: str
    roles: tuple[str, ...]
    channels: tuple[Channel, ...]
    vendor: str | None = None
    phone: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "roles": list(self.roles),
            "channels": [c.to_dict() for c in self.channels],
            "vendor": self.vendor,
            "phone": self.phone,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], document: bool = False) -> Person:
        """The model of `to_dict`'s output, or of a person as oncall.yml writes one: only the channels differ."""
        channel = Channel.from_document if document else Channel.from_dict
        return cls(
            id=data["id"],
            name=data["name"],
            roles=tuple(data["roles"]),
            channels=tuple(channel(c) for c in data["channels"]),
            vendor=data.get("vendor"),
            phone=data.get("phone"),
        )


@dataclass(frozen=True)
class Shift:
    """Starts on each of ``days`` (0 = Monday) at ``start``; ends at ``end`` that day, or the next day when ``end``
    is not after ``start`` (18:00-08:00 is a night shift; 08:00-08:00 lasts 24 hours)."""

    days: tuple[int, ...]
    start: time
    end: time

    @property
    def crosses_midnight(self) -> bool:
        return self.end <= self.start

    @property
    def minutes(self) -> int:
        length = (self.end.hour * 60 + self.end.minute) - (self.start.hour * 60 + self.start.minute)
        return length if length > 0 else length + 1440

    def label(self) -> str:
        return f"{self.start:%H:%M}-{self.end:%H:%M}"

    def to_dict(self) -> dict[str, Any]:
        return {"days": [WEEKDAYS[d] for d in self.days], "start": f"{self.start:%H:%M}", "end": f"{self.end:%H:%M}"}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Shift:
        days = data["days"]
        numbers = DAY_SETS[days] if isinstance(days, str) else tuple(sorted(WEEKDAYS.index(d) for d in days))
        return cls(numbers, time.fromisoformat(data["start"]), time.fromisoformat(data["end"]))


@dataclass(frozen=True)
class Rotation:
    """``people`` take turns, one period (a week or a day) each from ``start``; a shift belongs to the period of
    the day it starts (a night shift beginning on the last day of a week ends in the next week, same person)."""

    name: str
    role: str
    start: date
    period_days: int
    people: tuple[str, ...]
    shifts: tuple[Shift, ...]

    def person_for(self, day: date) -> str | None:
        """Who holds the shifts starting on ``day``; None before the rotation begins."""
        if day < self.start:
            return None
        return self.people[((day - self.start).days // self.period_days) % len(self.people)]

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "role": self.role,
            "start": self.start.isoformat(),
            "period": next(name for name, days in PERIOD_DAYS.items() if days == self.period_days),
            "people": list(self.people),
            "shifts": [s.to_dict() for s in self.shifts],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Rotation:
        return cls(
            name=data["name"],
            role=data["role"],
            start=date.fromisoformat(str(data["start"])),
            period_days=PERIOD_DAYS[data.get("period", "weekly")],
            people=tuple(data["people"]),
            shifts=tuple(Shift.from_dict(s) for s in data["shifts"]),
        )


@dataclass(frozen=True)
class Escalation:
    """Alerts first sent to whoever holds ``from_role``, still firing and unacknowledged (not silenced)
    ``after_minutes`` later, go also to whoever then holds ``to_role``, or to ``to_person``."""

    from_role: str
    after_minutes: int
    to_role: str | None = None
    to_person: str | None = None

    def to_dict(self) -> dict[str, Any]:
        target = {"role": self.to_role} if self.to_role else {"person": self.to_person}
        return {"from": self.from_role, "after_minutes": self.after_minutes, "to": target}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Escalation:
        target = data["to"]
        return cls(data["from"], data["after_minutes"], target.get("role"), target.get("person"))


@dataclass(frozen=True)
class OnCall:
    """A validated rota: every person named exists, every 24x7 role is covered exactly once at every minute."""

    source: str
    timezone: str
    people: tuple[Person, ...]
    rotations: tuple[Rotation, ...]
    round_the_clock: tuple[str, ...] = ()
    escalations: tuple[Escalation, ...] = ()

    def person(self, person_id: str) -> Person:
        return next(p for p in self.people if p.id == person_id)

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "timezone": self.timezone,
            "people": [p.to_dict() for p in self.people],
            "rotations": [r.to_dict() for r in self.rotations],
            "round_the_clock": list(self.round_the_clock),
            "escalation": [e.to_dict() for e in self.escalations],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str | None = None, timezone: str | None = None) -> OnCall:
        """The model of `to_dict`'s output, or of an oncall.yml document (then `source` and `timezone` are given)."""
        document = source is not None
        return cls(
            source=source if source is not None else data["source"],
            timezone=timezone if timezone is not None else data["timezone"],
            people=tuple(Person.from_dict(p, document) for p in data["people"]),
            rotations=tuple(Rotation.from_dict(r) for r in data["rotations"]),
            round_the_clock=tuple(data.get("round_the_clock") or ()),
            escalations=tuple(Escalation.from_dict(e) for e in data.get("escalation") or ()),
        )


@dataclass(frozen=True)
class Duty:
    """``person`` holds ``role`` from ``start`` to ``end`` (aware datetimes in the site's time zone)."""

    role: str
    person: Person
    rotation: str
    start: datetime
    end: datetime
