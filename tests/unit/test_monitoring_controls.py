"""The monitoring and PKI controls over hand-built evidence, and the evaluator's site pre-pass."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from functools import cache
from typing import Any

import pytest

from medinfra.compliance.catalog import load_catalog
from medinfra.compliance.evaluate import evaluate, site_views, target_host
from medinfra.compliance.model import Catalog, Finding, HostEvidence, Status

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
CONTROLS = ("node_exporter_tls_auth", "monitoring_web_tls_auth", "monitoring_coverage", "pki_certificates_current")


@cache
def catalog() -> Catalog:
    full = load_catalog()
    return Catalog(tuple(c for c in full.controls if c.id in CONTROLS), full.frameworks)


def web_config(certificate: str) -> dict[str, Any]:
    return {
        "configured": True,
        "present": True,
        "file": {"mode": "0640", "owner": "root", "group": "prometheus"},
        "tls": True,
        "cert_file": f"/etc/medinfra/pki/{certificate}.crt",
        "key_file": f"/etc/medinfra/pki/{certificate}.key",
        # As collect() marks them against the host's medinfra_paths.pki.
        "cert_file_in_pki": True,
        "key_file_in_pki": True,
        "min_version": "TLS12",
        "min_version_set": True,
        "basic_auth_users": 1,
        "basic_auth_bcrypt_only": True,
    }


def program(address: str, certificate: str, **extra: Any) -> dict[str, Any]:
    return {
        "running": True,
        "processes": 1,
        "listen_addresses": [address],
        "wildcard_addresses": [],
        "web_config_file": "/etc/prometheus/web.yml",
        "web_config": web_config(certificate),
        **extra,
    }


NOT_RUNNING = {"running": False, "processes": 0}


def pki() -> dict[str, Any]:
    return {
        "directory_present": True,
        "ca": {"present": True, "subject": "CN=lab CA", "self_signed": True, "is_ca": True,
               "not_before": "2026-01-01T00:00:00Z", "not_after": "2036-01-01T00:00:00Z"},
        "certificates": {
            "node-exporter": {
                "subject": "CN=host", "issuer": "CN=lab CA", "sans": [], "issued_by_site_ca": True,
                "not_before": "2026-06-01T00:00:00Z", "not_after": "2027-06-01T00:00:00Z",
                "key": {"exists": True, "type": "file", "mode": "0600", "owner": "root", "group": "root"},
            }
        },
    }


def agent(address: str) -> dict[str, Any]:
    """Facts of a managed host where pki and monitoring_agent have run."""
    return {
        "monitoring": {
            "node_exporter": program(f"{address}:9100", "node-exporter"),
            "prometheus": dict(NOT_RUNNING),
            "alertmanager": dict(NOT_RUNNING),
            "blackbox_exporter": dict(NOT_RUNNING),
        },
        "pki": pki(),
    }


def server(address: str, node_targets: Any) -> dict[str, Any]:
    """Facts of a monitoring server where monitoring_server has run."""
    facts = agent(address)
    facts["monitoring"].update(
        prometheus=program(f"{address}:9090", "prometheus", node_targets=node_targets, blackbox_targets=3),
        alertmanager=program(f"{address}:9093", "prometheus", cluster_listen_address=""),
        blackbox_exporter=program(f"{address}:9115", "prometheus"),
    )
    return facts


def host(name: str, facts: dict[str, Any], address: str | None = None, **inventory: Any) -> HostEvidence:
    view = {"services": [], "legacy": False, "groups": [], **inventory}
    if address is not None:
        view["address"] = address
    return HostEvidence(name, {"schema": "medinfra-evidence/1", "facts": facts}, view)


def judged(hosts: list[HostEvidence]) -> dict[tuple[str, str], Finding]:
    return {(f.host, f.control): f for f in evaluate(hosts, catalog(), [], NOW)}


TARGETS = [
    {"instance": "monitor-01", "target": "10.231.10.11:9100"},
    {"instance": "his-db", "target": "10.231.20.11:9100"},
    # No instance label: Prometheus uses the address, so the host is matched by its inventory address.
    {"instance": "10.231.20.10:9100", "target": "10.231.20.10:9100"},
]


def site() -> list[HostEvidence]:
    return [
        host("monitor-01", server("10.231.10.11", copy.deepcopy(TARGETS)), "10.231.10.11",
             services=["monitoring_server", "log_server"]),
        host("his-db", agent("10.231.20.11"), "10.231.20.11", services=["his_db"]),
        host("his-app", agent("10.231.20.10"), "10.231.20.10", services=["his_app"]),
        host("pacs-01", agent("10.231.30.10"), "10.231.30.10", services=["pacs"]),
        host("lis-legacy", {}, "10.231.20.20", services=["lis_app"], legacy=True),
    ]


# ---------------------------------------------------------------- coverage: the site pre-pass


def test_coverage_by_instance_label_or_address():
    findings = judged(site())
    assert findings["monitor-01", "monitoring_coverage"].status is Status.PASS  # it scrapes itself
    assert findings["his-db", "monitoring_coverage"].status is Status.PASS  # by its instance label
    assert findings["his-app", "monitoring_coverage"].status is Status.PASS  # by its address
    missed = findings["pacs-01", "monitoring_coverage"]
    assert missed.status is Status.FAIL
    assert missed.evidence == {"site.monitoring.scraped_by": []}
    assert findings["lis-legacy", "monitoring_coverage"].status is Status.NOT_APPLICABLE


def test_coverage_when_the_monitoring_server_is_not_audited():
    hosts = [h for h in site() if h.host != "monitor-01"]
    finding = judged(hosts)["his-db", "monitoring_coverage"]
    assert finding.status is Status.ERROR
    assert "no monitoring server is part of this audit" in finding.reason


def test_a_stopped_prometheus_scrapes_nobody():
    hosts = site()
    hosts[0].evidence["facts"]["monitoring"]["prometheus"] = dict(NOT_RUNNING)
    findings = judged(hosts)
    assert findings["his-db", "monitoring_coverage"].status is Status.FAIL
    assert findings["monitor-01", "monitoring_coverage"].status is Status.FAIL
    assert findings["monitor-01", "monitoring_web_tls_auth"].status is Status.FAIL


def test_unknown_targets_are_an_error_unless_another_server_scrapes_the_host():
    hosts = site()
    hosts[0].evidence["facts"]["monitoring"]["prometheus"]["node_targets"] = {
        "unavailable": "/etc/prometheus/file_sd/node.json is not JSON"
    }
    finding = judged(hosts)["pacs-01", "monitoring_coverage"]
    assert finding.status is Status.ERROR
    assert "node targets of monitor-01 unknown" in finding.reason
    assert "is not JSON" in finding.reason
    # A second monitoring server, found by its running Prometheus alone (the inventory does not say so).
    second = host("monitor-02", server("10.231.10.12", [{"instance": "pacs-01", "target": "pacs-01:9100"}]))
    findings = judged([*hosts, second])
    assert findings["pacs-01", "monitoring_coverage"].status is Status.PASS
    assert findings["his-db", "monitoring_coverage"].status is Status.ERROR  # only monitor-01 could tell


def test_site_views_name_the_scraping_servers_and_a_host_cannot_claim_coverage():
    hosts = site()
    second = host("monitor-02", server("10.231.10.12", [{"instance": "his-db", "target": "10.231.20.11:9100"}]))
    forged = host("pacs-01", {**agent("10.231.30.10"), "site": {"monitoring": {"scraped_by": ["monitor-01"]}}})
    hosts = [*hosts[:3], forged, second]
    views = site_views(hosts)
    assert views["his-db"]["monitoring"] == {"servers": ["monitor-01", "monitor-02"],
                                             "scraped_by": ["monitor-01", "monitor-02"]}
    assert views["pacs-01"]["monitoring"]["scraped_by"] == []
    assert judged(hosts)["pacs-01", "monitoring_coverage"].status is Status.FAIL


def test_a_declared_monitoring_server_with_broken_evidence_leaves_coverage_unknown():
    broken = HostEvidence("monitor-01", {"facts": "nonsense"}, {"services": ["monitoring_server"]})
    findings = judged([broken, *site()[1:]])
    assert findings["monitor-01", "monitoring_coverage"].status is Status.ERROR
    assert findings["his-db", "monitoring_coverage"].status is Status.ERROR
    assert "not a medinfra-evidence/1 document" in findings["his-db", "monitoring_coverage"].reason


@pytest.mark.parametrize(
    ("target", "expected"),
    [("10.0.0.5:9100", "10.0.0.5"), ("[fd00::5]:9100", "fd00::5"), ("his-db:9100", "his-db"), ("his-db", "his-db")],
)
def test_target_host(target, expected):
    assert target_host(target) == expected


# ---------------------------------------------------------------- node exporter, web configs, PKI


def test_everything_the_roles_leave_passes():
    findings = judged(site())
    for name in ("monitor-01", "his-db", "his-app"):
        for control in ("node_exporter_tls_auth", "pki_certificates_current"):
            assert findings[name, control].status is Status.PASS, (name, control, findings[name, control].reason)
    assert findings["monitor-01", "monitoring_web_tls_auth"].status is Status.PASS
    assert findings["his-db", "monitoring_web_tls_auth"].status is Status.NOT_APPLICABLE
    assert findings["lis-legacy", "node_exporter_tls_auth"].status is Status.NOT_APPLICABLE
    assert findings["lis-legacy", "pki_certificates_current"].status is Status.NOT_APPLICABLE


@pytest.mark.parametrize(
    ("change", "path"),
    [
        ({"wildcard_addresses": ["0.0.0.0:9100"]}, "monitoring.node_exporter.wildcard_addresses"),
        ({"web_config": {"configured": False}}, "monitoring.node_exporter.web_config.tls"),
        ({"web_config": {**web_config("node-exporter"), "min_version": "TLS11"}},
         "monitoring.node_exporter.web_config.min_version"),
        ({"web_config": {**web_config("node-exporter"), "basic_auth_bcrypt_only": False}},
         "monitoring.node_exporter.web_config.basic_auth_bcrypt_only"),
        ({"web_config": {**web_config("node-exporter"), "basic_auth_users": 0}},
         "monitoring.node_exporter.web_config.basic_auth_users"),
        ({"web_config": {**web_config("node-exporter"), "file": {"mode": "0644"}}},
         "monitoring.node_exporter.web_config.file.mode"),
        ({"running": False}, "monitoring.node_exporter.running"),
    ],
)
def test_node_exporter_failures_name_the_fact(change, path):
    hosts = site()
    hosts[1].evidence["facts"]["monitoring"]["node_exporter"].update(change)
    finding = judged(hosts)["his-db", "node_exporter_tls_auth"]
    assert finding.status is Status.FAIL
    assert path in finding.evidence


@pytest.mark.parametrize("component", ["prometheus", "alertmanager", "blackbox_exporter"])
def test_each_monitoring_program_needs_tls_and_bcrypt(component):
    hosts = site()
    hosts[0].evidence["facts"]["monitoring"][component]["web_config"]["tls"] = False
    finding = judged(hosts)["monitor-01", "monitoring_web_tls_auth"]
    assert finding.status is Status.FAIL
    assert f"monitoring.{component}.web_config.tls" in finding.evidence


@pytest.mark.parametrize(
    ("certificate", "fact"),
    [
        ({"issued_by_site_ca": False}, "issued_by_site_ca"),
        ({"not_after": "2026-12-02T00:00:00Z"}, "not_after"),  # 10 days left
        ({"not_after": "2026-11-01T00:00:00Z"}, "not_after"),  # expired
        ({"not_before": "2026-12-01T00:00:00Z"}, "not_before"),  # not valid yet
        ({"key": {"exists": True, "mode": "0644", "owner": "root"}}, "key.mode"),
        ({"key": {"exists": True, "mode": "0600", "owner": "prometheus"}}, "key.owner"),
        ({"key": {"path": "/etc/medinfra/pki/node-exporter.key", "exists": False}}, "key.exists"),
    ],
)
def test_pki_certificate_failures_name_the_certificate(certificate, fact):
    hosts = site()
    hosts[1].evidence["facts"]["pki"]["certificates"]["node-exporter"].update(certificate)
    finding = judged(hosts)["his-db", "pki_certificates_current"]
    assert finding.status is Status.FAIL
    assert f"pki.certificates.node-exporter.{fact}" in finding.evidence


def test_pki_without_ca_or_certificates_fails():
    hosts = site()
    hosts[1].evidence["facts"]["pki"]["ca"] = {"present": False}
    hosts[2].evidence["facts"]["pki"]["certificates"] = {}
    hosts[3].evidence["facts"]["pki"] = {"directory_present": False}
    findings = judged(hosts)
    for name in ("his-db", "his-app", "pacs-01"):
        assert findings[name, "pki_certificates_current"].status is Status.FAIL, name
    assert "need at least 1" in findings["his-app", "pki_certificates_current"].reason
