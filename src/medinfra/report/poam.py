"""What an audit leaves open as an OSCAL 1.0.6 plan of action and milestones (POA&M, JSON).

How the open items (fix.next_steps) map to OSCAL:
- one poam-item per control that failed and is not waived, its hosts as inventory items (with their SLA class
  and legacy flag when the topology is known);
- the failures are the same observations as in the run's assessment results, with the same uuids (uuid5s of the
  run id, report.oscal.Names): the poam-item's related-observations resolve inside this document and, by uuid,
  in the assessment results, which a link (through a back-matter resource) names;
- each item has one risk with status open, characterised by the control's severity (RISK_LEVEL), its deadline
  the due date, and a planned remediation whose milestone task has the owner as responsible role: `medinfra fix`
  (role and tags) for the hosts it can change, the catalog's remediation text for the hosts people must act on;
- props say how it is repaired (remediation: medinfra-fix, manual or partial), owner, due date and whether it is
  overdue. English texts in descriptions, the Chinese remediation in remarks, as assessment-results does.

Uuids of the document's own records are uuid5s too; the document's uuid and times also depend on `now`.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from medinfra.compliance.model import Status
from medinfra.fix.next_steps import NextStep, next_steps
from medinfra.report.model import Report
from medinfra.report.oscal import (
    OSCAL_FILE,
    TIME_FORMAT,
    Names,
    finding_observations,
    inventory_item,
    line,
    metadata,
    props,
    run_start,
    timestamp,
    tool_component,
    tool_origin,
)
from medinfra.safe_output import OutputDirectory
from medinfra.topology.model import Topology

POAM_FILE = "plan-of-action-and-milestones.oscal.json"
# The risk a failure leaves, by the control's severity (NIST SP 800-30's qualitative scale).
RISK_LEVEL = {"critical": "very-high", "high": "high", "medium": "moderate", "low": "low"}
# The naming system of the risk facet: medinfra's own (the systems OSCAL lists do not define this scale).
NS_RISK = "https://medinfra.example/ns/oscal/risk"
OWNER_ROLE = "risk-owner"


def remediation_kind(step: NextStep) -> str:
    if not step.left_alone:
        return "medinfra-fix"
    return "partial" if step.fixed_hosts else "manual"


def owner_parties(step: NextStep, names: Names) -> list[str]:
    """Approvers of expired waivers own their items again; the site (its operations) owns the rest."""
    return [names("party", "owner", owner) for owner in step.owners] or [names("party", "site")]


def remediations(step: NextStep, names: Names, deadline: str | None) -> list[dict[str, Any]]:
    control = step.item.control
    owners = owner_parties(step, names)
    milestone: dict[str, Any] = {
        "type": "milestone",
        "title": "Remediated and re-audited",
        "responsible-roles": [{"role-id": OWNER_ROLE, "party-uuids": owners}],
    }
    if deadline is not None:
        milestone["timing"] = {"on-date": {"date": deadline}}
    records = []
    if step.fixed_hosts:
        tags = ",".join(control.remediation_tags)
        records.append({
            "uuid": names("remediation", control.id, "fix"),
            "lifecycle": "planned",
            "title": f"medinfra fix: role {control.remediation_role}, tags {tags}",
            "description": f"`medinfra fix` converges role {control.remediation_role} with tags {tags} on "
            f"{', '.join(step.fixed_hosts)}, then re-audits them. {control.remediation.en}",
            "props": props(("remediation", "medinfra-fix"), ("remediation-role", control.remediation_role),
                           ("remediation-tags", tags), *(("host", host) for host in step.fixed_hosts)),
            "tasks": [{"uuid": names("milestone", control.id, "fix"), **milestone}],
            "remarks": control.remediation.zh,
        })
    for index, entry in enumerate(step.left_alone):
        records.append({
            "uuid": names("remediation", control.id, "manual", str(index)),
            "lifecycle": "planned",
            "title": f"Manual: {', '.join(entry.hosts)}",
            "description": f"{control.remediation.en} (medinfra fix does not touch these hosts: {entry.reason.en})",
            "props": props(("remediation", "manual"), *(("host", host) for host in entry.hosts)),
            "tasks": [{"uuid": names("milestone", control.id, "manual", str(index)), **milestone}],
            "remarks": f"{control.remediation.zh}（{entry.reason.zh}）",
        })
    return records


def risk(step: NextStep, names: Names, observed: list[dict[str, str]]) -> dict[str, Any]:
    control = step.item.control
    level = RISK_LEVEL[control.severity]
    record: dict[str, Any] = {
        "uuid": names("open-risk", control.id),
        "title": f"{control.id} not met on {len(step.item.hosts)} host(s)",
        "description": f"{control.title.en} / {control.title.zh}: fails on {', '.join(step.item.hosts)}.",
        "statement": f"{control.rationale.en}\n\n{control.rationale.zh}",
        "props": props(("severity", control.severity), ("risk-level", level)),
        "status": "open",
        "characterizations": [
            {"origin": tool_origin(names)[0], "facets": [{"name": "risk", "system": NS_RISK, "value": level}]}
        ],
    }
    deadline = timestamp(f"{step.due.isoformat()}T23:59:59+00:00")
    if deadline is not None:
        record["deadline"] = deadline
    record["remediations"] = remediations(step, names, deadline)
    record["related-observations"] = observed
    return record


def poam_item(step: NextStep, names: Names, results: str, observed: list[dict[str, str]]) -> dict[str, Any]:
    control = step.item.control
    hosts = step.item.hosts
    return {
        "uuid": names("poam-item", control.id),
        "title": f"{control.id}: {control.title.en}",
        "description": f"{control.title.en} / {control.title.zh}: fails on {len(hosts)} host(s) "
        f"({', '.join(hosts)}). Due {step.due.isoformat()} ({step.basis.en}).",
        "props": props(
            ("control", control.id),
            ("severity", control.severity),
            ("remediation", remediation_kind(step)),
            ("remediation-role", control.remediation_role),
            ("remediation-tags", ",".join(control.remediation_tags)),
            ("owner", ", ".join(step.owners) or "site operations"),
            ("due", step.due.isoformat()),
            ("overdue", "true" if step.overdue else "false"),
            ("due-basis", step.basis.en),
            *(("expired-waiver", w.expires.isoformat()) for w in step.item.expired_waivers),
            *(("host", host) for host in hosts),
        ),
        "links": [{"href": f"#{results}", "rel": "assessment-results",
                   "text": "The run's assessment results: observations with the same uuids"}],
        "origins": tool_origin(names),
        "related-observations": observed,
        "related-risks": [{"risk-uuid": names("open-risk", control.id)}],
        "remarks": f"{control.remediation.en}\n\n{control.remediation.zh}",
    }


def poam_document(
    report: Report, topology: Topology | None, now: datetime, results_href: str = OSCAL_FILE
) -> dict[str, Any]:
    """The POA&M of one run's open items as of `now`; `results_href` is where its assessment results are."""
    names = Names(report.run_id)
    start = run_start(report)
    written = now.astimezone(UTC).strftime(TIME_FORMAT)
    steps = next_steps(report, topology, now)
    open_controls = {step.item.control.id for step in steps}
    failures = [f for f in report.findings if f.status is Status.FAIL and f.control in open_controls]
    observations = [json.loads(record) for record in finding_observations(report, names, start, failures)]
    observed: dict[str, list[dict[str, str]]] = {}
    for failure, observation in zip(failures, observations, strict=True):
        observed.setdefault(failure.control, []).append({"observation-uuid": observation["uuid"]})
    results = names("assessment-results-file")
    head = metadata(report, names, f"medinfra plan of action and milestones: {report.site}, run {report.run_id}",
                    written, written)
    if steps:
        owners = sorted({owner for step in steps for owner in step.owners})
        head["roles"].append({"id": OWNER_ROLE, "title": "Risk owner"})
        head["parties"] += [{"uuid": names("party", "owner", o), "type": "person", "name": line(o)} for o in owners]
        head["responsible-parties"].append({
            "role-id": OWNER_ROLE,
            "party-uuids": sorted({party for step in steps for party in owner_parties(step, names)}),
        })
    document: dict[str, Any] = {"uuid": names("poam", written), "metadata": head}
    affected = {host for step in steps for host in step.item.hosts}
    by_name = topology.hosts_by_name if topology is not None else {}
    inventory = []
    for host in report.hosts:
        if host.name in affected:
            item = inventory_item(host, names)
            if host.name in by_name:
                seen = by_name[host.name]
                item["props"] += props(("sla-class", seen.sla), ("legacy", "true" if seen.legacy else "false"))
            inventory.append(item)
    local: dict[str, Any] = {"components": [tool_component(report, names)]}
    if inventory:
        local["inventory-items"] = inventory
    document["local-definitions"] = local
    if steps:
        document["observations"] = observations
        document["risks"] = [risk(step, names, observed[step.item.control.id]) for step in steps]
        document["poam-items"] = [poam_item(step, names, results, observed[step.item.control.id]) for step in steps]
    else:
        # OSCAL wants at least one item: say that nothing is open.
        document["poam-items"] = [{
            "uuid": names("poam-item", "none"),
            "title": "Nothing open",
            "description": "Every control passed, was waived or could not be decided on every host of this run.",
        }]
    document["back-matter"] = {"resources": [{
        "uuid": results,
        "title": f"Assessment results of run {report.run_id}",
        "props": props(("assessment-results-uuid", names("assessment-results"))),
        "rlinks": [{"href": results_href, "media-type": "application/json"}],
    }]}
    return {"plan-of-action-and-milestones": document}


def write_poam(
    report: Report, directory: OutputDirectory, name: str, topology: Topology | None, now: datetime,
    results_href: str = OSCAL_FILE,
) -> Path:
    document = poam_document(report, topology, now, results_href)
    return directory.write_text(name, json.dumps(document, ensure_ascii=False, indent=1) + "\n")
