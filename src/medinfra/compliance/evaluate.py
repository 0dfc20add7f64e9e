"""The evaluator: (evidence, catalog, waivers, time) -> findings. Pure: no I/O, no clock, no host."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from medinfra.compliance.checks import run_check
from medinfra.compliance.model import Catalog, Control, Finding, HostEvidence, Status, Waiver

EVIDENCE_SCHEMA = "medinfra-evidence/1"


def evidence_root(host: HostEvidence) -> dict[str, Any] | None:
    """The tree checks read: the facts' sections plus `inventory` (the host as the inventory sees it)."""
    facts = host.evidence.get("facts")
    if host.evidence.get("schema") != EVIDENCE_SCHEMA or not isinstance(facts, Mapping):
        return None
    return {**facts, "inventory": dict(host.inventory)}


def matching_waivers(waivers: Iterable[Waiver], control: str, host: HostEvidence) -> list[Waiver]:
    groups = host.inventory.get("groups") or ()
    return [w for w in waivers if w.control == control and w.covers(host.host, groups)]


def evaluate_control(
    control: Control, host: HostEvidence, root: Mapping[str, Any], waivers: Sequence[Waiver], now: datetime
) -> Finding:
    if control.applies_when is not None:
        applies = run_check(control.applies_when, root, now)
        if applies.status == "fail":
            return Finding(
                host.host, control.id, Status.NOT_APPLICABLE, f"does not apply: {applies.reason}", applies.excerpt
            )
        if applies.status == "error":
            return Finding(host.host, control.id, Status.ERROR, applies.reason, applies.excerpt)
    outcome = run_check(control.check, root, now)
    status = Status(outcome.status)
    if status is Status.FAIL:
        matching = matching_waivers(waivers, control.id, host)
        active = [w for w in matching if not w.expired(now.date())]
        if active:
            return Finding(host.host, control.id, Status.WAIVED, outcome.reason, outcome.excerpt, active[0])
        if matching:
            return Finding(
                host.host, control.id, status, outcome.reason, outcome.excerpt, expired_waiver=matching[0]
            )
    return Finding(host.host, control.id, status, outcome.reason, outcome.excerpt)


def evaluate(
    hosts: Iterable[HostEvidence], catalog: Catalog, waivers: Sequence[Waiver], now: datetime
) -> list[Finding]:
    """Findings for every control on every host, in host then control order."""
    findings = []
    for host in hosts:
        root = evidence_root(host)
        for control in catalog.controls:
            if root is None:
                findings.append(
                    Finding(host.host, control.id, Status.ERROR, f"evidence is not a {EVIDENCE_SCHEMA} document", {})
                )
            else:
                findings.append(evaluate_control(control, host, root, waivers, now))
    return findings
