"""What every report format shows, read from one findings document (medinfra-findings/1).

Renderers take a `Report` and never re-derive results: clause, zone and host results are computed
here once. Reading from the document rather than from live objects lets `medinfra report`
re-render a past run exactly as it was judged, with the catalog texts of that run.

The document's text came from hosts or from whoever sent the file: every string a format shows passes
safe_text.clean here (evidence in texts.evidence_text), so no format receives NUL, ESC or a bidi override.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from medinfra.audit.results import Tally, tally
from medinfra.compliance.model import SEVERITIES, Bilingual, Finding, Status, Waiver
from medinfra.history.diff import RunDiff
from medinfra.history.store import RunInfo
from medinfra.runbook import Runbook, build_runbook
from medinfra.safe_text import clean, cleaned

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
    remediation_tags: tuple[str, ...] = ()
    remediation_manual: bool = False
    # Set from the catalog in use by `medinfra fix` (reports do not record it): see Remediation.with_services.
    remediation_with_services: tuple[str, ...] = ()
    runbook: Runbook | None = None


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
class InterfaceState:
    """A clinical interface a host serves and what its protocol probe last answered (up None: not known)."""

    name: str
    source: str
    destination: str
    protocol: str
    port: int
    tls: bool
    owner: str
    vendor: str | None
    sla: str
    up: bool | None
    result: str | None
    latency_seconds: float | None


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
class HistoryContext:
    """Where a run stands among its site's recorded runs: what the HTML's trend and changes show."""

    run: RunInfo | None = None  # this run as recorded, once it is
    earlier: Sequence[RunInfo] = ()  # the site's runs before it, oldest first
    changes: RunDiff | None = None  # since the last of `earlier`

    @property
    def previous(self) -> RunInfo | None:
        return self.earlier[-1] if self.earlier else None


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
    history: HistoryContext = HistoryContext()
    by_control: Mapping[str, ControlResult] = field(default_factory=dict)
    interfaces: tuple[InterfaceState, ...] = ()

    def failing_controls(self) -> list[ControlResult]:
        """Controls with a failure, error or waiver first (most severe, most hosts), then the rest."""

        def order(item: ControlResult) -> tuple[int, int, int, str]:
            bad = item.tally.counts.get(Status.FAIL, 0) + item.tally.counts.get(Status.ERROR, 0)
            return (0 if bad else 1, -SEVERITIES.index(item.control.severity), -bad, item.control.id)

        return sorted(self.by_control.values(), key=order)


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
        remediation_tags=tuple(remediation.get("tags", ())),
        remediation_manual=remediation.get("manual", False),
        runbook=build_runbook(record["runbook"], control_id, "control", "") if "runbook" in record else None,
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
    """One finding; its evidence is cleaned where it is shown (texts.evidence_text)."""
    waiver, expired = record.get("waiver"), record.get("expired_waiver")
    return Finding(
        host=clean(record["host"]),
        control=clean(record["control"]),
        status=Status(record["status"]),
        reason=clean(record["reason"]),
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


def build_report(document: Mapping[str, Any], history: HistoryContext = HistoryContext()) -> Report:
    """The report of one run from a valid findings document (report.findings_file checks one someone sent)."""
    head = cleaned({key: value for key, value in document.items() if key != "findings"})
    controls = {cid: control_info(cid, record) for cid, record in head["controls"].items()}
    waivers = tuple(waiver_info(record) for record in head.get("waivers", ()))
    findings = tuple(finding(record, waivers) for record in document["findings"])
    zone_of = {h["name"]: h.get("zone") or "-" for h in head["hosts"]}
    by_control: dict[str, list[Finding]] = {}
    by_zone: dict[str, list[Finding]] = {}
    for item in findings:
        by_control.setdefault(item.control, []).append(item)
        by_zone.setdefault(zone_of.get(item.host, "-"), []).append(item)
    per_host = head["summary"]["per_host"]
    hosts = tuple(
        HostInfo(h["name"], zone_of[h["name"]], h["status"], h["reason"], h.get("collected_at"),
                 summary_tally(per_host[h["name"]]) if h["name"] in per_host else tally(()))
        for h in head["hosts"]
    )
    return Report(
        run_id=head["run_id"],
        site=head["site"],
        inventory=head["inventory"],
        transport=head["transport"],
        generator=head["generator"],
        started_at=head["started_at"],
        seconds=float(head["seconds"]),
        hosts=hosts,
        controls=controls,
        findings=findings,
        frameworks=framework_results(head["frameworks"], head["summary"]["per_framework"], by_control),
        waivers=waivers,
        overall=summary_tally(head["summary"]["overall"]),
        zones={zone: tally(items) for zone, items in sorted(by_zone.items())},
        history=history,
        by_control={
            cid: ControlResult(controls[cid], tally(by_control.get(cid, ())), tuple(by_control.get(cid, ())))
            for cid in controls
        },
        interfaces=tuple(
            InterfaceState(
                i["name"], i["from"], h["name"], i["protocol"], i["port"], i["tls"], i["owner"], i["vendor"], i["sla"],
                i["up"], i["result"], i["latency_seconds"],
            )
            for h in head["hosts"]
            for i in h.get("interfaces", ())
        ),
    )
