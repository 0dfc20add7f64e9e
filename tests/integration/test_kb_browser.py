"""The knowledge base of the lab in real headless Chromium (Debian's, through Playwright): every page type in both
languages with no console error and no request but the page itself, the language choice remembered, the search,
every alert rule's runbook_url and every control's runbook found inside it."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml
from playwright.sync_api import Page, sync_playwright

from medinfra.cli import main
from medinfra.compliance.catalog import load_catalog
from medinfra.package_data import CATALOG_DIR
from medinfra.report.pdf import chromium_flags, chromium_path
from medinfra.runbook import ALERT_RUNBOOKS, load_alert_runbooks
from medinfra.topology.load import load_topology
from tests.conftest import LAB_TOPOLOGY, ROOT
from tests.unit.test_kb import lab_history

pytestmark = pytest.mark.integration

RULES = sorted((ROOT / "roles" / "monitoring_server" / "files").glob("*.rules.yml"))
# One page of each type.
PAGES = ("index.html", "hosts/his-db.html", "alerts/ExporterDown.html", "controls/sshd_root_login_disabled.html",
         "oncall.html", "zones.html")
CJK = re.compile(r"[\u4e00-\u9fff]")


@dataclass
class Browser:
    page: Page
    console: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)


@pytest.fixture(scope="module")
def kb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("kb")
    history = lab_history(work / "history.sqlite", load_topology(LAB_TOPOLOGY))
    out = work / "kb"
    assert main(["kb", "build", "-i", str(ROOT / "inventories" / "lab"), "-o", str(out), "--history", history]) == 0
    return out


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=chromium_path(), args=chromium_flags())
        try:
            page = chromium.new_context(viewport={"width": 1280, "height": 1000}).new_page()
            seen = Browser(page)
            page.on("console", lambda m: seen.console.append(f"{m.type}: {m.text}")
                    if m.type in ("error", "warning") else None)
            page.on("pageerror", lambda error: seen.console.append(f"pageerror: {error}"))
            page.on("request", lambda request: seen.requests.append(request.url))
            page.on("requestfailed", lambda request: seen.failed.append(request.url))
            yield seen
        finally:
            chromium.close()


def visible_title(browser: Browser) -> str:
    return browser.page.locator("#title").inner_text()


def test_every_page_type_renders_in_both_languages_offline_and_remembers_the_choice(kb: Path,
                                                                                   browser: Browser) -> None:
    page = browser.page
    other = {"en": "zh", "zh": "en"}
    for lang in ("en", "zh"):
        for name in PAGES:
            browser.console.clear()
            browser.requests.clear()
            url = (kb / name).resolve().as_uri()
            page.goto(url, wait_until="load")
            if name == "index.html" and lang == "zh":
                page.click("#lang-switch")  # chosen once: every later page opens in Chinese
            shown, hidden = page.locator(f"#title .l-{lang}").first, page.locator(f"#title .l-{other[lang]}").first
            assert shown.is_visible() and not hidden.is_visible(), (lang, name)
            if name != "index.html":  # the site's own title is bilingual
                assert bool(CJK.search(visible_title(browser))) == (lang == "zh"), (lang, name)
            assert browser.console == [], (lang, name)
            assert browser.requests == [url], (lang, name)
            assert page.locator("#kb-index").count() == 1 and page.locator("#search").is_visible()
    assert browser.failed == []
    # The host page shows what the night shift needs of his-db: zone, SLA, pair, backups, drills, last audit.
    page.goto((kb / "hosts" / "his-db.html").resolve().as_uri())
    assert "24x7-critical" in page.locator("#sla").inner_text()
    assert "hisdb" in page.locator("#backups").inner_text()
    assert re.search("通过", page.locator("#failover-drill").inner_text())
    assert "33.3%" in page.locator("#audit-score").inner_text()
    page.click("#lang-switch")  # back to English, for the next test


def search(browser: Browser, text: str) -> list[tuple[str, str]]:
    browser.page.fill("#search", text)
    links = browser.page.locator("#search-results a.result")
    return [(links.nth(i).inner_text(), links.nth(i).get_attribute("href") or "") for i in range(links.count())]


def test_the_search_finds_a_host_by_name_and_an_alert_by_its_chinese_title(kb: Path, browser: Browser) -> None:
    page = browser.page
    browser.console.clear()
    page.goto((kb / "controls" / "sshd_root_login_disabled.html").resolve().as_uri())
    found = search(browser, "his-db-2")
    assert found and found[0][1] == "../hosts/his-db-2.html", found
    page.click("#search-results a.result >> nth=0")
    page.wait_for_url(re.compile(r"hosts/his-db-2\.html"))
    assert visible_title(browser).endswith("his-db-2")
    meaning = load_alert_runbooks(ROOT / ALERT_RUNBOOKS)["ExporterDown"].meaning.zh
    words = max(re.findall(r"[\u4e00-\u9fff]{4,}", meaning), key=len)
    page.click("#lang-switch")
    found = search(browser, words)
    assert ("../alerts/ExporterDown.html" in [href for _, href in found]), (words, found)
    assert all(CJK.search(text) for text, _ in found)  # results show their Chinese titles
    page.click("#lang-switch")
    assert browser.console == []


def test_every_alert_rules_runbook_url_and_every_control_resolve_to_a_runbook_page(kb: Path) -> None:
    rules = [rule for path in RULES for group in yaml.safe_load(path.read_text(encoding="utf-8"))["groups"]
             for rule in group["rules"] if "alert" in rule]
    assert len(rules) >= 30
    for rule in rules:
        url = (rule.get("annotations") or {}).get("runbook_url", "")
        # The base is the site's KB URL (monitoring_server_kb_url); the rest names a page of the KB.
        match = re.search(r"(alerts/[^/]+\.html)$", url)
        assert match, f"{rule['alert']}: runbook_url {url!r} does not end in alerts/<AlertName>.html"
        assert match.group(1) == f"alerts/{rule['alert']}.html"
        page = (kb / match.group(1)).read_text(encoding="utf-8")
        assert 'class="meaning"' in page, f"{match.group(1)} has no runbook"
    for control in load_catalog(CATALOG_DIR).controls:
        page = (kb / "controls" / f"{control.id}.html").read_text(encoding="utf-8")
        assert 'id="runbook"' in page and 'class="meaning"' in page, f"{control.id}: no runbook in its page"
