"""The knowledge base rendered: one static HTML file per page, each self-contained (inline CSS and script, both
languages, the search index embedded), and written into its directory the safe way.

Every text shown comes from files someone else wrote (the topology, runbooks, rota, the history): the templates
autoescape it and `shown` cleans control characters, so a `<script>` in a host's description is text on the page.
The search index is JSON inside a `<script type="application/json">` element, with `<`, `>` and `&` written as
JSON escapes so no text in it can close that element.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from pathlib import Path
from typing import Any

from jinja2 import Environment
from markupsafe import Markup

from medinfra import __version__
from medinfra.compliance.model import Control
from medinfra.kb.model import History, HostPage, SearchEntry, ZoneMatrix
from medinfra.kb.sources import AlertRule
from medinfra.kb.texts import words
from medinfra.oncall.model import Duty, OnCall
from medinfra.problems import Problem, UserInputError
from medinfra.report.html import code_spans, escaped_environment, percent
from medinfra.runbook import Runbook
from medinfra.safe_output import TEMPORARY_PREFIX, OutputDirectory, file_name
from medinfra.topology.model import SlaClass, Topology

KB_FORMAT = "medinfra-kb/1"
MANIFEST = "kb-manifest.json"
PAGE_DIRECTORIES = ("hosts", "alerts", "controls")
TOP_PAGES = ("index.html", "zones.html", "oncall.html")
ROTA_DAYS = 14
# SLA class fields every page shows under their own words; any other (targets a site adds) is listed by name.
SLA_SHOWN = frozenset({"name", "rpo_minutes", "rto_minutes", "support_hours", "description"})


@dataclass(frozen=True)
class KnowledgeBase:
    topology: Topology
    pages: Sequence[HostPage]
    matrix: ZoneMatrix
    alerts: Sequence[AlertRule]
    controls: Sequence[Control]
    alert_runbooks: Mapping[str, Runbook]
    control_runbooks: Mapping[str, Runbook]
    oncall: OnCall | None  # None: the site has no oncall.yml
    rota: Sequence[Duty]  # the next ROTA_DAYS from built_at
    on_duty: Mapping[str, tuple[str, ...]] | None  # role -> who holds it at build time (None without a rota)
    history: History
    built_at: datetime


def host_url(name: str) -> str:
    return f"hosts/{file_name(name, '.html')}"


def alert_url(name: str) -> str:
    return f"alerts/{file_name(name, '.html')}"


def control_url(control_id: str) -> str:
    return f"controls/{file_name(control_id, '.html')}"


def _plain(text: str) -> str:
    return " ".join(text.split())


def search_entries(kb: KnowledgeBase) -> list[SearchEntry]:
    """What the search box finds, in both languages: hosts, alerts, controls, interfaces, vendors, zones."""
    entries = []
    for page in kb.pages:
        host = page.host
        about = _plain(f"{host.address} {' '.join(host.services)} {host.sla} {host.description or ''}")
        entries.append(SearchEntry("host", host_url(host.name), f"{host.name} ({host.zone})",
                                   f"{host.name}（{host.zone}）", about))
    for alert in kb.alerts:
        runbook = kb.alert_runbooks.get(alert.name)
        meaning_en = _plain(runbook.meaning.en) if runbook else alert.summary
        meaning_zh = _plain(runbook.meaning.zh) if runbook else alert.summary
        entries.append(SearchEntry("alert", alert_url(alert.name), f"{alert.name}: {meaning_en}",
                                   f"{alert.name}：{meaning_zh}", _plain(f"{alert.severity} {alert.summary}")))
    for control in kb.controls:
        entries.append(SearchEntry("control", control_url(control.id), f"{control.id}: {control.title.en}",
                                   f"{control.id}：{control.title.zh}", _plain(f"{control.area} {control.severity}")))
    vendors: dict[str, list[str]] = {}
    for interface in kb.topology.interfaces:
        url = f"{host_url(interface.destination)}#interfaces"
        title = f"{interface.name}: {interface.source} → {interface.destination} ({interface.protocol})"
        entries.append(SearchEntry("interface", url, title, title,
                                   _plain(f"{interface.owner} {interface.vendor.name if interface.vendor else ''}")))
        if interface.vendor is not None:
            vendors.setdefault(interface.vendor.name, []).append(interface.name)
            entries.append(SearchEntry("vendor", url, f"{interface.vendor.name}: {interface.name}",
                                       f"{interface.vendor.name}：{interface.name}",
                                       _plain(interface.vendor.contact or "")))
    for person in kb.oncall.people if kb.oncall else ():
        if person.vendor is not None:
            entries.append(SearchEntry("vendor", f"oncall.html#person-{person.id}", f"{person.vendor}: {person.name}",
                                       f"{person.vendor}：{person.name}", _plain(person.phone or "")))
    for zone in kb.topology.zones:
        entries.append(SearchEntry("zone", f"zones.html#zone-{zone.name}", f"{zone.name} {zone.network}",
                                   f"{zone.name} {zone.network}", _plain(f"{zone.purpose} {zone.description or ''}")))
    return entries


def script_json(value: Any) -> Markup:
    """JSON safe inside a <script> element: no `<`, `>` or `&` that could end it or start a comment."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return Markup(text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")
                  .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))


def sla_extra(sla: SlaClass) -> list[tuple[str, Any]]:
    return [(f.name, getattr(sla, f.name)) for f in fields(sla)
            if f.name not in SLA_SHOWN and getattr(sla, f.name) is not None]


def environment() -> Environment:
    env = escaped_environment("medinfra.kb")
    env.filters.update(percent=percent, code_spans=code_spans)
    return env


def render_site(kb: KnowledgeBase) -> dict[str, str]:
    """Every page of the knowledge base by its path inside the KB directory."""
    env = environment()
    topology = kb.topology
    t = words()
    common = {
        "t": t,
        "site": topology.site,
        "built": kb.built_at.strftime("%Y-%m-%d %H:%M %Z").strip(),
        "generator": f"medinfra {__version__}",
        "history": kb.history,
        "search_json": script_json({
            "kinds": {kind: [text.en, text.zh] for kind, text in t.items() if kind.startswith("type_")},
            "nothing": [t["no_results"].en, t["no_results"].zh],
            "entries": [entry.as_list() for entry in search_entries(kb)],
        }),
        "host_urls": {page.host.name: host_url(page.host.name) for page in kb.pages},
        "control_urls": {control.id: control_url(control.id) for control in kb.controls},
        "alert_urls": {alert.name: alert_url(alert.name) for alert in kb.alerts},
        "sla_extra": sla_extra,
        "duty": kb.on_duty,
        # Who holds a role without a shift (a vendor's desk): the people to call instead of "nobody".
        "contacts": {role: tuple(p.name for p in kb.oncall.people if role in p.roles)
                     for role in {r for p in kb.oncall.people for r in p.roles}} if kb.oncall else {},
    }

    def render(template: str, root: str, **values: Any) -> str:
        return env.get_template(template).render(**common, root=root, **values)

    files = {
        "index.html": render("index.html.j2", "", pages=kb.pages, zones=topology.zones,
                             sla_classes=list(topology.sla_classes.values()), interfaces=topology.interfaces,
                             alerts=kb.alerts, controls=kb.controls),
        "zones.html": render("zones.html.j2", "", matrix=kb.matrix, pages=kb.pages),
        "oncall.html": render("oncall.html.j2", "", oncall=kb.oncall, rota=kb.rota, rota_days=ROTA_DAYS),
    }
    for page in kb.pages:
        files[host_url(page.host.name)] = render("host.html.j2", "../", page=page)
    for alert in kb.alerts:
        files[alert_url(alert.name)] = render("alert.html.j2", "../", alert=alert,
                                              runbook=kb.alert_runbooks.get(alert.name))
    for control in kb.controls:
        files[control_url(control.id)] = render("control.html.j2", "../", control=control,
                                                runbook=kb.control_runbooks.get(control.id))
    return files


def _refuse(path: Path, message: str) -> UserInputError:
    return UserInputError([Problem(str(path), (), message)])


def _is_previous_kb(directory: OutputDirectory) -> bool:
    """Whether the directory holds a knowledge base medinfra wrote (its manifest, a regular file, names the
    format), so a rebuild may replace its pages."""
    try:
        with open(directory.path / MANIFEST, "rb", opener=_no_follow) as handle:
            manifest = json.loads(handle.read(1_000_000))
    except (OSError, ValueError):
        return False
    return isinstance(manifest, dict) and manifest.get("format") == KB_FORMAT


def _no_follow(path: str, flags: int) -> int:
    return os.open(path, flags | os.O_NOFOLLOW)


def check_target(path: Path) -> None:
    """Refuse, before anything is read or built, a directory that exists and is neither empty nor a knowledge base
    medinfra built (its manifest says so): a mistyped -o must not mix pages into reports or a home directory."""
    if not os.path.lexists(path):
        return
    with OutputDirectory.open(path) as directory:
        present = [name for name in directory.names() if not name.startswith(TEMPORARY_PREFIX)]
        if present and not _is_previous_kb(directory):
            raise _refuse(path, f"exists and is not a knowledge base medinfra built (no {MANIFEST} of format "
                                f"{KB_FORMAT}); give a new or empty directory")


def write_site(path: Path, files: Mapping[str, str], site: str = "") -> Path:
    """Write the pages into `path` (created if missing) and a manifest of them (sha256 of each) last. A directory
    that exists must be empty or a previous knowledge base (check_target). Pages of the previous build that this one no
    longer has (a host removed) are deleted; nothing else is touched, no symlink is followed."""
    check_target(path)
    with OutputDirectory.open(path) as directory:
        directory.remove_leftovers()
        by_directory: dict[str, dict[str, str]] = {}
        for name, text in files.items():
            parent, _, leaf = name.rpartition("/")
            by_directory.setdefault(parent, {})[leaf] = text
        for parent in PAGE_DIRECTORIES:
            with directory.subdirectory(parent) as sub:
                sub.remove_leftovers()
                wanted = by_directory.get(parent, {})
                for stale in sorted(set(sub.names()) - set(wanted)):
                    if stale.endswith(".html"):
                        sub.remove(stale)
                for leaf, text in wanted.items():
                    sub.write_text(leaf, text)
        for leaf, text in by_directory.get("", {}).items():
            directory.write_text(leaf, text)
        manifest = {
            "format": KB_FORMAT,
            "site": site,
            "generator": f"medinfra {__version__}",
            "files": {name: hashlib.sha256(text.encode("utf-8", "backslashreplace")).hexdigest()
                      for name, text in sorted(files.items())},
        }
        directory.write_text(MANIFEST, json.dumps(manifest, indent=1, ensure_ascii=False) + "\n")
    return path
