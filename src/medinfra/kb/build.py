"""`medinfra kb build`: read the site (topology, inventory, rule files, catalog, runbooks, rota, history), then write
the knowledge base."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from medinfra.collection import collection_directory
from medinfra.compliance.catalog import load_catalog
from medinfra.kb.model import host_pages, zone_matrix
from medinfra.kb.site import KnowledgeBase, render_site, write_site
from medinfra.kb.sources import inventory_backups, load_alert_rules, read_history
from medinfra.package_data import CATALOG_DIR
from medinfra.report.publish import FINDINGS_FILE
from medinfra.topology.load import load_topology
from medinfra.topology.model import Topology

TOPOLOGY_FILE = "hospital.yml"


@dataclass(frozen=True)
class Built:
    directory: Path
    pages: int
    hosts: int
    alerts: int
    controls: int
    rota: bool


def site_zone(topology: Topology) -> tzinfo:
    """The site's time zone (the rota's shifts are in it); UTC when the topology names none or an unknown one."""
    try:
        return ZoneInfo(topology.site.timezone) if topology.site.timezone else UTC
    except (ZoneInfoNotFoundError, ValueError):
        return UTC


def build_kb(inventory: Path, out: Path, history: str | None, findings: Path | None,
             now: datetime | None = None) -> Built:
    """Build the knowledge base of the site at `inventory` into `out`."""
    topology = load_topology(inventory / TOPOLOGY_FILE if inventory.is_dir() else inventory)
    inventory_dir = inventory if inventory.is_dir() else inventory.parent
    collection = collection_directory()
    catalog = load_catalog(CATALOG_DIR)
    alerts = load_alert_rules(collection / "roles" / "monitoring_server" / "files")
    moment = (now or datetime.now(UTC)).astimezone(site_zone(topology))
    if findings is not None and findings.is_dir():
        findings = findings / FINDINGS_FILE
    recorded = read_history(history, topology.site.name, findings)
    kb = KnowledgeBase(
        topology=topology,
        pages=host_pages(topology, inventory_backups(inventory_dir, collection / "roles" / "backup"), recorded),
        matrix=zone_matrix(topology),
        alerts=alerts,
        controls=catalog.controls,
        alert_runbooks={},
        control_runbooks={},
        rota=None,
        on_duty=None,
        escalation=(),
        history=recorded,
        built_at=moment,
    )
    files = render_site(kb)
    write_site(out, files)
    return Built(out, len(files), len(kb.pages), len(alerts), len(catalog.controls), kb.rota is not None)
