"""Everything one audit run leaves behind: history entry, findings, evidence, every report format, signature.

Both transports (`medinfra audit` and playbooks/audit.yml) and `medinfra report` end here, so the
set of files and their contents do not depend on how the evidence was collected.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medinfra.audit.results import AuditRun, findings_document, write_private
from medinfra.history.diff import RunDiff, diff_runs
from medinfra.history.store import HistoryStore, RunInfo, open_history
from medinfra.report.csv_export import write_csv
from medinfra.report.html import html_name, write_html
from medinfra.report.i18n import LANGUAGES
from medinfra.report.junit import write_junit
from medinfra.report.model import Report, build_report
from medinfra.report.oscal import write_oscal
from medinfra.signing import MANIFEST, SIGNATURE, sign_directory

FINDINGS_FILE = "findings.json"
EVIDENCE_DIR = "evidence"
OSCAL_FILE = "assessment-results.oscal.json"
JUNIT_FILE = "junit.xml"
CSV_FILE = "findings.csv"
MACHINE_FORMATS: Mapping[str, Callable[[Report, Path], None]] = {
    OSCAL_FILE: write_oscal,
    JUNIT_FILE: write_junit,
    CSV_FILE: write_csv,
}


@dataclass(frozen=True)
class HistoryContext:
    """Where a run stands among the site's runs: what the HTML's trend and changes show."""

    run: RunInfo | None = None
    trend: Sequence[RunInfo] = ()
    previous: RunInfo | None = None
    changes: RunDiff | None = None


@dataclass(frozen=True)
class Published:
    directory: Path
    files: tuple[Path, ...]
    history: HistoryContext
    manifest: Path | None


def context_of(store: HistoryStore, run: RunInfo, document: Mapping[str, Any]) -> HistoryContext:
    previous = store.previous(run.id)
    changes = diff_runs(store.document(previous.id), document) if previous is not None else None
    return HistoryContext(run, store.trend(run.id), previous, changes)


def record_run(location: str, document: Mapping[str, Any]) -> HistoryContext:
    """Store the run and read back its place in the site's history."""
    with open_history(location) as store:
        return context_of(store, store.record(document), document)


def recorded_context(location: str, document: Mapping[str, Any]) -> HistoryContext:
    """The history of a run recorded earlier (found by its run id); empty if it was never recorded."""
    with open_history(location) as store:
        run_id = document.get("run_id")
        run = store.find(run_id) if isinstance(run_id, str) else None
        return context_of(store, run, document) if run is not None else HistoryContext()


def clear_outputs(directory: Path) -> None:
    """Remove what an earlier run wrote here, so a signature never covers a stale file. Only our own names."""
    names = [FINDINGS_FILE, *MACHINE_FORMATS, MANIFEST, SIGNATURE, *(html_name(lang) for lang in LANGUAGES)]
    names += [f"{Path(html_name(lang)).stem}.pdf" for lang in LANGUAGES]
    for name in names:
        (directory / name).unlink(missing_ok=True)
    evidence = directory / EVIDENCE_DIR
    if evidence.is_dir():
        for path in evidence.glob("*.json"):
            path.unlink()


def write_reports(
    document: Mapping[str, Any], directory: Path, history: HistoryContext, langs: Sequence[str] = LANGUAGES
) -> list[Path]:
    """The HTML in each language and every machine format, from one findings document."""
    report = build_report(document, history.trend, history.changes, history.previous)
    files = [write_html(report, directory, lang) for lang in langs]
    for name, write in MACHINE_FORMATS.items():
        write(report, directory / name)
        files.append(directory / name)
    return files


def publish(run: AuditRun, directory: Path, history: str | None, sign_key: Path | None) -> Published:
    """Record the run (unless history is None), write findings, evidence and reports, then sign (if a key)."""
    document = findings_document(run)
    context = record_run(history, document) if history is not None else HistoryContext()
    clear_outputs(directory)
    files = []
    for host in run.hosts:
        if host.evidence is not None:
            path = directory / EVIDENCE_DIR / f"{host.host}.json"
            write_private(path, json.dumps(host.evidence, indent=1, sort_keys=True))
            files.append(path)
    write_private(directory / FINDINGS_FILE, json.dumps(document, indent=1, ensure_ascii=False) + "\n")
    files.append(directory / FINDINGS_FILE)
    files += write_reports(document, directory, context)
    manifest = sign_directory(directory, sign_key) if sign_key is not None else None
    return Published(directory, tuple(files), context, manifest)
