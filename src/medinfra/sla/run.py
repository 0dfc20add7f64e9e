"""`medinfra sla report`: inputs checked, the month read from Prometheus and Alertmanager, the report written."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path

from medinfra.problems import Problem, UserInputError, refused
from medinfra.report.i18n import LANGUAGES
from medinfra.safe_output import OutputDirectory, write_file
from medinfra.signing import MANIFEST, SIGNATURE, load_private_key, sign_directory
from medinfra.sla.compute import SlaReport, month_period, sla_report
from medinfra.sla.render import csv_text, html_text, json_text
from medinfra.sla.source import Client, endpoints, fetch
from medinfra.topology import load_topology
from medinfra.topology.model import Topology

# The role monitoring_server's scrape interval (monitoring_server_scrape_interval): one value per scrape.
STEP_SECONDS = 30
# What a signed report directory may hold: reports of this command and the signature over them.
REPORT_NAME = re.compile(r"^sla-[A-Za-z0-9_.-]+\.(json|csv|html)$")


@dataclass(frozen=True)
class Request:
    inventory: Path
    month: str
    format: str
    lang: str
    output: Path | None
    vault_password_file: Path | None
    sign_key: Path | None


def report_name(site: str, month: str, fmt: str, lang: str) -> str:
    return f"sla-{site}-{month}.{lang}.html" if fmt == "html" else f"sla-{site}-{month}.{fmt}"


def topology_of(inventory: Path) -> Topology:
    path = inventory / "hospital.yml" if inventory.is_dir() else inventory
    if not path.is_file():
        raise refused(str(path), "no hospital.yml: the SLA classes and hosts come from the topology")
    return load_topology(path)


def make_report(request: Request, now: int | None = None) -> SlaReport:
    """Check every input, then read the month (SourceError if Prometheus or Alertmanager cannot be read)."""
    topology = topology_of(request.inventory)
    try:
        period = month_period(request.month, topology.site.timezone or "UTC", STEP_SECONDS,
                              int(time.time()) if now is None else now)
    except ValueError as exc:
        raise UserInputError([Problem("--month", (), str(exc))]) from None
    if request.sign_key is not None:
        load_private_key(request.sign_key)  # a bad key is refused before anything is read
    where = endpoints(topology, request.inventory, request.vault_password_file)
    fetched = fetch(Client(where), period)
    return sla_report(topology, period, fetched.probes, fetched.alerts, fetched.silences, fetched.backups,
                      {"prometheus": where.prometheus, "alertmanager": where.alertmanager})


def rendered(report: SlaReport, fmt: str, lang: str, other_language_file: str) -> str:
    if fmt == "json":
        return json_text(report)
    if fmt == "csv":
        return csv_text(report)
    return html_text(report, lang, other_language_file)


def write_signed(report: SlaReport, request: Request, key: Path) -> list[Path]:
    """Into the directory -o names: the report (HTML in both languages, linked to each other), signed like audit
    results. Refuses a directory holding anything else, which the signature would vouch for too."""
    assert request.output is not None
    with OutputDirectory.open(request.output) as out:
        strangers = [n for n in out.names() if n not in (MANIFEST, SIGNATURE) and not REPORT_NAME.match(n)]
        if strangers:
            message = f"holds files that are not SLA reports ({', '.join(sorted(strangers)[:5])}); give a directory " \
                      "of its own to sign"
            raise refused(str(request.output), message)
        for name in (MANIFEST, SIGNATURE):
            out.remove(name)
        langs = LANGUAGES if request.format == "html" else (request.lang,)
        files = []
        for lang in langs:
            other = report_name(report.site, report.period.month, "html", "en" if lang == "zh" else "zh")
            name = report_name(report.site, report.period.month, request.format, lang)
            files.append(out.write_text(name, rendered(report, request.format, lang, other)))
        files.append(sign_directory(out, key))
    return files


def write_report(report: SlaReport, request: Request) -> list[Path]:
    """Write the report where asked: a signed directory, a file, or (no -o) nothing: the caller prints it."""
    if request.sign_key is not None:
        return write_signed(report, request, request.sign_key)
    if request.output is None:
        return []
    name = request.output.name
    other = name.replace(f".{request.lang}.", f".{'en' if request.lang == 'zh' else 'zh'}.")
    text = rendered(report, request.format, request.lang, other if other != name else "")
    return [write_file(request.output, text)]
