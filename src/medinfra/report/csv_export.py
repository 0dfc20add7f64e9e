"""Findings as CSV for spreadsheets: one row per (host, control) finding.

UTF-8 with a byte order mark, because Excel and WPS only detect UTF-8 (and so show the Chinese titles) when the
file starts with one. Host names, reasons and evidence come from the audited hosts, so every cell is guarded
against formula injection.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from medinfra.audit.results import open_private
from medinfra.compliance.model import FRAMEWORKS, Finding
from medinfra.report.model import ControlInfo, Report

COLUMNS = (
    "host",
    "zone",
    "control",
    "title_en",
    "title_zh",
    "severity",
    "status",
    "reason",
    *FRAMEWORKS,
    "remediation_role",
    "remediation_variables",
    "waiver_approver",
    "waiver_expires",
    "waiver_risk",
    "waiver_compensating_control",
    "expired_waiver",
    "evidence",
)
# A spreadsheet evaluates a cell starting with one of these as a formula (OWASP "CSV injection").
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
LIST_SEPARATOR = "; "
# One encoder for every evidence excerpt: json.dumps would build a new encoder per call (60,000 calls a run).
EVIDENCE_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def evidence_text(evidence: Mapping[str, Any]) -> str:
    """The evidence excerpt of a finding as compact JSON, the same text in every format."""
    return EVIDENCE_ENCODER.encode(evidence)


def cell(value: str) -> str:
    """The value, with a leading apostrophe if a spreadsheet would run it as a formula."""
    return "'" + value if value.startswith(FORMULA_STARTS) else value


def control_cells(control: ControlInfo) -> tuple[str, ...]:
    """The columns that depend on the control only (title to remediation), computed once per control."""
    return (
        cell(control.title.en),
        cell(control.title.zh),
        control.severity,
        *(cell(LIST_SEPARATOR.join(control.references.get(name, ()))) for name in FRAMEWORKS),
        cell(control.remediation_role),
        cell(LIST_SEPARATOR.join(control.remediation_variables)),
    )


def waiver_cells(item: Finding) -> tuple[str, str, str, str]:
    waiver = item.waiver
    if waiver is None:
        return ("", "", "", "")
    return (cell(waiver.approver), waiver.expires.isoformat(), waiver.risk, cell(waiver.compensating_control))


def rows(report: Report) -> Iterator[Sequence[str]]:
    per_control = {cid: control_cells(control) for cid, control in report.controls.items()}
    zones = {host.name: cell(host.zone) for host in report.hosts}
    for item in report.findings:
        title_en, title_zh, severity, *rest = per_control[item.control]
        yield (
            cell(item.host),
            zones[item.host],
            item.control,
            title_en,
            title_zh,
            severity,
            item.status.value,
            cell(item.reason),
            *rest,
            *waiver_cells(item),
            item.expired_waiver.expires.isoformat() if item.expired_waiver is not None else "",
            evidence_text(item.evidence),  # a JSON object: starts with {, never a formula
        )


def write_csv(report: Report, path: Path) -> None:
    # newline="": the csv module writes its own CRLF line ends; utf-8-sig writes the BOM first.
    with open_private(path, "w", encoding="utf-8-sig", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(COLUMNS)
        writer.writerows(rows(report))
