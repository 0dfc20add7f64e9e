"""The auditor's report: one self-contained HTML file (inline CSS, SVG charts, a little script).

A Content-Security-Policy forbids every network load, so the file opens the same on an
air-gapped laptop, and a stray external reference would show as a console error in tests.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup

from medinfra.audit.results import Tally
from medinfra.compliance.model import Bilingual, Status
from medinfra.fix.next_steps import next_steps
from medinfra.report.i18n import ui
from medinfra.report.model import Report
from medinfra.report.texts import evidence_text
from medinfra.safe_output import OutputDirectory
from medinfra.safe_text import clean
from medinfra.topology.model import Topology

# Order and colour of each status in bars and badges (colour-blind safe pairs, text labels too).
STATUS_COLOURS = {
    Status.PASS: "#1a7f37",
    Status.WAIVED: "#8250df",
    Status.FAIL: "#cf222e",
    Status.ERROR: "#bc4c00",
    Status.NOT_APPLICABLE: "#8c959f",
}
FRAMEWORK_COLOURS = {"overall": "#24292f", "hipaa": "#0969da", "gbt22239": "#cf222e", "cis_debian12": "#1a7f37"}
FRAMEWORK_SHORT = {"hipaa": "HIPAA", "gbt22239": "GB/T 22239 L3", "cis_debian12": "CIS Debian 12"}


def stacked_bar(tally: Tally, width: int = 220, height: int = 14) -> Markup:
    """One horizontal bar split by status, with the counts in its tooltip."""
    total = sum(tally.counts.values())
    if not total:
        return Markup("")
    parts, x = [], 0.0
    for status, colour in STATUS_COLOURS.items():
        count = tally.counts.get(status, 0)
        if count:
            span = width * count / total
            parts.append(
                f'<rect x="{x:.1f}" y="0" width="{span:.1f}" height="{height}" fill="{colour}">'
                f"<title>{status.value}: {count}</title></rect>"
            )
            x += span
    return Markup(
        f'<svg class="bar" width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img">'
        + "".join(parts)
        + "</svg>"
    )


@dataclass(frozen=True)
class TrendPoint:
    label: str
    score: float | None
    framework_scores: Mapping[str, float | None]


def trend_points(report: Report, this_run: str) -> list[TrendPoint]:
    """The site's earlier runs from the history, then this run (labelled `this_run` until it is recorded)."""
    history = report.history
    points = [TrendPoint(f"#{run.id}", run.score, run.framework_scores) for run in history.earlier]
    label = f"#{history.run.id}" if history.run is not None else this_run
    scores = {framework.id: framework.tally.score for framework in report.frameworks}
    return [*points, TrendPoint(label, report.overall.score, scores)]


def trend_chart(trend: Sequence[TrendPoint], width: int = 640, height: int = 200) -> Markup:
    """Overall and per-framework scores of this site's runs, oldest left."""
    if len(trend) < 2:
        return Markup("")
    pad, top = 36, 10
    inner_w, inner_h = width - 2 * pad, height - top - 28

    def point(index: int, score: float) -> str:
        return f"{pad + inner_w * index / (len(trend) - 1):.1f},{top + inner_h * (1 - score):.1f}"

    series: dict[str, list[float | None]] = {"overall": [run.score for run in trend]}
    for name in FRAMEWORK_SHORT:
        series[name] = [run.framework_scores.get(name) for run in trend]
    lines = []
    for tick in (0, 0.5, 1):
        y = top + inner_h * (1 - tick)
        lines.append(
            f'<line x1="{pad}" x2="{width - pad}" y1="{y:.1f}" y2="{y:.1f}" stroke="#d0d7de"/>'
            f'<text x="{pad - 4}" y="{y + 4:.1f}" text-anchor="end" font-size="10">{int(tick * 100)}%</text>'
        )
    for index, run in enumerate(trend):
        x = pad + inner_w * index / (len(trend) - 1)
        lines.append(
            f'<text x="{x:.1f}" y="{height - 8}" text-anchor="middle" font-size="10">{Markup.escape(run.label)}</text>'
        )
    for name, scores in series.items():
        points = " ".join(point(i, s) for i, s in enumerate(scores) if s is not None)
        if points:
            colour = FRAMEWORK_COLOURS[name]
            lines.append(
                f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{points}">'
                f"<title>{FRAMEWORK_SHORT.get(name, name)}</title></polyline>"
            )
    return Markup(
        f'<svg class="trend" width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img">'
        + "".join(lines)
        + "</svg>"
    )


def code_spans(text: str) -> Markup:
    """Text with `backticked` commands as <code>, everything cleaned and escaped (runbooks write commands inline that
    way; a filter's result is Markup, which `shown` passes as it is)."""
    text = clean(str(text))
    parts = text.split("`")
    if len(parts) % 2 == 0:  # an unpaired backtick: show the text as it is
        return Markup.escape(text)
    return Markup("").join(Markup("<code>{}</code>").format(part) if index % 2 else Markup.escape(part)
                           for index, part in enumerate(parts))


def minutes(value: int, words: dict[str, str]) -> str:
    """A runbook's escalation delay as people say it: 30 min, 4 h, 2 d."""
    for size, unit in ((1440, "days"), (60, "hours")):
        if value >= size and value % size == 0:
            return f"{value // size} {words[unit]}"
    return f"{value} {words['minutes']}"


def percent(score: float | None) -> str:
    return "n/a" if score is None else f"{score * 100:.1f}%"


def shown(value: Any) -> Any:
    """Every value the template prints, cleaned: history texts (changes, site names) reach the page too."""
    return clean(value) if isinstance(value, str) and not isinstance(value, Markup) else value


def escaped_environment(package: str) -> Environment:
    """Jinja for a package's templates as every medinfra page renders: everything escaped, every printed value
    cleaned (`shown`), an unknown name an error. The report, the knowledge base and the SLA report use it."""
    return Environment(
        loader=PackageLoader(package, "templates"),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=StrictUndefined,
        finalize=shown,
    )


def environment() -> Environment:
    env = escaped_environment("medinfra.report")
    env.filters.update(bar=stacked_bar, percent=percent, evidence=evidence_text, code_spans=code_spans,
                       minutes=minutes)
    return env


def render_html(
    report: Report, lang: str, expand: bool = False, topology: Topology | None = None, kb_url: str | None = None
) -> str:
    """The report in one language; `expand` opens every section (for printing to PDF). The topology's SLA classes
    and legacy hosts refine "what to do next" (fix.next_steps), which is judged as of the audit so that rendering a
    run again gives the same page. `kb_url`, the site knowledge base's base URL (medinfra.runbook.kb_url), links
    each control's runbook to its page there."""

    def text(value: Bilingual) -> str:
        return value.zh if lang == "zh" else value.en

    return environment().get_template("report.html.j2").render(
        report=report,
        lang=lang,
        t=ui(lang),
        text=text,
        expand=expand,
        Status=Status,
        colours=STATUS_COLOURS,
        framework_short=FRAMEWORK_SHORT,
        framework_colours=FRAMEWORK_COLOURS,
        trend=trend_chart(trend_points(report, ui(lang)["this_run"])),
        other_language_file=html_name("en" if lang == "zh" else "zh"),
        next_steps=next_steps(report, topology, datetime.fromisoformat(report.started_at)),
        kb_url=kb_url,
    )


def html_name(lang: str) -> str:
    return f"report.{lang}.html"


def write_html(
    report: Report, directory: OutputDirectory, lang: str, topology: Topology | None = None, kb_url: str | None = None
) -> Path:
    return directory.write_text(html_name(lang), render_html(report, lang, topology=topology, kb_url=kb_url))
