"""Open a report in real headless Chromium (Debian's) through Playwright and read what a person would see."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from playwright.sync_api import sync_playwright

from medinfra.report.pdf import chromium_flags, chromium_path


@dataclass
class RenderedPage:
    console: list[str] = field(default_factory=list)  # console errors/warnings and uncaught exceptions
    requests: list[str] = field(default_factory=list)  # every URL the page asked for
    texts: dict[str, list[str]] = field(default_factory=dict)  # selector -> inner text of each match
    visible_after_filter: int = -1  # findings sections still shown with "only failing" ticked


def render(path: Path, screenshot: Path, selectors: list[str]) -> RenderedPage:
    page_data = RenderedPage()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path(), args=chromium_flags())
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1600})
            page.on(
                "console",
                lambda message: page_data.console.append(f"{message.type}: {message.text}")
                if message.type in ("error", "warning")
                else None,
            )
            page.on("pageerror", lambda error: page_data.console.append(f"pageerror: {error}"))
            page.on("request", lambda request: page_data.requests.append(request.url))
            page.goto(path.resolve().as_uri(), wait_until="load")
            for selector in selectors:
                page_data.texts[selector] = page.locator(selector).all_inner_texts()
            page.screenshot(path=str(screenshot), full_page=False)
            page.check("#only-failing")
            page_data.visible_after_filter = page.locator("details.control:not(.hidden)").count()
        finally:
            browser.close()
    return page_data
