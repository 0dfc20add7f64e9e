"""Kills mutants of the evaluator (compliance/evaluate.py) that the behaviour tests let through (`make mutation`):
the exact findings (status, reason, evidence, waiver) and the exact site views of the pre-pass."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pytest

from medinfra.compliance.evaluate import (
    FACT_LIMIT,
    NO_MONITORING_SERVER,
    bounded_facts,
    evaluate_control,
    evidence_root,
    judgement,
    scraped_names,
    site_views,
    target_host,
)
from medinfra.compliance.model import Catalog, Finding, HostEvidence, Status, Waiver
from tests.unit.test_audit import control

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
NOT_EVIDENCE = "evidence is not a medinfra-evidence/1 document"
ROOT_LOGIN = control("root_login_off", {"fact": "sshd.permitrootlogin", "equals": "no"})


def evidence(**facts: Any) -> dict[str, Any]:
    return {"schema": "medinfra-evidence/1", "facts": facts}


def prometheus(**fields: Any) -> dict[str, Any]:
    """The facts of a host whose Prometheus runs, with these fields (node_targets, interfaces)."""
    return {"monitoring": {"prometheus": {"running": True, **fields}}}


def monitoring_server(name: str, facts: dict[str, Any]) -> HostEvidence:
    return HostEvidence(name, evidence(**facts), {"services": ["monitoring_server"]})


def broken_monitoring_server(name: str) -> HostEvidence:
    return HostEvidence(name, {"facts": "nonsense"}, {"services": ["monitoring_server"]})


def serving(name: str, *interfaces: Any) -> HostEvidence:
    """A host serving these inventory interfaces (interfaces_in)."""
    return HostEvidence(name, evidence(), {"interfaces_in": list(interfaces)})


# ---------------------------------------------------------------- the facts and the tree checks read


def test_a_fact_of_exactly_the_limit_is_judged_and_one_character_more_is_not() -> None:
    at_limit = "x" * (FACT_LIMIT - 2)  # with its two quotes, FACT_LIMIT characters of JSON
    over = at_limit + "x"
    assert bounded_facts({"at": at_limit, "over": over}) == {
        "at": at_limit,
        "over": {"unavailable": f"{FACT_LIMIT + 1} characters of JSON, over the limit of {FACT_LIMIT} for one fact"},
    }


def test_evidence_needs_both_the_schema_and_a_mapping_of_facts() -> None:
    assert evidence_root(HostEvidence("h", {"schema": "medinfra-evidence/1", "facts": ["sshd"]})) is None
    assert evidence_root(HostEvidence("h", {"schema": "medinfra-evidence/0", "facts": {"sshd": {}}})) is None
    assert evidence_root(HostEvidence("h", {"facts": {"sshd": {}}})) is None


def test_the_root_holds_the_facts_the_inventory_the_derived_views_of_this_host_and_the_site() -> None:
    pair = {"name": "his-pg", "primary": "his-db-1", "standby": "his-db-2"}
    host = HostEvidence("his-db-1", evidence(sshd={"permitrootlogin": "no"}), {"database_pair": pair})
    root = evidence_root(host, {"monitoring": {"servers": []}})
    assert root is not None
    assert sorted(root) == ["derived", "inventory", "site", "sshd"]
    assert root["inventory"] == {"database_pair": pair}
    assert root["site"] == {"monitoring": {"servers": []}}
    # The pair's view names this host's partner: the derived views know which host they are about.
    assert root["derived"]["database"] == {
        "member": True,
        "cluster": "his-pg",
        "partner": "his-db-2",
        "rpo_seconds": None,
        "replication": {"unavailable": "database.replication: absent from the evidence"},
    }
    assert sorted(root["derived"]) == ["audit", "database", "firewall", "storage"]
    assert "site" not in (evidence_root(host) or {})


# ---------------------------------------------------------------- what a monitoring server scrapes


def test_a_server_scrapes_each_target_by_its_instance_label_and_its_address_and_nothing_else() -> None:
    root = prometheus(node_targets=[
        {"instance": "his-db", "target": "10.0.0.5:9100"},
        {"target": "[fd00::5]:9100"},  # no instance label
        {"instance": "pacs-01"},  # no address
        "not a target",
    ])
    assert scraped_names(root) == {"his-db", "10.0.0.5", "fd00::5", "pacs-01"}


def test_why_a_server_s_targets_are_unknown() -> None:
    assert scraped_names(None) == "its evidence is not a medinfra-evidence/1 document"
    assert scraped_names(prometheus()) == "monitoring.prometheus.node_targets: absent from the evidence"
    assert scraped_names(prometheus(node_targets={"unavailable": "node.json is not JSON"})) == (
        "monitoring.prometheus.node_targets: unavailable on the host: node.json is not JSON"
    )
    assert scraped_names({"monitoring": {"prometheus": {"running": False}}}) == set()


def test_the_host_part_of_a_bracketed_target_ends_at_its_first_closing_bracket() -> None:
    assert target_host("[fd00::5]]:9100") == "fd00::5"


def test_a_host_whose_monitoring_section_is_unavailable_is_no_monitoring_server() -> None:
    unread = HostEvidence("pacs-01", evidence(monitoring={"unavailable": "permission denied"}), {})
    assert site_views([unread])["pacs-01"]["monitoring"] == {"unavailable": NO_MONITORING_SERVER}
    server = monitoring_server("monitor-01", prometheus(node_targets=[{"instance": "pacs-01"}]))
    assert site_views([unread, server])["pacs-01"]["monitoring"] == {
        "servers": ["monitor-01"], "scraped_by": ["monitor-01"],
    }


def test_placeholder_like_names_are_names_like_any_other() -> None:
    """Only the host's name and its inventory address match a target: not a stand-in for a missing address."""
    server = monitoring_server("monitor-01", prometheus(node_targets=[{"instance": "XXXX"}, {"instance": "None"}]))
    views = site_views([server, HostEvidence("pacs-01", evidence(), {}), HostEvidence("XXXX", evidence(), {})])
    assert views["pacs-01"]["monitoring"] == {"servers": ["monitor-01"], "scraped_by": []}
    assert views["XXXX"]["monitoring"] == {"servers": ["monitor-01"], "scraped_by": ["monitor-01"]}


def test_every_server_whose_targets_are_unknown_is_named_in_server_order() -> None:
    unreadable = monitoring_server("monitor-01", prometheus(node_targets={"unavailable": "node.json is not JSON"}))
    hosts = [broken_monitoring_server("monitor-02"), unreadable, HostEvidence("pacs-01", evidence(), {})]
    assert site_views(hosts)["pacs-01"]["monitoring"] == {
        "servers": ["monitor-01", "monitor-02"],
        "scraped_by": {
            "unavailable": "node targets of monitor-01 unknown: monitoring.prometheus.node_targets: unavailable on "
            "the host: node.json is not JSON; node targets of monitor-02 unknown: its evidence is not a "
            "medinfra-evidence/1 document"
        },
    }


def test_the_pre_pass_reads_the_roots_it_is_given() -> None:
    """judgement computes every host's root once and hands them to site_views, which must not read them again."""
    hosts = [broken_monitoring_server("monitor-01"), HostEvidence("pacs-01", evidence(), {})]
    roots = {"monitor-01": prometheus(node_targets=[{"instance": "pacs-01"}], interfaces={}), "pacs-01": {}}
    assert site_views(hosts, roots)["pacs-01"]["monitoring"] == {"servers": ["monitor-01"],
                                                                 "scraped_by": ["monitor-01"]}


# ---------------------------------------------------------------- interface probes


def test_without_a_monitoring_server_no_interface_can_be_judged() -> None:
    assert site_views([serving("his-app", {"name": "his-fhir"})])["his-app"]["interfaces"] == {
        "unavailable": NO_MONITORING_SERVER
    }


def test_an_interface_without_a_name_is_one_no_probe_has_seen() -> None:
    server = monitoring_server("monitor-01", prometheus(node_targets=[], interfaces={}))
    views = site_views([server, serving("his-app", {"port": 2575}, "lis-his-results")])
    not_probed = {"name": "", "up": False, "result": "not probed", "latency_seconds": None}
    assert views["his-app"]["interfaces"] == [not_probed, not_probed]


@pytest.mark.parametrize(
    ("unaskable", "reason"),
    [
        (monitoring_server("monitor-01", prometheus(node_targets=[], interfaces={"unavailable": "no answer"})),
         "monitor-01: monitoring.prometheus.interfaces: unavailable on the host: no answer"),
        (broken_monitoring_server("monitor-01"), "monitor-01: its evidence is not a medinfra-evidence/1 document"),
    ],
)
def test_a_server_that_could_not_be_asked_does_not_hide_what_the_next_one_saw(
    unaskable: HostEvidence, reason: str
) -> None:
    ok = {"up": True, "result": "ok", "latency_seconds": 0.004}
    hosts = [
        unaskable,
        monitoring_server("monitor-02", prometheus(node_targets=[], interfaces={"lis-his-results": ok})),
        serving("his-app", {"name": "lis-his-results"}, {"name": "his-fhir"}),
    ]
    assert site_views(hosts)["his-app"]["interfaces"] == [
        {"name": "lis-his-results", **ok},
        {"name": "his-fhir", "up": {"unavailable": reason}},
    ]


def test_a_server_without_verdicts_or_without_evidence_makes_the_interfaces_unknown() -> None:
    """An interface no server has a verdict for is an error, not `not probed`, when some server could not say:
    its Prometheus was not asked (no interfaces in its evidence) or its evidence is no evidence at all."""
    hosts = [
        broken_monitoring_server("monitor-02"),
        monitoring_server("monitor-01", prometheus(node_targets=[])),
        serving("his-app", {"name": "his-fhir"}),
    ]
    reason = (
        "monitor-01: monitoring.prometheus.interfaces absent from the evidence; "
        "monitor-02: its evidence is not a medinfra-evidence/1 document"
    )
    assert site_views(hosts)["his-app"]["interfaces"] == [{"name": "his-fhir", "up": {"unavailable": reason}}]
    assert site_views([hosts[0], hosts[2]])["his-app"]["interfaces"] == [
        {"name": "his-fhir", "up": {"unavailable": "monitor-02: its evidence is not a medinfra-evidence/1 document"}}
    ]


def test_a_server_whose_prometheus_is_stopped_probes_nothing() -> None:
    """A stopped Prometheus is observed, not unknown: its interfaces fail as not probed, as its hosts fail as scraped
    by nobody (monitoring_view); what another server saw still counts."""
    stopped = HostEvidence("monitor-01", evidence(monitoring={"prometheus": {"running": False}}),
                           {"services": ["monitoring_server"]})
    his_app = serving("his-app", {"name": "his-fhir"}, {"name": "lis-his-results"})
    not_probed = {"up": False, "result": "not probed", "latency_seconds": None}
    views = site_views([stopped, his_app])["his-app"]
    assert views["interfaces"] == [{"name": "his-fhir", **not_probed}, {"name": "lis-his-results", **not_probed}]
    assert views["monitoring"] == {"servers": ["monitor-01"], "scraped_by": []}
    ok = {"up": True, "result": "ok", "latency_seconds": 0.004}
    running = monitoring_server("monitor-02", prometheus(node_targets=[], interfaces={"his-fhir": ok}))
    assert site_views([stopped, running, his_app])["his-app"]["interfaces"] == [
        {"name": "his-fhir", **ok}, {"name": "lis-his-results", **not_probed}
    ]
    unreadable = HostEvidence("monitor-01", evidence(monitoring={"unavailable": "systemctl failed"}),
                              {"services": ["monitoring_server"]})
    assert site_views([unreadable, his_app])["his-app"]["interfaces"][0] == {
        "name": "his-fhir", "up": {"unavailable": "monitor-01: monitoring: unavailable on the host: systemctl failed"}
    }


# ---------------------------------------------------------------- findings


def root_of(host: HostEvidence) -> dict[str, Any]:
    root = evidence_root(host, site_views([host])[host.host])
    assert root is not None
    return root


def test_a_control_that_does_not_apply_says_why_with_its_evidence() -> None:
    firewall = control("forwarding_off", {"fact": "sysctl.forward", "equals": 0},
                       applies_when={"fact": "inventory.services", "not_contains": "zone_firewall"})
    host = HostEvidence("fw", evidence(sysctl={"forward": 1}), {"services": ["zone_firewall"]})
    assert evaluate_control(firewall, host, root_of(host), [], NOW) == Finding(
        "fw", "forwarding_off", Status.NOT_APPLICABLE, "does not apply: inventory.services: 'zone_firewall' found",
        {"inventory.services": ["zone_firewall"]},
    )


def test_a_control_whose_applicability_cannot_be_decided_is_an_error() -> None:
    firewall = control("forwarding_off", {"fact": "sysctl.forward", "equals": 0},
                       applies_when={"fact": "inventory.services", "not_contains": "zone_firewall"})
    host = HostEvidence("fw", evidence(sysctl={"forward": 0}), {"services": "zone_firewall"})
    assert evaluate_control(firewall, host, root_of(host), [], NOW) == Finding(
        "fw", "forwarding_off", Status.ERROR, "inventory.services: 'zone_firewall' where a list was expected",
        {"inventory.services": "zone_firewall"},
    )


def test_applicability_is_judged_at_the_audit_s_time() -> None:
    recent = control("upgrades_applied", {"fact": "updates.pending", "equals": 0},
                     applies_when={"fact": "updates.lists_at", "days_since_at_most": 7})
    host = HostEvidence("h", evidence(updates={"lists_at": "2026-11-20T12:00:00Z", "pending": 0}), {})
    assert evaluate_control(recent, host, root_of(host), [], NOW) == Finding(
        "h", "upgrades_applied", Status.PASS, "updates.pending: 0 = 0", {"updates.pending": 0}
    )


def waiver(hosts: tuple[str, ...], groups: tuple[str, ...], expires: date) -> Waiver:
    return Waiver("root_login_off", hosts, groups, "vendor needs root", "CISO", "high", "accepted", "VPN only", expires)


def test_a_waiver_covers_a_host_by_its_inventory_group_and_keeps_the_failure_s_reason() -> None:
    by_group = waiver((), ("legacy",), date(2026, 12, 31))
    host = HostEvidence("lis-01", evidence(sshd={"permitrootlogin": "yes"}), {"groups": ["legacy"]})
    assert evaluate_control(ROOT_LOGIN, host, root_of(host), [by_group], NOW) == Finding(
        "lis-01", "root_login_off", Status.WAIVED, "sshd.permitrootlogin: 'yes' != 'no'",
        {"sshd.permitrootlogin": "yes"}, by_group,
    )


def test_a_failure_an_expired_waiver_covered_keeps_its_reason_and_evidence() -> None:
    lapsed = waiver(("lis-*",), (), date(2026, 11, 21))
    host = HostEvidence("lis-01", evidence(sshd={"permitrootlogin": "yes"}), {})
    assert evaluate_control(ROOT_LOGIN, host, root_of(host), [lapsed], NOW) == Finding(
        "lis-01", "root_login_off", Status.FAIL, "sshd.permitrootlogin: 'yes' != 'no'",
        {"sshd.permitrootlogin": "yes"}, expired_waiver=lapsed,
    )


def test_the_judgement_keeps_the_site_views_and_errs_on_hosts_without_evidence() -> None:
    hosts = [HostEvidence("broken", {"facts": "nonsense"}, {}), serving("his-app", {"name": "his-fhir"})]
    judged = judgement(hosts, Catalog((ROOT_LOGIN,), {}), [], NOW)
    assert judged.findings[0] == Finding("broken", "root_login_off", Status.ERROR, NOT_EVIDENCE, {})
    assert judged.sites == site_views(hosts)
    assert judged.sites["his-app"]["interfaces"] == {"unavailable": NO_MONITORING_SERVER}
