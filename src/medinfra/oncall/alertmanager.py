"""The rota as Alertmanager 0.25 configuration (pure): per-person receivers, routes active only while the person is
on duty, escalation routes that wait N minutes, and the `time_intervals` that say when.

Alertmanager has no notion of a rotation, so the rotations are unrolled over a horizon (``weeks`` from the Monday of
the week ``now`` falls in) into concrete dates: ``years``/``months``/``days_of_month`` plus ``times`` in the site's
``location``. The monitoring_server role compiles it on every run, so a weekly converge keeps the horizon 25 weeks
ahead; past the horizon nobody is on the rota and alerts reach only the SLA route's own receiver, as without a rota.

Routing: every route in ``routes`` (an SLA route of alertmanager.yml.j2, by its receiver name) gets child routes,
all with ``continue: true`` because a route matches whatever the time (time intervals only mute notifications):

1. the route's own receiver, so the existing receivers keep getting what they got;
2. per escalation from the route's role, a route whose ``group_wait`` is the escalation's delay, with a child per
   person who may hold the target role (active while they do) or the one target person. A silence is the
   acknowledgement: Alertmanager drops silenced alerts before notifying, so a silenced alert never escalates;
3. per person of the route's role, a route active while that person holds it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from medinfra.oncall.model import Channel, OnCall, Person
from medinfra.oncall.schedule import duties

DEFAULT_WEEKS = 26
MIDNIGHT = time(0, 0)
RELAYED = ("wecom", "dingtalk")


@dataclass
class Compiled:
    """What alertmanager.yml.j2 and the relay need, as plain JSON-ready data."""

    routes: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    receivers: list[dict[str, Any]] = field(default_factory=list)
    time_intervals: list[dict[str, Any]] = field(default_factory=list)
    # Relay target key -> {kind, url}: the relay's credential file, never alertmanager.yml.
    relay_targets: dict[str, dict[str, str]] = field(default_factory=dict)
    # Channels left out: "person: kind (why)"; for the role to show, never with a URL.
    skipped: list[str] = field(default_factory=list)
    horizon_start: str = ""
    horizon_end: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "routes": self.routes,
            "receivers": self.receivers,
            "time_intervals": self.time_intervals,
            "relay_targets": self.relay_targets,
            "skipped": self.skipped,
            "horizon_start": self.horizon_start,
            "horizon_end": self.horizon_end,
        }


def horizon(oncall: OnCall, now: datetime, weeks: int) -> tuple[datetime, datetime]:
    """From Monday 00:00 (site time) of the week ``now`` falls in: the same config all week, idempotent runs."""
    zone = ZoneInfo(oncall.timezone)
    today = now.astimezone(zone).date()
    monday = today - timedelta(days=today.weekday())
    start = datetime.combine(monday, MIDNIGHT, zone)
    return start, datetime.combine(monday + timedelta(weeks=weeks), MIDNIGHT, zone)


def _day_pieces(start: datetime, end: datetime) -> list[tuple[date, time, time | None]]:
    """[start, end) in wall-clock time, split at midnights; None as an end means 24:00."""
    pieces: list[tuple[date, time, time | None]] = []
    day, clock = start.date(), start.time()
    while (day, clock) < (end.date(), end.time()):
        pieces.append((day, clock, end.time() if day == end.date() else None))
        day, clock = day + timedelta(days=1), MIDNIGHT
    return pieces


def _clock(value: time | None) -> str:
    return "24:00" if value is None else f"{value:%H:%M}"


def _entries(pieces: list[tuple[date, time, time | None]], location: str) -> list[dict[str, Any]]:
    """Alertmanager time interval entries for a set of wall-clock pieces: each day's times, then runs of days of one
    month with the same times as one ``days_of_month`` range."""
    by_day: dict[date, list[tuple[time, time | None]]] = defaultdict(list)
    for day, begin, end in sorted(pieces, key=lambda p: (p[0], p[1])):
        spans = by_day[day]
        if spans and spans[-1][1] == begin:  # contiguous: 00:00-08:00 then 08:00-24:00 is the whole day
            spans[-1] = (spans[-1][0], end)
        else:
            spans.append((begin, end))
    entries: list[dict[str, Any]] = []
    run: tuple[date, date, tuple[tuple[time, time | None], ...]] | None = None
    for day in sorted(by_day):
        times = tuple(by_day[day])
        if run and run[1] + timedelta(days=1) == day and run[1].month == day.month and run[2] == times:
            run = (run[0], day, times)
            continue
        if run:
            entries.append(_entry(*run, location))
        run = (day, day, times)
    if run:
        entries.append(_entry(*run, location))
    return entries


def _entry(first: date, last: date, spans: tuple[tuple[time, time | None], ...], location: str) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "years": [str(first.year)],
        "months": [str(first.month)],
        "days_of_month": [str(first.day) if first == last else f"{first.day}:{last.day}"],
        "location": location,
    }
    if spans != ((MIDNIGHT, None),):
        entry["times"] = [{"start_time": _clock(b), "end_time": _clock(e)} for b, e in spans]
    return entry


def _receiver(
    name: str, person: Person, urls: Mapping[str, str], relay_url: str, email: bool, compiled: Compiled
) -> dict[str, Any]:
    receiver: dict[str, Any] = {"name": name}
    for index, channel in enumerate(person.channels):
        url = _url(channel, urls)
        if channel.kind == "email":
            if email:
                receiver.setdefault("email_configs", []).append({"to": channel.address, "send_resolved": True})
            else:
                _skip(compiled, f"{person.id}: email (no SMTP server configured)")
        elif url is None:
            _skip(compiled, f"{person.id}: {channel.kind} webhook (vault variable {channel.url_vault} is not set)")
        elif channel.kind in RELAYED:
            key = f"{person.id}-{channel.kind}-{index}"
            compiled.relay_targets[key] = {"kind": channel.kind, "url": url}
            webhook = {"url": f"{relay_url.rstrip('/')}/{key}", "send_resolved": True}
            receiver.setdefault("webhook_configs", []).append(webhook)
        else:
            receiver.setdefault("webhook_configs", []).append({"url": url, "send_resolved": True})
    return receiver


def _url(channel: Channel, urls: Mapping[str, str]) -> str | None:
    if channel.url_vault is not None:
        return urls.get(channel.url_vault) or None
    return channel.url


def _skip(compiled: Compiled, text: str) -> None:
    if text not in compiled.skipped:
        compiled.skipped.append(text)


def compile_alertmanager(
    oncall: OnCall,
    now: datetime,
    routes: Mapping[str, str],
    urls: Mapping[str, str],
    relay_url: str,
    email: bool,
    weeks: int = DEFAULT_WEEKS,
) -> Compiled:
    """The rota compiled for the ``weeks`` from the Monday of ``now``'s week.

    ``routes``: SLA route receiver name -> the role that route's alerts go to first (e.g. pager -> duty).
    ``urls``: vault variable -> webhook URL (unset variables skip their channel). ``relay_url``: the WeCom/DingTalk
    relay's base URL. ``email``: whether Alertmanager has an SMTP server to send email with.
    """
    compiled = Compiled()
    start, end = horizon(oncall, now, weeks)
    compiled.horizon_start, compiled.horizon_end = start.isoformat(), end.isoformat()
    pieces: dict[tuple[str, str], list[tuple[date, time, time | None]]] = defaultdict(list)
    for duty in duties(oncall, start, end):
        pieces[duty.role, duty.person.id] += _day_pieces(max(duty.start, start), min(duty.end, end))
    holders: dict[str, list[str]] = defaultdict(list)
    for role, person in sorted(pieces, key=lambda key: (key[0], key[1])):
        holders[role].append(person)
        entries = _entries(pieces[role, person], oncall.timezone)
        compiled.time_intervals.append({"name": f"oncall-{role}-{person}", "time_intervals": entries})
    receivers: dict[str, dict[str, Any]] = {}

    def person_route(prefix: str, person_id: str, interval: str | None) -> dict[str, Any]:
        receiver = f"{prefix}-{person_id}"
        if receiver not in receivers:
            receivers[receiver] = _receiver(receiver, oncall.person(person_id), urls, relay_url, email, compiled)
        route: dict[str, Any] = {"receiver": receiver, "continue": True}
        if interval is not None:
            route["active_time_intervals"] = [interval]
        return route

    for route_receiver, role in sorted(routes.items()):
        children: list[dict[str, Any]] = [{"receiver": route_receiver, "continue": True}]
        for escalation in sorted(oncall.escalations, key=lambda e: e.after_minutes):
            if escalation.from_role != role:
                continue
            if escalation.to_person is not None:
                targets = [person_route("escalated", escalation.to_person, None)]
            else:
                target = str(escalation.to_role)
                targets = [person_route("escalated", p, f"oncall-{target}-{p}") for p in holders.get(target, [])]
            if targets:
                step = {"receiver": route_receiver, "continue": True, "group_wait": f"{escalation.after_minutes}m"}
                children.append({**step, "routes": targets})
        children += [person_route("oncall", p, f"oncall-{role}-{p}") for p in holders.get(role, [])]
        compiled.routes[route_receiver] = children
    compiled.receivers = [receivers[name] for name in sorted(receivers)]
    return compiled
