"""The HTML report in real headless Chromium: no console errors, no network, key elements in both languages."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from benchmarks.synthetic import synthetic_run
from medinfra.cli import main
from medinfra.compliance.catalog import load_catalog
from medinfra.report.publish import publish
from tests.browser import render
from tests.oscal_schema import oscal_validator

pytestmark = pytest.mark.integration

SELECTORS = [
    "#score-overall .score",
    "#score-hipaa .score",
    "#score-gbt22239 .score",
    "#clauses-gbt22239 tr.clause",
    "details.control.failing > summary",
    "tr.finding.s-row-fail pre.evidence",
    ".expired-waiver",
    "#not-audited",
    "#next-steps tr.next-step",
]


@pytest.fixture(scope="module")
def report_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("reports")
    history = str(out.parent / "history.sqlite")
    publish(synthetic_run(15, 40, seed=3), out, history, None)
    publish(synthetic_run(16, 40, seed=4), out, history, None)  # a second run: trend and changes exist
    oscal_validator().validate(json.loads((out / "assessment-results.oscal.json").read_text(encoding="utf-8")))
    return out


@pytest.mark.parametrize(("lang", "heading"), [("en", "Compliance report"), ("zh", "合规审计报告")])
def test_report_renders_without_errors_or_network_and_shows_key_elements(report_dir, lang, heading):
    shot = report_dir.parent / f"report-{lang}.png"
    page = render(report_dir / f"report.{lang}.html", shot, [*SELECTORS, "#title", "#changes", "svg.trend"])
    assert page.console == []
    assert page.requests == [(report_dir / f"report.{lang}.html").resolve().as_uri()]
    assert shot.stat().st_size > 20_000  # a real picture, not a blank page
    texts = page.texts
    assert heading in texts["#title"][0]
    for score in ("#score-overall .score", "#score-hipaa .score", "#score-gbt22239 .score"):
        assert texts[score][0].endswith("%"), texts[score]
    assert len(texts["#clauses-gbt22239 tr.clause"]) == len(load_catalog().frameworks["gbt22239"].clauses)
    assert texts["details.control.failing > summary"] and texts["tr.finding.s-row-fail pre.evidence"]
    assert "sshd.maxauthtries" in texts["tr.finding.s-row-fail pre.evidence"][0]
    assert texts[".expired-waiver"], "the failure an expired waiver would have covered is flagged"
    assert texts["#not-audited"] and texts["#changes"] and len(texts["svg.trend"]) == 1
    # What to do next: one row per failing control, each saying how (medinfra fix, or by hand) and by when.
    assert len(texts["#next-steps tr.next-step"]) == len(texts["details.control.failing > summary"])
    assert all(re.search(r"20\d\d-\d\d-\d\d", row) for row in texts["#next-steps tr.next-step"])
    chinese = any("\u4e00" <= ch <= "\u9fff" for ch in texts["details.control.failing > summary"][0])
    assert chinese == (lang == "zh")
    assert 0 < page.visible_after_filter == len(texts["details.control.failing > summary"])


def test_report_prints_to_pdf_with_every_section_open(report_dir, capsys):
    out = report_dir.parent / "pdf"
    assert main(["report", str(report_dir), "-o", str(out), "--lang", "zh", "--pdf", "--no-history"]) == 0
    pdf = out / "report.zh.pdf"
    data = pdf.read_bytes()
    assert data.startswith(b"%PDF-") and str(pdf) in capsys.readouterr().out
    assert pdf.stat().st_mode & 0o777 == 0o640
    # Printing opens every control (passing ones too), so the PDF runs to many pages.
    assert data.count(b"/Type /Page\n") + data.count(b"/Type /Page/") + data.count(b"/Type /Page ") > 5
