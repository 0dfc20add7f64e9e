"""One audit run: per-host collection results, the findings, the findings document and its summary.

Both transports (pyinfra via `medinfra audit`, Ansible via playbooks/audit.yml) end here, so they
write the same document and print the same summary.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from medinfra import __version__
from medinfra.compliance.evaluate import Judgement, judgement
from medinfra.compliance.model import (
    FRAMEWORKS,
    SEVERITIES,
    Bilingual,
    Catalog,
    Control,
    Finding,
    HostEvidence,
    Status,
    Waiver,
)
from medinfra.exits import EXIT_FAILURES, EXIT_OK, EXIT_UNREACHABLE
from medinfra.runbook import runbook_data
from medinfra.safe_text import one_line
from medinfra.terminal import PLAIN, Palette

FINDINGS_FORMAT = "medinfra-findings/1"
SUMMARY_FORMAT = "medinfra-audit-summary/1"
# A 1,000-host run of 60 controls is about 25 MB of JSON; ten times that is still a plausible site. A larger
# findings.json (or stored run) is refused before it is parsed.
FINDINGS_MAX_BYTES = 256 * 1024 * 1024
HOST_STATES = ("audited", "unreachable", "error")


@dataclass(frozen=True)
class HostResult:
    """What a transport got from one host: evidence, or why there is none."""

    host: str
    status: str
    reason: str
    evidence: Mapping[str, Any] | None
    seconds: float


@dataclass(frozen=True)
class AuditRun:
    transport: str
    inventory: str
    started_at: datetime
    hosts: Sequence[HostResult]
    findings: Sequence[Finding]
    catalog: Catalog
    waivers: Sequence[Waiver] = field(default_factory=tuple)
    seconds: float = 0.0
    # The inventory's view of each host (zone, groups, site, ...), as the evaluator saw it.
    views: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    run_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    fixes: str | None = None  # the run id of the audit whose failures `medinfra fix` repaired before this run
    # What the monitoring saw of each interface a host serves (interface_states), for the reports.
    interfaces: Mapping[str, Sequence[Mapping[str, Any]]] = field(default_factory=dict)

    @property
    def site(self) -> str:
        """The topology's site name, else the inventory path: what history groups runs by."""
        names = sorted({str(v["site"]) for v in self.views.values() if v.get("site")})
        return names[0] if len(names) == 1 else self.inventory


def judge(
    results: Iterable[HostResult],
    views: Mapping[str, Mapping[str, Any]],
    catalog: Catalog,
    waivers: Sequence[Waiver],
    now: datetime,
) -> list[Finding]:
    """Findings for the hosts that gave evidence."""
    return judge_run(results, views, catalog, waivers, now).findings


def judge_run(
    results: Iterable[HostResult],
    views: Mapping[str, Mapping[str, Any]],
    catalog: Catalog,
    waivers: Sequence[Waiver],
    now: datetime,
) -> Judgement:
    """`judge`, with the site tree each host was judged with."""
    evidence = [HostEvidence(r.host, r.evidence, views.get(r.host, {})) for r in results if r.evidence is not None]
    return judgement(evidence, catalog, waivers, now)


def interface_states(judged: Judgement) -> dict[str, list[dict[str, Any]]]:
    """The probe verdict of each interface each host serves (`site.interfaces`), for hosts that serve any."""
    return {
        host: site["interfaces"]
        for host, site in judged.sites.items()
        if isinstance(site.get("interfaces"), list) and site["interfaces"]
    }


@dataclass(frozen=True)
class Tally:
    counts: Mapping[str, int]

    @property
    def decided(self) -> int:
        return sum(self.counts.get(s, 0) for s in (Status.PASS, Status.FAIL, Status.ERROR, Status.WAIVED))

    @property
    def score(self) -> float | None:
        """Share of applicable findings that pass or are waived; errors count against it."""
        if not self.decided:
            return None
        return (self.counts.get(Status.PASS, 0) + self.counts.get(Status.WAIVED, 0)) / self.decided

    def as_dict(self) -> dict[str, Any]:
        score = self.score
        return {
            **{s.value: self.counts.get(s, 0) for s in Status},
            "score": round(score, 4) if score is not None else None,
        }


def tally(findings: Iterable[Finding]) -> Tally:
    return Tally(Counter(f.status for f in findings))


def summary(run: AuditRun) -> dict[str, Any]:
    by_control = run.catalog.by_id()
    per_framework = {
        name: tally(f for f in run.findings if by_control[f.control].references.get(name)).as_dict()
        for name in FRAMEWORKS
    }
    by_host: dict[str, list[Finding]] = {}
    for finding in run.findings:  # one pass, not one per host: a run holds hosts x controls findings
        by_host.setdefault(finding.host, []).append(finding)
    per_host = {h.host: tally(by_host.get(h.host, ())).as_dict() for h in run.hosts if h.status == "audited"}
    failing = Counter(f.control for f in run.findings if f.status in (Status.FAIL, Status.ERROR))
    top = sorted(failing, key=lambda c: (-SEVERITIES.index(by_control[c].severity), -failing[c], c))
    return {
        "overall": tally(run.findings).as_dict(),
        "hosts": {state: sum(1 for h in run.hosts if h.status == state) for state in HOST_STATES},
        "per_framework": per_framework,
        "per_host": per_host,
        "top_failures": [{"control": c, "severity": by_control[c].severity, "hosts": failing[c]} for c in top[:10]],
    }


def exit_code(run: AuditRun, recorded: bool = True) -> int:
    """`recorded`: False when the run was meant for the history and could not be stored there."""
    if not recorded or any(h.status != "audited" for h in run.hosts):
        return EXIT_UNREACHABLE
    if any(f.status in (Status.FAIL, Status.ERROR) for f in run.findings):
        return EXIT_FAILURES
    return EXIT_OK


def waiver_record(waiver: Waiver) -> dict[str, Any]:
    return {
        "control": waiver.control,
        "hosts": list(waiver.hosts),
        "groups": list(waiver.groups),
        "justification": waiver.justification,
        "approver": waiver.approver,
        "risk": waiver.risk,
        "risk_acceptance": waiver.risk_acceptance,
        "compensating_control": waiver.compensating_control,
        "expires": waiver.expires.isoformat(),
    }


def finding_record(finding: Finding, waiver_index: Mapping[Waiver, int]) -> dict[str, Any]:
    """One finding; waivers are referred to by their index in the document's `waivers` list."""
    record: dict[str, Any] = {
        "host": finding.host,
        "control": finding.control,
        "status": finding.status.value,
        "reason": finding.reason,
        "evidence": dict(finding.evidence),
    }
    if finding.waiver is not None:
        record["waiver"] = waiver_index[finding.waiver]
    if finding.expired_waiver is not None:
        record["expired_waiver"] = waiver_index[finding.expired_waiver]
    return record


def waivers_section(run: AuditRun) -> list[dict[str, Any]]:
    """Every waiver given, whether it was in force at the run, and how many findings it touched."""
    applied = Counter(f.waiver for f in run.findings if f.waiver is not None)
    lapsed = Counter(f.expired_waiver for f in run.findings if f.expired_waiver is not None)
    return [
        {
            **waiver_record(w),
            "state": "expired" if w.expired(run.started_at.date()) else "active",
            "applied": applied[w],
            "expired_matches": lapsed[w],
        }
        for w in run.waivers
    ]


def bilingual(text: Bilingual) -> dict[str, str]:
    return {"en": text.en, "zh": text.zh}


def control_record(control: Control) -> dict[str, Any]:
    return {
        "title": bilingual(control.title),
        "description": bilingual(control.description),
        "rationale": bilingual(control.rationale),
        "severity": control.severity,
        "area": control.area,
        "references": {k: list(v) for k, v in control.references.items() if v},
        "remediation": {
            "role": control.remediation.role,
            "variables": list(control.remediation.variables),
            "tags": list(control.remediation.tags),
            "manual": control.remediation.manual,
            "text": bilingual(control.remediation.text),
        },
        **({"runbook": runbook_data(control.runbook)} if control.runbook is not None else {}),
    }


def framework_rank(name: str) -> int:
    return FRAMEWORKS.index(name) if name in FRAMEWORKS else len(FRAMEWORKS)


def frameworks_section(catalog: Catalog) -> dict[str, Any]:
    """Each framework's clauses, their coverage and the controls that cover them."""
    return {
        name: {
            "title": bilingual(framework.title),
            "source": framework.source,
            "clauses": [
                {
                    "id": clause.id,
                    "title": bilingual(clause.title),
                    "coverage": clause.coverage,
                    "note": bilingual(clause.note) if clause.note else None,
                    "controls": list(catalog.covering(name, clause.id)),
                }
                for clause in framework.clauses
            ],
        }
        for name, framework in sorted(catalog.frameworks.items(), key=lambda item: framework_rank(item[0]))
    }


def run_header(run: AuditRun) -> dict[str, Any]:
    """Which run this is: the first fields of its findings document and of its JSON summary."""
    return {
        "run_id": run.run_id,
        "site": run.site,
        "transport": run.transport,
        "inventory": run.inventory,
        "started_at": run.started_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "seconds": round(run.seconds, 2),
        **({"fixes": run.fixes} if run.fixes is not None else {}),
    }


def host_record(run: AuditRun, host: HostResult) -> dict[str, Any]:
    """One host of a run: how its collection went, where it sits in the inventory, the interfaces it serves."""
    view = run.views.get(host.host, {})
    record = {
        "name": host.host,
        "status": host.status,
        "reason": host.reason,
        "zone": view.get("zone"),
        "groups": list(view.get("groups") or ()),
        "collected_at": (host.evidence or {}).get("collected_at"),
        "collector_version": (host.evidence or {}).get("collector_version"),
    }
    served = [i for i in view.get("interfaces_in") or () if isinstance(i, Mapping)]
    if served:
        seen = {str(s.get("name")): s for s in run.interfaces.get(host.host, ())}
        record["interfaces"] = [interface_record(i, seen.get(str(i.get("name")))) for i in served]
    return record


def interface_record(interface: Mapping[str, Any], seen: Mapping[str, Any] | None) -> dict[str, Any]:
    """An interface a host serves, as the topology declares it and as its probe last answered (None: not judged)."""
    up = (seen or {}).get("up")
    return {
        **{key: interface.get(key) for key in ("name", "from", "protocol", "port", "tls", "owner", "vendor", "sla")},
        "up": up if isinstance(up, bool) else None,
        "result": (seen or {}).get("result") if isinstance(up, bool) else None,
        "latency_seconds": (seen or {}).get("latency_seconds") if isinstance(up, bool) else None,
    }


def findings_document(run: AuditRun) -> dict[str, Any]:
    """The machine-readable result: self-contained (controls' metadata included), stable ordering."""
    waiver_index = {w: i for i, w in enumerate(run.waivers)}
    return {
        "format": FINDINGS_FORMAT,
        "generator": f"medinfra {__version__}",
        **run_header(run),
        "hosts": [host_record(run, h) for h in run.hosts],
        "controls": {control.id: control_record(control) for control in run.catalog.controls},
        "frameworks": frameworks_section(run.catalog),
        "waivers": waivers_section(run),
        "findings": [finding_record(f, waiver_index) for f in run.findings],
        "summary": summary(run),
    }


def percent(score: float | None) -> str:
    return "   n/a" if score is None else f"{score * 100:5.1f}%"


def counts_text(counts: Mapping[str, Any], shown: Sequence[tuple[str, str]], paint: Palette) -> str:
    """Counts such as "fail 3, error 0": each (label, status) pair, painted when it is not zero."""
    return ", ".join(paint.count(f"{label} {counts[status]}", status, counts[status]) for label, status in shown)


def summary_text(run: AuditRun, paint: Palette = PLAIN) -> str:
    """The terminal summary: hosts, score per framework and per host, top failures."""
    data = summary(run)
    names = {
        "hipaa": "HIPAA 45 CFR 164.312/308",
        "gbt22239": "GB/T 22239-2019 L3 等保",
        "cis_debian12": "CIS Debian 12",
    }
    lines = [
        f"audit of {one_line(run.inventory)} via {run.transport}: {len(run.hosts)} host(s), "
        f"{len(run.catalog.controls)} controls, {run.seconds:.1f} s",
        "hosts: " + ", ".join(paint.count(f"{count} {state}", state, count) for state, count in data["hosts"].items()),
    ]
    for host in run.hosts:
        if host.status != "audited":
            lines.append(f"  {one_line(host.host)}: {paint.status(host.status.upper())}: {one_line(host.reason)}")
    lines.append("score per framework (pass or waived / applicable):")
    for name, counts in data["per_framework"].items():
        shown = counts_text(counts, (("fail", "fail"), ("error", "error"), ("waived", "waived")), paint)
        lines.append(f"  {names[name]:<27} {percent(counts['score'])}  {shown}")
    lines.append("score per host:")
    for host, counts in data["per_host"].items():
        shown = counts_text(counts, (("pass", "pass"), ("fail", "fail"), ("error", "error"),
                                     ("n/a", "not_applicable")), paint)
        lines.append(f"  {one_line(host):<27} {percent(counts['score'])}  {shown}")
    if data["top_failures"]:
        by_control = run.catalog.by_id()
        lines.append("top failures:")
        for item in data["top_failures"]:
            title = by_control[item["control"]].title
            lines.append(
                f"  [{item['severity']}] {paint.status(item['control'], 'fail')} on {item['hosts']} host(s): "
                f"{title.en} / {title.zh}"
            )
    overall = data["overall"]
    totals = ", ".join(
        paint.count(f"{overall[status]} {label}", status, overall[status])
        for label, status in (("pass", "pass"), ("fail", "fail"), ("error", "error"), ("waived", "waived"),
                              ("not applicable", "not_applicable"))
    )
    lines.append(f"overall {percent(overall['score'])}: {totals}")
    return "\n".join(lines)


def summary_record(run: AuditRun) -> dict[str, Any]:
    """What summary_text shows, for machines: the run, each host's collection, the summary's counts and scores."""
    return {
        "format": SUMMARY_FORMAT,
        **run_header(run),
        "controls": len(run.catalog.controls),
        "hosts": [host_record(run, h) for h in run.hosts],
        "summary": summary(run),
    }
