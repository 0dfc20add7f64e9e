"""What the knowledge base reads besides the topology: alert rules, the backups the inventory declares, the history.

Each reader turns a file or database that is wrong into a located UserInputError; none writes anything.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from medinfra.history.store import open_history, parse_started
from medinfra.kb.model import NO_HISTORY, Backups, BackupSet, Drill, History, HostAudit, host_audits
from medinfra.problems import Problem, UserInputError
from medinfra.report.findings_file import read_findings
from medinfra.yamldoc import load_yaml

RULE_FILES = "*.rules.yml"
# The inventory values role `backup`'s defaults are computed from, read as a playbook would see them.
BACKUP_INPUTS = ("medinfra_topology", "medinfra_data_paths", "medinfra_data_classification", "medinfra_sla")
BACKUP_KEYS = (
    "backup_enabled", "backup_server", "backup_server_root", "backup_paths", "backup_postgresql_databases",
    "backup_sets", "backup_interval_minutes", "backup_check_on_calendar", "backup_drill_on_calendar",
    "backup_keep_daily", "backup_keep_weekly", "backup_keep_monthly",
)


@dataclass(frozen=True)
class AlertRule:
    name: str
    group: str
    severity: str
    duration: str  # the rule's `for`, "" when it fires at once
    expr: str
    summary: str
    description: str
    runbook_url: str
    file: str


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def load_alert_rules(directory: Path) -> list[AlertRule]:
    """Every alerting rule of the Prometheus rule files in `directory`, by file name then order."""
    rules, problems = [], []
    for path in sorted(directory.glob(RULE_FILES)):
        document = load_yaml(path)
        groups = document.data.get("groups") if isinstance(document.data, dict) else None
        if not isinstance(groups, list):
            problems.append(document.problem(("groups",), "a rule file needs a list of groups"))
            continue
        for g, group in enumerate(groups):
            for r, rule in enumerate(group.get("rules") or [] if isinstance(group, dict) else []):
                if not isinstance(rule, dict) or "alert" not in rule:
                    continue  # a recording rule
                labels, notes = rule.get("labels") or {}, rule.get("annotations") or {}
                if not isinstance(labels, dict) or not isinstance(notes, dict):
                    problems.append(document.problem(("groups", g, "rules", r), "labels and annotations are maps"))
                    continue
                rules.append(AlertRule(
                    _text(rule["alert"]), _text(group.get("name")), _text(labels.get("severity")),
                    _text(rule.get("for")), _text(rule.get("expr")).strip(), _text(notes.get("summary")),
                    _text(notes.get("description")), _text(notes.get("runbook_url")), str(path),
                ))
    if problems:
        raise UserInputError(problems)
    return rules


def inventory_backups(inventory: Path, backup_role: Path, vault_password_file: Path | None) -> dict[str, Backups]:
    """Each host's backups: role `backup`'s defaults, overridden by the inventory (group_vars, host_vars), templated
    for that host the way a playbook would. A host with backups switched off (backup_enabled) has no set."""
    from ansible.parsing.dataloader import DataLoader
    from ansible.template import Templar

    from medinfra.audit.targets import read_hosts

    loader = DataLoader()
    # Trusted as templates, as Ansible trusts a role's defaults: the file ships with the collection.
    defaults = loader.load_from_file(str(backup_role / "defaults" / "main.yml"), trusted_as_template=True) or {}
    found = {}
    for host, values in read_hosts(inventory, None, vault_password_file, BACKUP_INPUTS + BACKUP_KEYS):
        variables = {**defaults, **values, "inventory_hostname": host}
        templar = Templar(loader=loader, variables=variables)
        resolved = {key: templar.template(variables[key]) for key in BACKUP_KEYS if key in variables}
        found[host] = _backups(resolved)
    return found


def _backups(values: Mapping[str, Any]) -> Backups:
    enabled = bool(values.get("backup_enabled", True))
    sets = tuple(
        BackupSet(str(item.get("name", "")), tuple(map(str, item.get("paths") or ())),
                  tuple(map(str, item.get("databases") or ())))
        for item in (values.get("backup_sets") or () if enabled else ()) if isinstance(item, Mapping)
    )
    return Backups(
        sets=sets,
        server=str(values.get("backup_server", "")),
        server_root=str(values.get("backup_server_root", "")),
        interval_minutes=int(values.get("backup_interval_minutes", 0)),
        check_calendar=str(values.get("backup_check_on_calendar", "")),
        drill_calendar=str(values.get("backup_drill_on_calendar", "")),
        keep=(int(values.get("backup_keep_daily", 0)), int(values.get("backup_keep_weekly", 0)),
              int(values.get("backup_keep_monthly", 0))),
    )


def read_history(location: str | None, site: str, findings: Path | None = None, drills: int = 50) -> History:
    """The site's last audit (per host) and its recent drills, newest first. The audit is the findings file when one
    is given (a run not recorded), else the last run the history holds of the site. The history is opened read-only,
    so a location where nothing was recorded reads as empty; None reads no history."""
    if location is None and findings is None:
        return NO_HISTORY
    audits: dict[str, HostAudit] = {}
    last_run: tuple[str, datetime] | None = None
    if findings is not None:
        document = read_findings(findings)
        started = parse_started(document["started_at"])
        last_run = (str(findings), started)
        audits = host_audits(document, str(findings), started)
    if location is None:
        return History(True, audits, last_run, ())
    with open_history(location, read_only=True) as store:
        runs = store.runs(site, limit=1) if findings is None else []
        if runs:
            run = runs[0]
            last_run = (f"#{run.id}", run.started_at)
            try:
                audits = host_audits(store.document(run.id), f"#{run.id}", run.started_at)
            except (KeyError, TypeError) as exc:
                raise UserInputError([Problem(store.location, ("runs", run.id), f"damaged run: {exc}")]) from None
        recorded = tuple(Drill(d.kind, d.name, d.started_at, d.seconds, d.passed, d.evidence)
                         for d in store.drills(site, drills))
    return History(True, audits, last_run, recorded)
