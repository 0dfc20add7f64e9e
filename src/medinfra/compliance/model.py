"""Plain data passed between the catalog, the evaluator, the transports and the renderers."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from medinfra.runbook import Runbook

FRAMEWORKS = ("hipaa", "gbt22239", "cis_debian12")
SEVERITIES = ("low", "medium", "high", "critical")


@dataclass(frozen=True)
class Bilingual:
    en: str
    zh: str


@dataclass(frozen=True)
class Remediation:
    role: str
    variables: tuple[str, ...]
    text: Bilingual
    tags: tuple[str, ...] = ()  # the role's tags that repair the control; empty when manual
    manual: bool = False  # no converge repairs it: people act on the text
    # Hosts with these topology services join the fix's run: the role's play needs them (the backup server admits
    # a client's repository key).
    with_services: tuple[str, ...] = ()


@dataclass(frozen=True)
class Control:
    id: str
    title: Bilingual
    description: Bilingual
    rationale: Bilingual
    severity: str
    area: str
    check: Mapping[str, Any]
    applies_when: Mapping[str, Any] | None
    remediation: Remediation
    references: Mapping[str, tuple[str, ...]]
    source: str
    runbook: Runbook | None = None  # what the night shift does when it fails (medinfra.runbook)


@dataclass(frozen=True)
class Clause:
    id: str
    title: Bilingual
    coverage: str
    note: Bilingual | None
    # The assessment standard's evaluation unit for the clause (GB/T 28448-2019 for gbt22239), where known.
    evaluation_unit: str | None = None


@dataclass(frozen=True)
class Framework:
    id: str
    title: Bilingual
    source: str
    clauses: tuple[Clause, ...]

    def clause_ids(self) -> frozenset[str]:
        return frozenset(clause.id for clause in self.clauses)


@dataclass(frozen=True)
class Catalog:
    controls: tuple[Control, ...]
    frameworks: Mapping[str, Framework]

    def by_id(self) -> dict[str, Control]:
        return {control.id: control for control in self.controls}

    def covering(self, framework: str, clause: str) -> tuple[str, ...]:
        """Ids of the controls that reference a clause (the one place this mapping is kept)."""
        return tuple(c.id for c in self.controls if clause in c.references.get(framework, ()))


@dataclass(frozen=True)
class Waiver:
    """An accepted exception: who accepted which residual risk, what compensates, and until when."""

    control: str
    hosts: tuple[str, ...]
    groups: tuple[str, ...]
    justification: str
    approver: str
    risk: str
    risk_acceptance: str
    compensating_control: str
    expires: date

    def covers(self, host: str, groups: Iterable[str]) -> bool:
        """Host name matches one of the shell patterns, or the host is in one of the inventory groups."""
        return any(fnmatchcase(host, pattern) for pattern in self.hosts) or not set(self.groups).isdisjoint(groups)

    def expired(self, today: date) -> bool:
        return self.expires < today


class Status(StrEnum):
    PASS = "pass"
    FAIL = "fail"
    NOT_APPLICABLE = "not_applicable"
    ERROR = "error"
    WAIVED = "waived"


@dataclass(frozen=True)
class HostEvidence:
    """What one host showed, plus the inventory's view of it (services, zone, legacy)."""

    host: str
    evidence: Mapping[str, Any]
    inventory: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Finding:
    host: str
    control: str
    status: Status
    reason: str
    evidence: Mapping[str, Any]
    waiver: Waiver | None = None
    # A failure that an expired waiver would have covered: reported so someone renews or fixes it.
    expired_waiver: Waiver | None = None
