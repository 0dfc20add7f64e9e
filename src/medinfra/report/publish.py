"""Everything one audit run leaves behind: findings, evidence, every report format, signature, history entry.

Both transports (`medinfra audit` and playbooks/audit.yml) and `medinfra report` end here, so the
set of files and their contents do not depend on how the evidence was collected. Every file is written through
safe_output, into a directory opened once. The run is recorded in the history last: a locked, damaged or
read-only history must not throw away an audit whose hosts were already contacted; the reports then stay, and
the run says it was not recorded.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from medinfra.audit.results import AuditRun, findings_document
from medinfra.history.diff import diff_runs
from medinfra.history.store import RunInfo, open_history, site_and_start
from medinfra.problems import PrerequisiteError, UserInputError
from medinfra.report.csv_export import write_csv
from medinfra.report.html import html_name, write_html
from medinfra.report.i18n import LANGUAGES
from medinfra.report.junit import write_junit
from medinfra.report.model import HistoryContext, Report, build_report
from medinfra.report.oscal import OSCAL_FILE, write_oscal
from medinfra.report.pdf import pdf_name
from medinfra.safe_output import OutputDirectory, file_name
from medinfra.safe_text import one_line
from medinfra.signing import MANIFEST, SIGNATURE, sign_directory
from medinfra.topology.model import Topology

FINDINGS_FILE = "findings.json"
EVIDENCE_DIR = "evidence"
JUNIT_FILE = "junit.xml"
CSV_FILE = "findings.csv"
MACHINE_FORMATS: Mapping[str, Callable[[Report, OutputDirectory, str], None]] = {
    OSCAL_FILE: write_oscal,
    JUNIT_FILE: write_junit,
    CSV_FILE: write_csv,
}
# Runs the HTML's trend shows, this one included.
TREND_RUNS = 20


@dataclass(frozen=True)
class Published:
    directory: Path
    files: tuple[Path, ...]
    history: HistoryContext
    manifest: Path | None
    # Why the run is not in the history it was meant for (one line), if it is not.
    history_error: str | None = None


def evidence_name(host: str) -> str:
    """evidence/<host>.json, with the host name encoded as one safe file name (hosts are named by inventories)."""
    return file_name(host, ".json")


def history_context(location: str, document: Mapping[str, Any]) -> HistoryContext:
    """The run's place among its site's recorded runs, read read-only: itself if it was recorded, the runs before
    it and what changed since the last of them."""
    with open_history(location, read_only=True) as store:
        run_id = document.get("run_id")
        run = store.find(run_id) if isinstance(run_id, str) else None
        site, started = (run.site, run.started_at) if run is not None else site_and_start(document)
        earlier = store.earlier(site, started, None if run is None else run.id, TREND_RUNS - 1)
        changes = diff_runs(store.document(earlier[-1].id), document) if earlier else None
    return HistoryContext(run, tuple(earlier), changes)


def record_run(location: str, document: Mapping[str, Any]) -> RunInfo:
    with open_history(location) as store:
        return store.record(document)


def check_output_directory(directory: Path) -> None:
    """Before any host is contacted: the directory is a real one (created if missing) where files can be written,
    and its evidence/, if there is one, is a real directory too."""
    with OutputDirectory.open(directory) as out:
        out.probe()
        evidence = out.existing_subdirectory(EVIDENCE_DIR)
        if evidence is not None:
            evidence.close()


def clear_outputs(out: OutputDirectory) -> None:
    """Remove what an earlier run wrote here, so a signature never covers a stale file. Only our own names, by name
    in the directory: a symlink among them is removed itself, and evidence/ is never followed if it is one."""
    names = [FINDINGS_FILE, *MACHINE_FORMATS, MANIFEST, SIGNATURE]
    names += [name for lang in LANGUAGES for name in (html_name(lang), pdf_name(html_name(lang)))]
    for name in names:
        out.remove(name)
    out.remove_leftovers()
    evidence = out.existing_subdirectory(EVIDENCE_DIR)
    if evidence is not None:
        with evidence:
            for name in evidence.names():
                if name.endswith(".json"):
                    evidence.remove(name)
            evidence.remove_leftovers()


def write_reports(
    document: Mapping[str, Any],
    out: OutputDirectory,
    history: HistoryContext,
    langs: Sequence[str] = LANGUAGES,
    topology: Topology | None = None,
    kb_url: str | None = None,
) -> list[Path]:
    """The HTML in each language and every machine format, from one (valid) findings document; the topology, when
    known, gives the HTML's "what to do next" the hosts' SLA classes, the knowledge base's URL links runbooks."""
    report = build_report(document, history)
    files = [write_html(report, out, lang, topology, kb_url) for lang in langs]
    for name, write in MACHINE_FORMATS.items():
        write(report, out, name)
        files.append(out.path / name)
    return files


def failure(exc: UserInputError | PrerequisiteError) -> str:
    return one_line(str(exc))


def publish(
    run: AuditRun, directory: Path, history: str | None, sign_key: Path | None, topology: Topology | None = None,
    kb_url: str | None = None,
) -> Published:
    """Write findings, evidence and reports, sign (if a key), then record the run (unless history is None).

    A history that cannot be read or written leaves every file in place: `history_error` says why.
    """
    document = findings_document(run)
    context, history_error = HistoryContext(), None
    if history is not None:
        try:
            context = history_context(history, document)
        except (UserInputError, PrerequisiteError) as exc:
            history_error = failure(exc)
    with OutputDirectory.open(directory) as out:
        clear_outputs(out)
        files = []
        if any(host.evidence is not None for host in run.hosts):
            with out.subdirectory(EVIDENCE_DIR) as evidence:
                for host in run.hosts:
                    if host.evidence is not None:
                        text = json.dumps(host.evidence, indent=1, sort_keys=True)
                        files.append(evidence.write_text(evidence_name(host.host), text))
        files.append(out.write_text(FINDINGS_FILE, json.dumps(document, indent=1, ensure_ascii=False) + "\n"))
        files += write_reports(document, out, context, topology=topology, kb_url=kb_url)
        manifest = sign_directory(out, sign_key) if sign_key is not None else None
    if history is not None and history_error is None:
        try:
            context = replace(context, run=record_run(history, document))
        except (UserInputError, PrerequisiteError) as exc:
            history_error = failure(exc)
    return Published(directory, tuple(files), context, manifest, history_error)
