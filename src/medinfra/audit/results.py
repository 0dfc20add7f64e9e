"""One audit run: per-host collection results, the findings, the findings document and its summary.

Both transports (pyinfra via `medinfra audit`, Ansible via playbooks/audit.yml) end here, so they
write the same document and print the same summary.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from medinfra import __version__
from medinfra.compliance.evaluate import evaluate
from medinfra.compliance.model import FRAMEWORKS, SEVERITIES, Catalog, Finding, HostEvidence, Status, Waiver

FINDINGS_FORMAT = "medinfra-findings/1"
EXIT_OK, EXIT_FAILURES, EXIT_USAGE, EXIT_UNREACHABLE = 0, 1, 2, 3
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


def judge(
    results: Iterable[HostResult],
    views: Mapping[str, Mapping[str, Any]],
    catalog: Catalog,
    waivers: Sequence[Waiver],
    now: datetime,
) -> list[Finding]:
    """Findings for the hosts that gave evidence."""
    evidence = [HostEvidence(r.host, r.evidence, views.get(r.host, {})) for r in results if r.evidence is not None]
    return evaluate(evidence, catalog, waivers, now)


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
    per_host = {
        h.host: tally(f for f in run.findings if f.host == h.host).as_dict() for h in run.hosts if h.status == "audited"
    }
    failing = Counter(f.control for f in run.findings if f.status in (Status.FAIL, Status.ERROR))
    top = sorted(failing, key=lambda c: (-SEVERITIES.index(by_control[c].severity), -failing[c], c))
    return {
        "overall": tally(run.findings).as_dict(),
        "hosts": {state: sum(1 for h in run.hosts if h.status == state) for state in HOST_STATES},
        "per_framework": per_framework,
        "per_host": per_host,
        "top_failures": [{"control": c, "severity": by_control[c].severity, "hosts": failing[c]} for c in top[:10]],
    }


def exit_code(run: AuditRun) -> int:
    if any(h.status != "audited" for h in run.hosts):
        return EXIT_UNREACHABLE
    if any(f.status in (Status.FAIL, Status.ERROR) for f in run.findings):
        return EXIT_FAILURES
    return EXIT_OK


def finding_record(finding: Finding) -> dict[str, Any]:
    record: dict[str, Any] = {
        "host": finding.host,
        "control": finding.control,
        "status": finding.status.value,
        "reason": finding.reason,
        "evidence": dict(finding.evidence),
    }
    if finding.waiver is not None:
        waiver = finding.waiver
        record["waiver"] = {
            "justification": waiver.justification,
            "approver": waiver.approver,
            "risk": waiver.risk,
            "expires": waiver.expires.isoformat(),
        }
    return record


def findings_document(run: AuditRun) -> dict[str, Any]:
    """The machine-readable result: self-contained (controls' metadata included), stable ordering."""
    used = sorted({f.control for f in run.findings} or run.catalog.by_id())
    by_control = run.catalog.by_id()
    return {
        "format": FINDINGS_FORMAT,
        "generator": f"medinfra {__version__}",
        "transport": run.transport,
        "inventory": run.inventory,
        "started_at": run.started_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "seconds": round(run.seconds, 2),
        "hosts": [
            {
                "name": h.host,
                "status": h.status,
                "reason": h.reason,
                "collected_at": (h.evidence or {}).get("collected_at"),
                "collector_version": (h.evidence or {}).get("collector_version"),
            }
            for h in run.hosts
        ],
        "controls": {
            cid: {
                "title": {"en": by_control[cid].title.en, "zh": by_control[cid].title.zh},
                "severity": by_control[cid].severity,
                "area": by_control[cid].area,
                "references": {k: list(v) for k, v in by_control[cid].references.items() if v},
                "remediation": {
                    "role": by_control[cid].remediation.role,
                    "variables": list(by_control[cid].remediation.variables),
                },
            }
            for cid in used
        },
        "findings": [finding_record(f) for f in run.findings],
        "summary": summary(run),
    }


def write_private(path: Path, text: str) -> None:
    """Audit results describe weaknesses: readable by the owner and group only."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o750)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.chmod(path, 0o640)


def write_results(run: AuditRun, out_dir: Path) -> Path:
    """findings.json plus each host's raw evidence under evidence/; returns the findings path."""
    for host in run.hosts:
        if host.evidence is not None:
            write_private(
                out_dir / "evidence" / f"{host.host}.json", json.dumps(host.evidence, indent=1, sort_keys=True)
            )
    findings = out_dir / "findings.json"
    write_private(findings, json.dumps(findings_document(run), indent=1, ensure_ascii=False, sort_keys=False) + "\n")
    return findings


def percent(score: float | None) -> str:
    return "   n/a" if score is None else f"{score * 100:5.1f}%"


def summary_text(run: AuditRun) -> str:
    """The terminal summary: hosts, score per framework and per host, top failures."""
    data = summary(run)
    names = {
        "hipaa": "HIPAA 45 CFR 164.312/308",
        "gbt22239": "GB/T 22239-2019 L3 等保",
        "cis_debian12": "CIS Debian 12",
    }
    lines = [
        f"audit of {run.inventory} via {run.transport}: {len(run.hosts)} host(s), {len(run.catalog.controls)} "
        f"controls, {run.seconds:.1f} s",
        "hosts: " + ", ".join(f"{count} {state}" for state, count in data["hosts"].items()),
    ]
    for host in run.hosts:
        if host.status != "audited":
            lines.append(f"  {host.host}: {host.status.upper()}: {host.reason}")
    lines.append("score per framework (pass or waived / applicable):")
    for name, counts in data["per_framework"].items():
        lines.append(
            f"  {names[name]:<27} {percent(counts['score'])}  fail {counts['fail']}, error {counts['error']}, "
            f"waived {counts['waived']}"
        )
    lines.append("score per host:")
    for host, counts in data["per_host"].items():
        lines.append(
            f"  {host:<27} {percent(counts['score'])}  pass {counts['pass']}, fail {counts['fail']}, "
            f"error {counts['error']}, n/a {counts['not_applicable']}"
        )
    if data["top_failures"]:
        by_control = run.catalog.by_id()
        lines.append("top failures:")
        for item in data["top_failures"]:
            title = by_control[item["control"]].title
            lines.append(
                f"  [{item['severity']}] {item['control']} on {item['hosts']} host(s): {title.en} / {title.zh}"
            )
    overall = data["overall"]
    lines.append(
        f"overall {percent(overall['score'])}: {overall['pass']} pass, {overall['fail']} fail, "
        f"{overall['error']} error, {overall['waived']} waived, {overall['not_applicable']} not applicable"
    )
    return "\n".join(lines)
