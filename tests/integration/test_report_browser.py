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


def test_a_runbook_link_opens_its_entry_and_hostile_runbook_text_stays_text(tmp_path):
    """#runbook-<id> opens the collapsed control and runbook; a <script> in a runbook shows as text and never runs."""
    from playwright.sync_api import sync_playwright

    from medinfra.report.pdf import chromium_flags, chromium_path
    from tests.unit.test_runbooks import HOSTILE, runbook_run

    publish(runbook_run(), tmp_path, None, None, kb_url="https://kb.hospital.example/h/")
    console, dialogs = [], []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path(), args=chromium_flags())
        try:
            page = browser.new_page()
            page.on("console", lambda m: console.append(m.text) if m.type in ("error", "warning") else None)
            page.on("pageerror", lambda error: console.append(str(error)))
            page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
            page.goto((tmp_path / "report.en.html").resolve().as_uri() + "#runbook-root_login_off", wait_until="load")
            runbook = page.locator("#runbook-root_login_off")
            assert runbook.is_visible() and page.evaluate("document.getElementById('runbook-root_login_off').open")
            assert HOSTILE in runbook.locator(".rb-meaning").inner_text()
            assert HOSTILE in runbook.locator("code.command").inner_text()
            link = runbook.locator("a.kb-link")
            assert link.get_attribute("href") == "https://kb.hospital.example/h/controls/root_login_off.html"
        finally:
            browser.close()
    assert console == [] and dialogs == []
