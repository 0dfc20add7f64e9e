"""The evaluator: (evidence, catalog, waivers, time) -> findings. Pure: no I/O, no clock, no host.

Checks read one tree per host (`evidence_root`): the sections of its evidence, `inventory` (the host
as the inventory describes it) and `site`, what the other audited hosts say about it. `site` is
computed once per audit by a pre-pass over every host's evidence (`site_views`), for properties
that no host shows alone:

- `site.monitoring.servers`: the audited monitoring servers, i.e. hosts with the `monitoring_server`
  service in the inventory or a running Prometheus in their evidence.
- `site.monitoring.scraped_by`: those among them whose running Prometheus has this host as a node
  target (a target in its file_sd `node.json` whose `instance` label is the host's name, or whose
  address is the host's name or its inventory `address`).
- `site.interfaces`: for each interface the host serves (inventory `interfaces_in`), the verdict of its
  protocol probe as the servers' Prometheus last scraped it (`up`, `result`, `latency_seconds`), or
  `result: not probed` when no server's Prometheus has it.

When no monitoring server is part of the audit, `site.monitoring` is unavailable (a check reading it
gives `error`: the audit cannot say); when this host is scraped by none and some server's targets
could not be read, `scraped_by` is unavailable for the same reason. Likewise, when some server's
Prometheus could not be asked about the interfaces (its evidence is not an evidence document, or its
`interfaces` are unavailable or absent), the `up` of every interface no server has a verdict for is
unavailable. A host cannot write `site` itself: the pre-pass replaces whatever its evidence holds
under that name.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from medinfra.compliance.checks import Undecided, resolve, run_check
from medinfra.compliance.derived import derived_views
from medinfra.compliance.model import Catalog, Control, Finding, HostEvidence, Status, Waiver

EVIDENCE_SCHEMA = "medinfra-evidence/1"
# Why a host's evidence gives nothing to judge (its findings are errors, and so is what it would say of others).
NOT_EVIDENCE = f"evidence is not a {EVIDENCE_SCHEMA} document"
# Characters of JSON in one section of the facts (sshd, packages, auditd...). The collector writes under 35 KB
# for the largest (pam on a lab host); a megabyte leaves room for big hosts and bounds the time spent judging
# a hostile one.
FACT_LIMIT = 2**20
MONITORING_SERVICE = "monitoring_server"
# Why the site views that need a monitoring server in the audit (scrape coverage, interface probes) cannot be judged.
NO_MONITORING_SERVER = (
    "no monitoring server is part of this audit (a host with the monitoring_server service or a running "
    "Prometheus); audit it together with this host"
)


def bounded_facts(facts: Mapping[str, Any]) -> dict[str, Any]:
    """The facts with each section over FACT_LIMIT replaced by an unavailable fact, so that every check reading it
    gives `error`: a hostile host cannot make the evaluator spend unbounded time on one fact, nor pass by it."""
    bounded = {}
    for name, value in facts.items():
        size = len(json.dumps(value))
        bounded[name] = value if size <= FACT_LIMIT else unavailable(
            f"{size} characters of JSON, over the limit of {FACT_LIMIT} for one fact"
        )
    return bounded


def evidence_root(host: HostEvidence, site: Mapping[str, Any] | None = None) -> dict[str, Any] | None:
    """The tree checks read: the facts' sections (bounded), `inventory` (the host as the inventory describes it),
    `derived` (what the controller computes from this host's own evidence, such as firewall verdicts) and (when
    given) `site`."""
    facts = host.evidence.get("facts")
    if host.evidence.get("schema") != EVIDENCE_SCHEMA or not isinstance(facts, Mapping):
        return None
    facts = bounded_facts(facts)
    root = {**facts, "inventory": dict(host.inventory)}
    root["derived"] = derived_views(facts, host.inventory, host.host)
    if site is not None:
        root["site"] = dict(site)
    return root


def unavailable(reason: str) -> dict[str, str]:
    return {"unavailable": reason}


def target_host(target: str) -> str:
    """The host part of a scrape target: `10.0.0.5:9100` -> `10.0.0.5`, `[fd00::5]:9100` -> `fd00::5`."""
    if target.startswith("["):
        return target[1:].partition("]")[0]
    return target.rpartition(":")[0] if target.count(":") == 1 else target


def prometheus_running(root: Mapping[str, Any]) -> bool:
    """Whether the host's evidence shows its Prometheus running; Undecided when the section could not be read.
    One not running is an observation: it scrapes nobody and probes nothing."""
    prometheus = resolve(root, (), ("monitoring", "prometheus"))
    return isinstance(prometheus, Mapping) and prometheus.get("running") is True


def scraped_names(root: Mapping[str, Any] | None) -> set[str] | str:
    """Names and addresses a monitoring server's Prometheus scrapes as nodes, or why they are unknown."""
    if root is None:
        return f"its {NOT_EVIDENCE}"
    try:
        if not prometheus_running(root):
            return set()
        targets = resolve(root, (), ("monitoring", "prometheus", "node_targets"))
    except Undecided as exc:
        return str(exc)
    if not isinstance(targets, list):
        return "monitoring.prometheus.node_targets: absent from the evidence"
    names: set[str] = set()
    for target in targets:
        if isinstance(target, Mapping):
            names.add(str(target.get("instance", "")))
            names.add(target_host(str(target.get("target", ""))))
    names.discard("")
    return names


def monitoring_servers(hosts: Sequence[HostEvidence], roots: Mapping[str, Any]) -> dict[str, set[str] | str]:
    """Every audited monitoring server -> what it scrapes (or why that is unknown)."""
    servers: dict[str, set[str] | str] = {}
    for host in hosts:
        root = roots[host.host]
        declared = MONITORING_SERVICE in (host.inventory.get("services") or ())
        try:
            running = root is not None and prometheus_running(root)
        except Undecided:
            running = False
        if declared or running:
            servers[host.host] = scraped_names(root)
    return servers


def monitoring_view(host: HostEvidence, servers: Mapping[str, set[str] | str]) -> Any:
    if not servers:
        return unavailable(NO_MONITORING_SERVER)
    keys = {host.host, str(host.inventory.get("address") or "")} - {""}
    scraped_by = sorted(name for name, scraped in servers.items() if isinstance(scraped, set) and keys & scraped)
    unknown = {name: reason for name, reason in servers.items() if isinstance(reason, str)}
    view: dict[str, Any] = {"servers": sorted(servers), "scraped_by": scraped_by}
    if not scraped_by and unknown:
        view["scraped_by"] = unavailable(
            "; ".join(f"node targets of {name} unknown: {reason}" for name, reason in sorted(unknown.items()))
        )
    return view


def probe_states(servers: Iterable[str], roots: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """What the audited monitoring servers' Prometheus last saw of each interface probe, and why a server could not
    say (its evidence's monitoring.prometheus.interfaces, unavailable or absent)."""
    states: dict[str, Any] = {}
    unknown: list[str] = []
    for server in sorted(servers):
        root = roots[server]
        if root is None:
            # Its Prometheus cannot be asked: an error for the interfaces, as for the hosts it scrapes.
            unknown.append(f"{server}: its {NOT_EVIDENCE}")
            continue
        try:
            if not prometheus_running(root):
                continue
            seen = resolve(root, (), ("monitoring", "prometheus", "interfaces"))
        except Undecided as exc:
            unknown.append(f"{server}: {exc}")
            continue
        if isinstance(seen, Mapping):
            for name, state in seen.items():
                # A failing verdict from any server stands: the interface fails from where that server sits.
                if isinstance(state, Mapping) and (name not in states or states[name].get("up") is True):
                    states[name] = dict(state)
        else:
            unknown.append(f"{server}: monitoring.prometheus.interfaces absent from the evidence")
    return states, unknown


def interfaces_view(
    host: HostEvidence, servers: Mapping[str, Any], states: Mapping[str, Any], unknown: list[str]
) -> Any:
    """The probe verdict of every interface ``host`` serves (inventory.interfaces_in), as the monitoring saw it."""
    if not servers:
        return unavailable(NO_MONITORING_SERVER)
    view: list[dict[str, Any]] = []
    for interface in host.inventory.get("interfaces_in") or ():
        name = str(interface.get("name", "")) if isinstance(interface, Mapping) else ""
        state = states.get(name)
        if state is None and unknown:
            view.append({"name": name, "up": unavailable("; ".join(unknown))})
        elif state is None:
            view.append({"name": name, "up": False, "result": "not probed", "latency_seconds": None})
        else:
            view.append({"name": name, **state})
    return view


def site_views(hosts: Sequence[HostEvidence], roots: Mapping[str, Any] | None = None) -> dict[str, dict[str, Any]]:
    """The `site` tree of every host: what the audit as a whole says about it (the pre-pass)."""
    roots = roots if roots is not None else {host.host: evidence_root(host) for host in hosts}
    servers = monitoring_servers(hosts, roots)
    states, unknown = probe_states(servers, roots)
    return {
        host.host: {
            "monitoring": monitoring_view(host, servers),
            "interfaces": interfaces_view(host, servers, states, unknown),
        }
        for host in hosts
    }


def matching_waivers(waivers: Iterable[Waiver], control: str, host: HostEvidence) -> list[Waiver]:
    groups = host.inventory.get("groups") or ()
    return [w for w in waivers if w.control == control and w.covers(host.host, groups)]


def evaluate_control(
    control: Control, host: HostEvidence, root: Mapping[str, Any], waivers: Sequence[Waiver], now: datetime
) -> Finding:
    if control.applies_when is not None:
        applies = run_check(control.applies_when, root, now)
        if applies.status == "fail":
            return Finding(
                host.host, control.id, Status.NOT_APPLICABLE, f"does not apply: {applies.reason}", applies.excerpt
            )
        if applies.status == "error":
            return Finding(host.host, control.id, Status.ERROR, applies.reason, applies.excerpt)
    outcome = run_check(control.check, root, now)
    status = Status(outcome.status)
    if status is Status.FAIL:
        matching = matching_waivers(waivers, control.id, host)
        active = [w for w in matching if not w.expired(now.date())]
        if active:
            return Finding(host.host, control.id, Status.WAIVED, outcome.reason, outcome.excerpt, active[0])
        if matching:
            return Finding(
                host.host, control.id, status, outcome.reason, outcome.excerpt, expired_waiver=matching[0]
            )
    return Finding(host.host, control.id, status, outcome.reason, outcome.excerpt)


@dataclass(frozen=True)
class Judgement:
    """The findings of an audit and the site tree of each host they were judged with (the pre-pass)."""

    findings: list[Finding]
    sites: dict[str, dict[str, Any]]


def evaluate(
    hosts: Iterable[HostEvidence], catalog: Catalog, waivers: Sequence[Waiver], now: datetime
) -> list[Finding]:
    """Findings for every control on every host, in host then control order (after the site pre-pass)."""
    return judgement(hosts, catalog, waivers, now).findings


def judgement(hosts: Iterable[HostEvidence], catalog: Catalog, waivers: Sequence[Waiver], now: datetime) -> Judgement:
    """`evaluate`, keeping the site pre-pass for the reports (each interface's probe verdict)."""
    hosts = list(hosts)
    roots = {host.host: evidence_root(host) for host in hosts}
    sites = site_views(hosts, roots)
    findings = []
    for host in hosts:
        root = roots[host.host]
        if root is not None:
            root = {**root, "site": sites[host.host]}
        for control in catalog.controls:
            if root is None:
                findings.append(
                    Finding(host.host, control.id, Status.ERROR, NOT_EVIDENCE, {})
                )
            else:
                findings.append(evaluate_control(control, host, root, waivers, now))
    return Judgement(findings, sites)
