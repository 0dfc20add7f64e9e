"""The monitoring server's alerting rules: valid for promtool, every alert unit-tested both ways, and the tests bite."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import ROOT

PROMTOOL = Path("/usr/bin/promtool")
RULES = ROOT / "roles" / "monitoring_server" / "files" / "medinfra-alerts.rules.yml"
RULE_TESTS = ROOT / "tests" / "promtool" / "medinfra-alerts.test.yml"
SEVERITIES = {"critical", "warning"}
# Labels Alertmanager routes by (sla) and that name the host or target (instance): every alert must keep them.
ROUTING_LABELS = {"instance", "sla"}


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    if not PROMTOOL.is_file():
        pytest.fail(f"{PROMTOOL} is missing: scripts/install-deps.sh installs it with the Debian package `prometheus`")
    return subprocess.run([str(PROMTOOL), *args], capture_output=True, text=True, timeout=60, check=False)


def load(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(data, dict), f"{path} is not a YAML mapping"
    return data


def alert_rules() -> dict[str, dict[str, Any]]:
    rules = [rule for group in load(RULES)["groups"] for rule in group["rules"] if "alert" in rule]
    names = [rule["alert"] for rule in rules]
    assert len(names) == len(set(names)), f"duplicate alert names: {sorted(n for n in names if names.count(n) > 1)}"
    return {rule["alert"]: rule for rule in rules}


def alert_cases() -> list[dict[str, Any]]:
    """Every alert_rule_test case of the promtool test file, each with the name of its test group."""
    return [
        {**case, "group": group.get("name", "?")}
        for group in load(RULE_TESTS)["tests"]
        for case in group.get("alert_rule_test", [])
    ]


ALERTS = alert_rules()
CASES = alert_cases()


def report(result: subprocess.CompletedProcess[str]) -> str:
    return f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"


def test_there_are_alerts_and_tests() -> None:
    assert ALERTS
    assert CASES


def test_promtool_check_rules() -> None:
    result = promtool("check", "rules", str(RULES))
    assert result.returncode == 0, report(result)
    rule_count = sum(len(group["rules"]) for group in load(RULES)["groups"])
    assert f"SUCCESS: {rule_count} rules found" in result.stdout, report(result)


def test_promtool_test_rules() -> None:
    result = promtool("test", "rules", str(RULE_TESTS))
    assert result.returncode == 0, report(result)


def test_the_test_file_uses_the_role_rules() -> None:
    rule_files = load(RULE_TESTS)["rule_files"]
    assert [(RULE_TESTS.parent / f).resolve() for f in rule_files] == [RULES.resolve()]


def test_tested_alerts_exist() -> None:
    """promtool passes a quiet case for an alert that does not exist: a misspelt name would prove nothing."""
    unknown = sorted({case["alertname"] for case in CASES} - ALERTS.keys())
    assert unknown == [], f"tests for alerts the rules file does not define: {unknown}"


@pytest.mark.parametrize("name", sorted(ALERTS))
def test_alert_fires_and_stays_quiet_in_tests(name: str) -> None:
    cases = [case for case in CASES if case["alertname"] == name]
    firing = [case for case in cases if case.get("exp_alerts")]
    quiet = [case for case in cases if not case.get("exp_alerts")]
    assert firing, f"{name}: no test case where it fires (non-empty exp_alerts) in {RULE_TESTS.name}"
    assert quiet, f"{name}: no test case where it stays quiet (exp_alerts: []) in {RULE_TESTS.name}"


@pytest.mark.parametrize("name", sorted(ALERTS))
def test_alert_has_severity_and_annotations(name: str) -> None:
    rule = ALERTS[name]
    assert rule.get("labels", {}).get("severity") in SEVERITIES, f"{name}: severity must be one of {sorted(SEVERITIES)}"
    annotations = rule.get("annotations", {})
    for key in ("summary", "description"):
        assert str(annotations.get(key, "")).strip(), f"{name}: annotation {key} is missing"
    text = f"{annotations['summary']} {annotations['description']}"
    assert "$labels.instance" in text, f"{name}: the annotations must name {{{{ $labels.instance }}}}"
    assert "$value" in annotations["description"], f"{name}: the description must give the value ({{{{ $value }}}})"


@pytest.mark.parametrize("name", sorted(ALERTS))
def test_firing_alerts_keep_routing_labels(name: str) -> None:
    """promtool compares exp_labels exactly, so the expectations show which labels the expression keeps."""
    severity = ALERTS[name]["labels"]["severity"]
    for case in CASES:
        if case["alertname"] != name:
            continue
        for alert in case.get("exp_alerts") or []:
            labels = alert.get("exp_labels", {})
            where = f"{name} in test group {case['group']!r} at {case['eval_time']}"
            assert labels.keys() >= ROUTING_LABELS, f"{where}: exp_labels lack {sorted(ROUTING_LABELS - labels.keys())}"
            assert labels.get("severity") == severity, f"{where}: exp_labels severity is not the rule's {severity}"


# Each mutation changes one threshold or join in a copy of the rules; the unchanged tests must then fail
# on the alert named.
MUTATIONS = {
    "certificate expiry threshold 21 days -> 1 day": ("< 21 * 86400", "< 1 * 86400", "CertificateExpiringSoon"),
    "backup age against a fixed 4 h instead of the host's RPO": (
        '> on(instance) group_left()\n          min by (instance) (medinfra_sla_rpo_seconds{job="node"})',
        "> 14400",
        "BackupStale",
    ),
}


@pytest.mark.parametrize("mutation", sorted(MUTATIONS))
def test_rule_tests_catch_a_changed_rule(mutation: str, tmp_path: Path) -> None:
    old, new, alert = MUTATIONS[mutation]
    text = RULES.read_text(encoding="utf-8")
    assert old in text, f"the rules file no longer contains {old!r}: update this mutation"
    # The same layout under tmp_path, so the copied test file's relative rule_files path finds the changed copy.
    rules_copy = tmp_path / RULES.relative_to(ROOT)
    tests_copy = tmp_path / RULE_TESTS.relative_to(ROOT)
    rules_copy.parent.mkdir(parents=True)
    tests_copy.parent.mkdir(parents=True)
    rules_copy.write_text(text.replace(old, new), encoding="utf-8")
    shutil.copyfile(RULE_TESTS, tests_copy)

    assert promtool("check", "rules", str(rules_copy)).returncode == 0, "the mutation must stay a valid rules file"
    result = promtool("test", "rules", str(tests_copy))
    assert result.returncode != 0, f"the rule tests still pass with {mutation}:\n{report(result)}"
    assert f"alertname: {alert}," in result.stdout + result.stderr, report(result)
