"""The monitoring server's alerting rules: valid for promtool, every alert unit-tested both ways, and the tests bite.
Alertmanager routes by SLA class and owner: checked with amtool on the role's rendered configuration."""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
import pytest
import yaml

from tests.conftest import ROOT

PROMTOOL = Path("/usr/bin/promtool")
AMTOOL = Path("/usr/bin/amtool")
ROLE = ROOT / "roles" / "monitoring_server"
TESTS = ROOT / "tests" / "promtool"
SEVERITIES = {"critical", "warning"}
# Interface failures page by the interface's SLA class: one rule, its severity a label template.
SLA_SEVERITY = '{{ if eq $labels.sla "24x7-critical" }}critical{{ else }}warning{{ end }}'


@dataclass(frozen=True)
class RuleSet:
    rules: Path
    tests: tuple[Path, ...]
    # Labels Alertmanager routes by and that name the host, target or interface: every alert must keep them.
    routing_labels: frozenset[str]


RULE_SETS = {
    "medinfra-alerts": RuleSet(
        ROLE / "files" / "medinfra-alerts.rules.yml",
        (TESTS / "medinfra-alerts.test.yml",),
        frozenset({"instance", "sla"}),
    ),
    "medinfra-interfaces": RuleSet(
        ROLE / "files" / "medinfra-interfaces.rules.yml",
        (TESTS / "medinfra-interfaces.test.yml", TESTS / "medinfra-interfaces-history.test.yml"),
        frozenset({"instance", "sla", "owner", "interface", "protocol"}),
    ),
    # database_cluster, not cluster: a member whose metrics file is missing has no `cluster` series to alert with.
    "medinfra-database": RuleSet(
        ROLE / "files" / "medinfra-database.rules.yml",
        (TESTS / "medinfra-database.test.yml",),
        frozenset({"instance", "sla", "database_cluster"}),
    ),
    # Media through the relays: every alert goes to the network team (label team) and names vantage and path.
    "medinfra-rtc": RuleSet(
        ROLE / "files" / "medinfra-rtc.rules.yml",
        (TESTS / "medinfra-rtc.test.yml",),
        frozenset({"instance", "sla", "zone", "team"}),
    ),
}


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    if not PROMTOOL.is_file():
        pytest.fail(f"{PROMTOOL} is missing: scripts/install-deps.sh installs it with the Debian package `prometheus`")
    return subprocess.run([str(PROMTOOL), *args], capture_output=True, text=True, timeout=120, check=False)


def load(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(data, dict), f"{path} is not a YAML mapping"
    return data


@dataclass(frozen=True)
class Alert:
    rule: dict[str, Any]
    rule_set: str


def alert_rules() -> dict[str, Alert]:
    alerts = [
        Alert(rule, name)
        for name, rule_set in RULE_SETS.items()
        for group in load(rule_set.rules)["groups"]
        for rule in group["rules"]
        if "alert" in rule
    ]
    names = [alert.rule["alert"] for alert in alerts]
    assert len(names) == len(set(names)), f"duplicate alert names: {sorted(n for n in names if names.count(n) > 1)}"
    return {alert.rule["alert"]: alert for alert in alerts}


def alert_cases(rule_set: RuleSet) -> list[dict[str, Any]]:
    """Every alert_rule_test case of the rule set's promtool test files, each with its file and test group."""
    return [
        {**case, "group": f"{path.name}: {group.get('name', '?')}"}
        for path in rule_set.tests
        for group in load(path)["tests"]
        for case in group.get("alert_rule_test", [])
    ]


ALERTS = alert_rules()
CASES = {name: alert_cases(rule_set) for name, rule_set in RULE_SETS.items()}


def report(result: subprocess.CompletedProcess[str]) -> str:
    return f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"


def test_there_are_alerts_and_tests() -> None:
    for name in RULE_SETS:
        assert [alert for alert in ALERTS.values() if alert.rule_set == name], name
        assert CASES[name], name


@pytest.mark.parametrize("name", sorted(RULE_SETS))
def test_promtool_check_rules(name: str) -> None:
    rules = RULE_SETS[name].rules
    result = promtool("check", "rules", str(rules))
    assert result.returncode == 0, report(result)
    rule_count = sum(len(group["rules"]) for group in load(rules)["groups"])
    assert f"SUCCESS: {rule_count} rules found" in result.stdout, report(result)


@pytest.mark.parametrize("name", sorted(RULE_SETS))
def test_promtool_test_rules(name: str) -> None:
    result = promtool("test", "rules", *map(str, RULE_SETS[name].tests))
    assert result.returncode == 0, report(result)


@pytest.mark.parametrize("name", sorted(RULE_SETS))
def test_the_test_files_use_the_role_rules(name: str) -> None:
    rule_set = RULE_SETS[name]
    for path in rule_set.tests:
        assert [(path.parent / f).resolve() for f in load(path)["rule_files"]] == [rule_set.rules.resolve()], path


@pytest.mark.parametrize("name", sorted(RULE_SETS))
def test_tested_alerts_exist(name: str) -> None:
    """promtool passes a quiet case for an alert that does not exist: a misspelt name would prove nothing."""
    defined = {alert for alert, rule in ALERTS.items() if rule.rule_set == name}
    unknown = sorted({case["alertname"] for case in CASES[name]} - defined)
    assert unknown == [], f"tests for alerts {RULE_SETS[name].rules.name} does not define: {unknown}"


def cases_of(name: str) -> list[dict[str, Any]]:
    return [case for case in CASES[ALERTS[name].rule_set] if case["alertname"] == name]


@pytest.mark.parametrize("name", sorted(ALERTS))
def test_alert_fires_and_stays_quiet_in_tests(name: str) -> None:
    cases = cases_of(name)
    firing = [case for case in cases if case.get("exp_alerts")]
    quiet = [case for case in cases if not case.get("exp_alerts")]
    assert firing, f"{name}: no test case where it fires (non-empty exp_alerts)"
    assert quiet, f"{name}: no test case where it stays quiet (exp_alerts: [])"


@pytest.mark.parametrize("name", sorted(ALERTS))
def test_alert_has_severity_and_annotations(name: str) -> None:
    rule = ALERTS[name].rule
    severity = rule.get("labels", {}).get("severity")
    assert severity in SEVERITIES or severity == SLA_SEVERITY, (
        f"{name}: severity must be one of {sorted(SEVERITIES)} or follow the SLA class"
    )
    annotations = rule.get("annotations", {})
    for key in ("summary", "description"):
        assert str(annotations.get(key, "")).strip(), f"{name}: annotation {key} is missing"
    text = f"{annotations['summary']} {annotations['description']}"
    assert "$labels.instance" in text, f"{name}: the annotations must name {{{{ $labels.instance }}}}"
    assert "$value" in annotations["description"], f"{name}: the description must give the value ({{{{ $value }}}})"
    if ALERTS[name].rule_set == "medinfra-interfaces":
        assert "$labels.owner" in text, f"{name}: the annotations must name the interface's owner"


@pytest.mark.parametrize("name", sorted(ALERTS))
def test_firing_alerts_keep_routing_labels(name: str) -> None:
    """promtool compares exp_labels exactly, so the expectations show which labels the expression keeps."""
    severity = ALERTS[name].rule["labels"]["severity"]
    routing = RULE_SETS[ALERTS[name].rule_set].routing_labels
    for case in cases_of(name):
        for alert in case.get("exp_alerts") or []:
            labels = alert.get("exp_labels", {})
            where = f"{name} in test group {case['group']!r} at {case['eval_time']}"
            assert labels.keys() >= routing, f"{where}: exp_labels lack {sorted(routing - labels.keys())}"
            expected = severity
            if severity == SLA_SEVERITY:
                expected = "critical" if labels.get("sla") == "24x7-critical" else "warning"
            assert labels.get("severity") == expected, f"{where}: exp_labels severity is not {expected}"


def test_every_sla_severity_is_tested_both_ways() -> None:
    """An SLA-dependent severity shows critical for a 24x7-critical interface and warning for another somewhere."""
    seen = {
        alert.get("exp_labels", {}).get("severity")
        for name, rule in ALERTS.items()
        if rule.rule["labels"]["severity"] == SLA_SEVERITY
        for case in cases_of(name)
        for alert in case.get("exp_alerts") or []
    }
    assert seen == SEVERITIES


# Each mutation changes one threshold or join in a copy of the rules; the unchanged tests must then fail
# on the alert named.
MUTATIONS = {
    "certificate expiry threshold 21 days -> 1 day": (
        "medinfra-alerts",
        "< 21 * 86400",
        "< 1 * 86400",
        "CertificateExpiringSoon",
    ),
    "backup age against a fixed 4 h instead of the host's RPO": (
        "medinfra-alerts",
        '> on(instance) group_left()\n          min by (instance) (medinfra_sla_rpo_seconds{job="node"})',
        "> 14400",
        "BackupStale",
    ),
    "latency regression against yesterday only, without 7 days of history": (
        "medinfra-interfaces",
        "".join(
            f"\n              + interface:medinfra_interface_latency_seconds:p95_1h offset {day}d"
            for day in range(2, 8)
        )
        + "\n            ) / 7",
        "\n            )",
        "InterfaceLatencyRegressed",
    ),
    "HL7 negative ACK alert on any protocol": (
        "medinfra-interfaces",
        'protocol="hl7v2-mllp", result="ack_negative"',
        'result="ack_negative"',
        "Hl7AckNegative",
    ),
    "replication lag at the RPO counted as above it": (
        "medinfra-database",
        "medinfra_database_replication_lag_seconds{job=\"node\"}\n          > on(cluster)",
        "medinfra_database_replication_lag_seconds{job=\"node\"}\n          >= on(cluster)",
        "ReplicationLagAboveRpo",
    ),
    "replication lag against any cluster's RPO": (
        "medinfra-database",
        "> on(cluster) group_left()\n          max by (cluster) (medinfra_database_rpo_seconds",
        "> on() group_left()\n          min (medinfra_database_rpo_seconds",
        "ReplicationLagAboveRpo",
    ),
    "split brain counted over all clusters": (
        "medinfra-database",
        "and on(cluster) (count by (cluster) (medinfra_database_primary{job=\"node\"} == 1) > 1)",
        "and on() (count (medinfra_database_primary{job=\"node\"} == 1) > 1)",
        "DatabaseSplitBrain",
    ),
    "a standby's empty streaming count taken for the primary's": (
        "medinfra-database",
        "medinfra_database_standbys_streaming{job=\"node\"} == 0\n            and on(instance, cluster)",
        "medinfra_database_standbys_streaming{job=\"node\"} == 0\n            or on(instance, cluster)",
        "DatabaseStandbyDown",
    ),
    "metrics age threshold 2 minutes -> 3": (
        "medinfra-database",
        "> 120",
        "> 180",
        "DatabaseMetricsStale",
    ),
    "growing errors without their minimum count": (
        "medinfra-interfaces",
        "[1h]) >= 5\n",
        "[1h]) >= 0\n",
        "InterfaceErrorsGrowing",
    ),
    "round-trip budget on the median instead of the 95th percentile": (
        "medinfra-rtc",
        'quantile="0.95"} > 0.3',
        'quantile="0.5"} > 0.3',
        "RtcRoundTripSlow",
    ),
    "loss budget reached rather than exceeded": (
        "medinfra-rtc",
        "medinfra_rtc_loss_ratio{job=\"node\"} > 0.02",
        "medinfra_rtc_loss_ratio{job=\"node\"} >= 0.02",
        "RtcPacketLoss",
    ),
    "connect budget on every transport, not only TLS": (
        "medinfra-rtc",
        'medinfra_rtc_connect_seconds{job="node", transport="tls"}',
        'medinfra_rtc_connect_seconds{job="node"}',
        "RtcTlsConnectSlow",
    ),
}


@pytest.mark.parametrize("mutation", sorted(MUTATIONS))
def test_rule_tests_catch_a_changed_rule(mutation: str, tmp_path: Path) -> None:
    name, old, new, alert = MUTATIONS[mutation]
    rule_set = RULE_SETS[name]
    text = rule_set.rules.read_text(encoding="utf-8")
    assert old in text, f"the rules file no longer contains {old!r}: update this mutation"
    # The same layout under tmp_path, so the copied test files' relative rule_files path finds the changed copy.
    rules_copy = tmp_path / rule_set.rules.relative_to(ROOT)
    rules_copy.parent.mkdir(parents=True)
    rules_copy.write_text(text.replace(old, new), encoding="utf-8")
    tests_copies = [tmp_path / path.relative_to(ROOT) for path in rule_set.tests]
    for path, copy in zip(rule_set.tests, tests_copies, strict=True):
        copy.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, copy)

    assert promtool("check", "rules", str(rules_copy)).returncode == 0, "the mutation must stay a valid rules file"
    result = promtool("test", "rules", *map(str, tests_copies))
    assert result.returncode != 0, f"the rule tests still pass with {mutation}:\n{report(result)}"
    assert f"alertname: {alert}," in result.stdout + result.stderr, report(result)


# Alertmanager: the role's template rendered with receivers for two teams, then asked by amtool where alerts go.
ALERTMANAGER_TEMPLATE = ROLE / "templates" / "alertmanager.yml.j2"
OWNER_RECEIVERS = {
    "his-team": {"webhook_configs": [{"url": "https://his-team.example.test/hook"}]},
    "imaging-team": {},
}
# (labels of the alert, receivers it must reach)
ROUTES = {
    "24x7-critical interface of his-team down": (
        {"alertname": "InterfaceDown", "sla": "24x7-critical", "severity": "critical", "owner": "his-team"},
        ["owner-his-team", "pager"],
    ),
    "business-hours interface of imaging-team down": (
        {"alertname": "InterfaceDown", "sla": "business-hours", "severity": "warning", "owner": "imaging-team"},
        ["owner-imaging-team", "office"],
    ),
    "interface of a team without a receiver": (
        {"alertname": "Hl7AckNegative", "sla": "24x7-critical", "severity": "critical", "owner": "lab-team"},
        ["pager"],
    ),
    "preventive warning on a 24x7-critical interface": (
        {"alertname": "InterfaceLatencyRegressed", "sla": "24x7-critical", "severity": "warning", "owner": "his-team"},
        ["owner-his-team", "oncall"],
    ),
    "database pair of a 24x7-critical system without a standby": (
        {"alertname": "DatabaseStandbyDown", "sla": "24x7-critical", "severity": "critical", "instance": "his-db",
         "cluster": "his-db", "database_cluster": "his-db"},
        ["pager"],
    ),
    "media quality through the relay, from a business-hours vantage": (
        {"alertname": "RtcPacketLoss", "sla": "business-hours", "severity": "warning", "team": "network",
         "instance": "guest-01"},
        ["network", "office"],
    ),
    "host alert without owner": (
        {"alertname": "ExporterDown", "sla": "24x7-standard", "severity": "critical", "instance": "monitor-01"},
        ["oncall"],
    ),
}


def amtool(*args: str) -> subprocess.CompletedProcess[str]:
    if not AMTOOL.is_file():
        pytest.fail(f"{AMTOOL} is missing: install the Debian package `prometheus-alertmanager`")
    return subprocess.run([str(AMTOOL), *args], capture_output=True, text=True, timeout=60, check=False)


@pytest.fixture(scope="module")
def alertmanager_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    environment = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    environment.filters["to_json"] = json.dumps
    environment.filters["combine"] = lambda base, extra: {**base, **extra}
    defaults = load(ROLE / "defaults" / "main.yml")
    text = environment.from_string(ALERTMANAGER_TEMPLATE.read_text(encoding="utf-8")).render(
        ansible_managed="test",
        monitoring_server_receivers=defaults["monitoring_server_receivers"],
        monitoring_server_owner_receivers=OWNER_RECEIVERS,
        monitoring_server_office_hours=defaults["monitoring_server_office_hours"],
        monitoring_server_timezone="Asia/Shanghai",
    )
    path = tmp_path_factory.mktemp("alertmanager") / "alertmanager.yml"
    path.write_text(text, encoding="utf-8")
    result = amtool("check-config", str(path))
    assert result.returncode == 0, report(result)
    return path


@pytest.mark.parametrize("case", sorted(ROUTES))
def test_alertmanager_routes_by_sla_and_owner(case: str, alertmanager_config: Path) -> None:
    labels, receivers = ROUTES[case]
    result = amtool(
        "config",
        "routes",
        "test",
        f"--config.file={alertmanager_config}",
        f"--verify.receivers={','.join(receivers)}",
        *(f"{key}={value}" for key, value in labels.items()),
    )
    assert result.returncode == 0, report(result)


def test_owner_receivers_keep_their_settings(alertmanager_config: Path) -> None:
    receivers = {r["name"]: r for r in load(alertmanager_config)["receivers"]}
    assert receivers["owner-his-team"]["webhook_configs"] == OWNER_RECEIVERS["his-team"]["webhook_configs"]
    assert set(receivers) == {"pager", "oncall", "office", "network", "owner-his-team", "owner-imaging-team"}


def test_group_by_keeps_owners_apart(alertmanager_config: Path) -> None:
    assert "owner" in load(alertmanager_config)["route"]["group_by"]
