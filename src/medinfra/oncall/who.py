"""`medinfra oncall who`: who holds each role at an instant, for people (text) and tools (JSON); never a URL."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from medinfra.oncall.model import ROLES, Duty, OnCall
from medinfra.oncall.schedule import on_duty
from medinfra.safe_text import one_line

SCHEMA = "medinfra-oncall-who/1"


def parse_time(text: str | None, now: datetime, timezone: str) -> datetime:
    """An ISO time (the site's time zone unless it names one), or ``now``; ValueError when unreadable."""
    if text is None:
        return now.astimezone(ZoneInfo(timezone))
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=ZoneInfo(timezone))
    return moment.astimezone(ZoneInfo(timezone))


def _kinds(duty: Duty) -> list[str]:
    return sorted({c.kind for c in duty.person.channels})


def who_record(oncall: OnCall, at: datetime) -> dict[str, Any]:
    duties = on_duty(oncall, at)
    held = {d.role for d in duties}
    return {
        "schema": SCHEMA,
        "at": at.isoformat(),
        "timezone": oncall.timezone,
        "on_duty": [
            {
                "role": d.role,
                "person": d.person.id,
                "name": d.person.name,
                "channels": _kinds(d),
                "rotation": d.rotation,
                "from": d.start.isoformat(),
                "until": d.end.isoformat(),
            }
            for d in duties
        ],
        "not_held": [role for role in ROLES if role not in held and any(r.role == role for r in oncall.rotations)],
        "escalation": [e.to_dict() for e in oncall.escalations],
    }


def who_text(oncall: OnCall, at: datetime) -> str:
    record = who_record(oncall, at)
    lines = [f"On duty at {at:%Y-%m-%d %H:%M} ({oncall.timezone}, {at:%A}):"]
    for duty in record["on_duty"]:
        shift = f"{duty['from'][:16].replace('T', ' ')} - {duty['until'][:16].replace('T', ' ')}"
        lines.append(
            f"  {duty['role']:<12} {duty['name']} ({duty['person']})  via {', '.join(duty['channels'])}"
            f"  [{duty['rotation']}: {shift}]"
        )
    if not record["on_duty"]:
        lines.append("  nobody (before every rotation's start)")
    if record["not_held"]:
        lines.append(f"Not held at this time: {', '.join(record['not_held'])}")
    for escalation in oncall.escalations:
        target = f"role {escalation.to_role}" if escalation.to_role else f"person {escalation.to_person}"
        after = f"after {escalation.after_minutes} min unacknowledged"
        lines.append(f"Escalation: {escalation.from_role} -> {target} {after}")
    return "\n".join(one_line(line) for line in lines)
