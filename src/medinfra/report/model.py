"""What every report format shows, read from one findings document (medinfra-findings/1).

Renderers take a `Report` and never re-derive results: clause, zone and host results are computed
here once. Reading from the document rather than from live objects lets `medinfra report`
re-render a past run exactly as it was judged, with the catalog texts of that run.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from medinfra.audit.results import FINDINGS_FORMAT, Tally, tally
from medinfra.compliance.model import SEVERITIES, Bilingual, Finding, Status, Waiver
from medinfra.history.diff import RunDiff
from medinfra.history.store import RunInfo

# A clause's result over the findings of the controls that cover it. `manual`: no control decides it.
CLAUSE_RESULTS = ("fail", "error", "pass", "not_applicable", "manual")


@dataclass(frozen=True)
class ControlInfo:
    id: str
    title: Bilingual
    description: Bilingual
    rationale: Bilingual
    severity: str
    area: str
    references: Mapping[str, tuple[str, ...]]
    remediation_role: str
    remediation_variables: tuple[str, ...]
    remediation: Bilingual


@dataclass(frozen=True)
class WaiverInfo:
    waiver: Waiver
    state: str
    applied: int
    expired_matches: int


@dataclass(frozen=True)
class HostInfo:
    name: str
    zone: str
    status: str
    reason: str
    collected_at: str | None
    tally: Tally


@dataclass(frozen=True)
class ClauseResult:
    id: str
    title: Bilingual
    coverage: str
    note: Bilingual | None
    controls: tuple[str, ...]
    result: str
    tally: Tally


@dataclass(frozen=True)
class FrameworkResult:
    id: str
    title: Bilingual
    tally: Tally
    clauses: tuple[ClauseResult, ...]

    def clause_results(self) -> Counter[str]:
        return Counter(clause.result for clause in self.clauses)

    def coverage(self) -> Counter[str]:
        return Counter(clause.coverage for clause in self.clauses)


@dataclass(frozen=True)
class ControlResult:
    """One control across hosts: what the findings section of the HTML lists."""

    control: ControlInfo
    tally: Tally
    findings: tuple[Finding, ...]

    def with_status(self, *statuses: Status) -> list[Finding]:
        return [f for f in self.findings if f.status in statuses]


@dataclass(frozen=True)
class Report:
    run_id: str
    site: str
    inventory: str
    transport: str
    generator: str
    started_at: str
    seconds: float
    hosts: tuple[HostInfo, ...]
    controls: Mapping[str, ControlInfo]
    findings: tuple[Finding, ...]
    frameworks: tuple[FrameworkResult, ...]
    waivers: tuple[WaiverInfo, ...]
    overall: Tally
    zones: Mapping[str, Tally]
    # From the history store: this site's runs up to this one (oldest first), and the change since the last.
    trend: Sequence[RunInfo] = ()
    changes: RunDiff | None = None
    previous: RunInfo | None = None
    by_control: Mapping[str, ControlResult] = field(default_factory=dict)

    def failing_controls(self) -> list[ControlResult]:
        """Controls with a failure, error or waiver first (most severe, most hosts), then the rest."""

        def order(item: ControlResult) -> tuple[int, int, int, str]:
            bad = item.tally.counts.get(Status.FAIL, 0) + item.tally.counts.get(Status.ERROR, 0)
            return (0 if bad else 1, -SEVERITIES.index(item.control.severity), -bad, item.control.id)

        return sorted(self.by_control.values(), key=order)


class ReportInputError(ValueError):
    """The document is not a findings document this version can read."""


def bilingual(record: Mapping[str, str]) -> Bilingual:
    return Bilingual(en=record["en"], zh=record["zh"])


def control_info(control_id: str, record: Mapping[str, Any]) -> ControlInfo:
    remediation = record["remediation"]
    return ControlInfo(
        id=control_id,
        title=bilingual(record["title"]),
        description=bilingual(record["description"]),
        rationale=bilingual(record["rationale"]),
        severity=record["severity"],
        area=record["area"],
        references={k: tuple(v) for k, v in record["references"].items()},
        remediation_role=remediation["role"],
        remediation_variables=tuple(remediation["variables"]),
        remediation=bilingual(remediation["text"]),
    )


def waiver_info(record: Mapping[str, Any]) -> WaiverInfo:
    waiver = Waiver(
        control=record["control"],
        hosts=tuple(record["hosts"]),
        groups=tuple(record["groups"]),
        justification=record["justification"],
        approver=record["approver"],
        risk=record["risk"],
        risk_acceptance=record["risk_acceptance"],
        compensating_control=record["compensating_control"],
        expires=date.fromisoformat(record["expires"]),
    )
    return WaiverInfo(waiver, record["state"], record["applied"], record["expired_matches"])


def finding(record: Mapping[str, Any], waivers: Sequence[WaiverInfo]) -> Finding:
    waiver, expired = record.get("waiver"), record.get("expired_waiver")
    return Finding(
        host=record["host"],
        control=record["control"],
        status=Status(record["status"]),
        reason=record["reason"],
        evidence=record["evidence"],
        waiver=waivers[waiver].waiver if waiver is not None else None,
        expired_waiver=waivers[expired].waiver if expired is not None else None,
    )


def clause_result(coverage: str, controls: Sequence[str], findings: Iterable[Finding]) -> tuple[str, Tally]:
    counts = tally(findings)
    if coverage in ("manual", "not_covered") or not controls:
        return "manual", counts
    if counts.counts.get(Status.FAIL):
        return "fail", counts
    if counts.counts.get(Status.ERROR):
        return "error", counts
    if counts.decided:
        return "pass", counts
    return "not_applicable", counts


def summary_tally(counts: Mapping[str, Any]) -> Tally:
    """A tally as the document's summary recorded it."""
    return Tally(Counter({status: int(counts[status.value]) for status in Status}))


def framework_results(
    frameworks: Mapping[str, Any], per_framework: Mapping[str, Any], by_control: Mapping[str, list[Finding]]
) -> tuple[FrameworkResult, ...]:
    results = []
    for name, record in frameworks.items():
        clauses = []
        for clause in record["clauses"]:
            covering = tuple(clause["controls"])
            result, counts = clause_result(
                clause["coverage"], covering, (f for control in covering for f in by_control.get(control, ()))
            )
            note = clause.get("note")
            clauses.append(
                ClauseResult(
                    clause["id"], bilingual(clause["title"]), clause["coverage"],
                    bilingual(note) if note else None, covering, result, counts,
                )
            )
        results.append(
            FrameworkResult(name, bilingual(record["title"]), summary_tally(per_framework[name]), tuple(clauses))
        )
    return tuple(results)


def build_report(
    document: Mapping[str, Any],
    trend: Sequence[RunInfo] = (),
    changes: RunDiff | None = None,
    previous: RunInfo | None = None,
) -> Report:
    """The report of one run; `trend` and `changes` come from the history store when there is one."""
    if document.get("format") != FINDINGS_FORMAT:
        raise ReportInputError(f"format is {document.get('format')!r}, expected {FINDINGS_FORMAT!r}")
    try:
        controls = {cid: control_info(cid, record) for cid, record in document["controls"].items()}
        waivers = tuple(waiver_info(record) for record in document.get("waivers", ()))
        findings = tuple(finding(record, waivers) for record in document["findings"])
        zone_of = {h["name"]: h.get("zone") or "-" for h in document["hosts"]}
        by_control: dict[str, list[Finding]] = {}
        by_zone: dict[str, list[Finding]] = {}
        for item in findings:
            by_control.setdefault(item.control, []).append(item)
            by_zone.setdefault(zone_of.get(item.host, "-"), []).append(item)
        per_host = document["summary"]["per_host"]
        hosts = tuple(
            HostInfo(h["name"], zone_of[h["name"]], h["status"], h["reason"], h.get("collected_at"),
                     summary_tally(per_host[h["name"]]) if h["name"] in per_host else tally(()))
            for h in document["hosts"]
        )
        frameworks = framework_results(document["frameworks"], document["summary"]["per_framework"], by_control)
        return Report(
            run_id=document["run_id"],
            site=document["site"],
            inventory=document["inventory"],
            transport=document["transport"],
            generator=document["generator"],
            started_at=document["started_at"],
            seconds=float(document["seconds"]),
            hosts=hosts,
            controls=controls,
            findings=findings,
            frameworks=frameworks,
            waivers=waivers,
            overall=summary_tally(document["summary"]["overall"]),
            zones={zone: tally(items) for zone, items in sorted(by_zone.items())},
            trend=trend,
            changes=changes,
            previous=previous,
            by_control={
                cid: ControlResult(controls[cid], tally(by_control.get(cid, ())), tuple(by_control.get(cid, ())))
                for cid in controls
            },
        )
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise ReportInputError(f"not a complete findings document: {type(exc).__name__}: {exc}") from None
