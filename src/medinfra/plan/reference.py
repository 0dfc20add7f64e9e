"""The reference table of hospital scales and the constants of the team estimate, read from scales.yml."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

import yaml

from medinfra.compliance.model import Bilingual

SCALES_FILE = "scales.yml"


@dataclass(frozen=True)
class Scale:
    key: str
    name: Bilingual
    people: tuple[int, int]  # the reference range, inclusive
    up_to_servers: int | None  # None: every larger site


@dataclass(frozen=True)
class RoleModel:
    """FTE = base + the sum of count x weight over `per` (count names as in team.Counts)."""

    key: str
    name: Bilingual
    base: float
    per: Mapping[str, float]


@dataclass(frozen=True)
class DutyModel:
    name: Bilingual
    week_hours: int
    business_hours: int
    fte_hours: int
    availability: float
    on_call_weight: float
    on_site_from_servers: int
    min_rota: int

    @property
    def available_hours(self) -> float:
        """The hours one FTE really covers in a week, leave and training deducted."""
        return self.fte_hours * self.availability

    @property
    def seat_fte(self) -> float:
        """The FTE one seat kept round the clock takes: the whole week over what an FTE covers."""
        return self.week_hours / self.available_hours

    @property
    def off_hours(self) -> int:
        """Nights and weekends: the week less the day team's business hours."""
        return self.week_hours - self.business_hours


@dataclass(frozen=True)
class Reference:
    source: Bilingual  # where the scales come from
    constants_source: Bilingual  # why the constants are what they are
    scales: tuple[Scale, ...]  # smallest first
    endpoint_services: frozenset[str]
    application_services: frozenset[str]
    relay_service: str
    roles: tuple[RoleModel, ...]
    duty: DutyModel
    spread: float

    def scale(self, key: str) -> Scale:
        return next(s for s in self.scales if s.key == key)


def _bilingual(data: Mapping[str, str]) -> Bilingual:
    return Bilingual(en=data["en"], zh=data["zh"])


def reference_from_dict(data: Mapping[str, Any]) -> Reference:
    """The reference from scales.yml's plain data (KeyError or TypeError when a key is missing or mistyped)."""
    duty = data["duty"]
    return Reference(
        source=_bilingual(data["source"]["scales"]),
        constants_source=_bilingual(data["source"]["constants"]),
        scales=tuple(
            Scale(key, _bilingual(scale["name"]), (scale["people"][0], scale["people"][1]), scale.get("up_to_servers"))
            for key, scale in data["scales"].items()
        ),
        endpoint_services=frozenset(data["endpoint_services"]),
        application_services=frozenset(data["application_services"]),
        relay_service=data["relay_service"],
        roles=tuple(
            RoleModel(key, _bilingual(role["name"]), float(role["base"]), {k: float(v) for k, v in role["per"].items()})
            for key, role in data["roles"].items()
        ),
        duty=DutyModel(
            name=_bilingual(duty["name"]),
            week_hours=duty["week_hours"],
            business_hours=duty["business_hours"],
            fte_hours=duty["fte_hours"],
            availability=float(duty["availability"]),
            on_call_weight=float(duty["on_call_weight"]),
            on_site_from_servers=duty["on_site_from_servers"],
            min_rota=duty["min_rota"],
        ),
        spread=float(data["spread"]),
    )


@cache
def load_reference() -> Reference:
    """The reference installed with medinfra (package data, not user input: a fault here is a bug, and a test's)."""
    text = resources.files("medinfra.plan").joinpath(SCALES_FILE).read_text(encoding="utf-8")
    return reference_from_dict(yaml.safe_load(text))
