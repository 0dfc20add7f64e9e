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
from medinfra.kb.site import ROTA_DAYS, KnowledgeBase, check_target, render_site, write_site
from medinfra.kb.sources import inventory_backups, load_alert_rules, read_history
from medinfra.oncall.load import ONCALL_FILE, load_oncall
from medinfra.oncall.model import OnCall
from medinfra.oncall.schedule import duties, on_duty
from medinfra.package_data import CATALOG_DIR
from medinfra.report.publish import FINDINGS_FILE
from medinfra.runbook import ALERT_RUNBOOKS, control_runbooks, load_alert_runbooks
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


def on_duty_now(oncall: OnCall, moment: datetime) -> dict[str, tuple[str, ...]]:
    """Who holds each role at `moment`, by name."""
    holders: dict[str, tuple[str, ...]] = {}
    for duty in on_duty(oncall, moment):
        holders[duty.role] = (*holders.get(duty.role, ()), duty.person.name)
    return holders


def build_kb(inventory: Path, out: Path, history: str | None, findings: Path | None,
             vault_password_file: Path | None = None, now: datetime | None = None) -> Built:
    """Build the knowledge base of the site at `inventory` into `out`."""
    check_target(out)
    topology = load_topology(inventory / TOPOLOGY_FILE if inventory.is_dir() else inventory)
    inventory_dir = inventory if inventory.is_dir() else inventory.parent
    collection = collection_directory()
    catalog = load_catalog(CATALOG_DIR)
    alerts = load_alert_rules(collection / "roles" / "monitoring_server" / "files")
    moment = (now or datetime.now(UTC)).astimezone(site_zone(topology))
    if findings is not None and findings.is_dir():
        findings = findings / FINDINGS_FILE
    recorded = read_history(history, topology.site.name, findings)
    # No oncall.yml is a site without a rota (the pages say so), not a mistake.
    oncall = load_oncall(inventory_dir / ONCALL_FILE, topology) if (inventory_dir / ONCALL_FILE).is_file() else None
    backups = inventory_backups(inventory_dir, collection / "roles" / "backup", vault_password_file)
    kb = KnowledgeBase(
        topology=topology,
        pages=host_pages(topology, backups, recorded),
        matrix=zone_matrix(topology),
        alerts=alerts,
        controls=catalog.controls,
        alert_runbooks=load_alert_runbooks(collection / ALERT_RUNBOOKS),
        control_runbooks=control_runbooks(catalog),
        oncall=oncall,
        rota=duties(oncall, moment, moment + timedelta(days=ROTA_DAYS)) if oncall else [],
        on_duty=on_duty_now(oncall, moment) if oncall else None,
        history=recorded,
        built_at=moment,
    )
    files = render_site(kb)
    write_site(out, files, topology.site.name)
    return Built(out, len(files), len(kb.pages), len(alerts), len(catalog.controls), oncall is not None)
