"""Kills mutants of report/csv_export.py that the format tests let through (`make mutation`)."""

from __future__ import annotations

import csv
import io

from medinfra.report.csv_export import lines
from medinfra.report.model import build_report
from tests.unit.test_report_formats import handmade_document


def test_a_finding_without_an_expired_waiver_has_an_empty_expired_waiver_cell() -> None:
    rows = list(csv.DictReader(io.StringIO("".join(lines(build_report(handmade_document()))), newline="")))
    expired = {(row["host"], row["control"]): row["expired_waiver"] for row in rows}
    assert expired == {
        ("his-db", "root_login_off"): "2026-01-31",
        ("his-db", "forwarding_off"): "",
        ("his-db", "audit_logging"): "",
        ("lis-legacy", "root_login_off"): "",
        ("lis-legacy", "forwarding_off"): "",
        ("lis-legacy", "audit_logging"): "",
    }
