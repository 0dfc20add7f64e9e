"""The check language: every operator, combinator and quantifier, on small evidence trees."""

from __future__ import annotations

import json
import re
import time
from collections import OrderedDict
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType

import pytest

from medinfra.compliance.catalog import load_catalog, walk_checks
from medinfra.compliance.checks import MATCHED_TEXT_LIMIT, is_mapping, nested_repetition, parse_path, run_check
from medinfra.compliance.evaluate import FACT_LIMIT, evaluate
from medinfra.compliance.model import HostEvidence
from medinfra.package_data import CATALOG_DIR

FIXTURE = Path(__file__).parent / "compliance" / "fixtures" / "evidence-his-app.json"
FIXTURE_EVIDENCE = json.loads(FIXTURE.read_text())

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
ROOT = {
    "sshd": {"permitrootlogin": "no", "maxauthtries": "3", "ciphers": ["aes256-gcm@openssh.com", "aes128-ctr"]},
    "sysctl": {"net.ipv4.ip_forward": 0, "kernel.sysrq": {"unavailable": "not readable here"}},
    "files": {"/etc/shadow": {"mode": "0640", "owner": "root"}, "/etc/passwd": {"mode": "0644", "owner": "root"}},
    "packages": {"installed": {"openssh-server": "1:9.2p1-2+deb12u3"}},
    "users": [
        {"name": "root", "uid": 0, "login_shell": True, "password": "locked"},
        {"name": "alice", "uid": 1000, "login_shell": True, "password": "set"},
        {"name": "daemon", "uid": 1, "login_shell": False, "password": "locked"},
    ],
    "updates": {"lists_at": "2026-11-20T12:00:00Z", "never": None},
    "tls": {"not_after": "2026-12-02T12:00:00Z"},
    "empty": [],
    "auditd": {"unavailable": "auditctl: not permitted in a container"},
}


@pytest.mark.parametrize(
    ("check", "status"),
    [
        ({"fact": "sshd.permitrootlogin", "equals": "no"}, "pass"),
        ({"fact": "sshd.permitrootlogin", "equals": "yes"}, "fail"),
        ({"fact": "sshd.permitrootlogin", "not_equals": "yes"}, "pass"),
        ({"fact": "sshd.maxauthtries", "equals": 3}, "pass"),  # "3" from sshd -T equals the number 3
        ({"fact": "sshd.maxauthtries", "at_most": 4}, "pass"),
        ({"fact": "sshd.maxauthtries", "at_most": 2}, "fail"),
        ({"fact": "sshd.maxauthtries", "at_least": 3}, "pass"),
        ({"fact": "sshd.permitrootlogin", "at_least": 1}, "fail"),  # not a number
        ({"fact": "sshd.permitrootlogin", "in": ["no", "prohibit-password"]}, "pass"),
        ({"fact": "sshd.permitrootlogin", "not_in": ["no"]}, "fail"),
        ({"fact": "sshd.permitrootlogin", "matches": "^n"}, "pass"),
        ({"fact": "sshd.permitrootlogin", "not_matches": "^n"}, "fail"),
        ({"fact": "sshd.ciphers", "contains": "aes128-ctr"}, "pass"),
        ({"fact": "sshd.ciphers", "not_contains": "aes128-ctr"}, "fail"),
        ({"fact": "sshd.ciphers", "subset_of": ["aes256-gcm@openssh.com", "aes128-ctr", "x"]}, "pass"),
        ({"fact": "sshd.ciphers", "subset_of": ["aes256-gcm@openssh.com"]}, "fail"),
        ({"fact": "empty", "empty": True}, "pass"),
        ({"fact": "users", "empty": True}, "fail"),
        ({"fact": "sshd.nosuchkey", "exists": False}, "pass"),
        ({"fact": "sshd.nosuchkey", "empty": True}, "fail"),  # an unread list is not an empty one
        ({"fact": "updates.never", "matches": "\\S"}, "fail"),  # None is no text, not the word "None"
        ({"fact": "updates.never", "not_matches": "^x"}, "fail"),
        ({"fact": "sshd.ciphers", "matches": "aes"}, "error"),  # a list is not text: quantify over it
        ({"fact": "sshd.nosuchkey", "equals": "no"}, "fail"),  # absent fails, never passes by accident
        ({"fact": ["sysctl", "net.ipv4.ip_forward"], "equals": 0}, "pass"),
        ({"fact": ["sysctl", "net.ipv4.ip_forward"], "equals": False}, "fail"),  # 0 is spelled "0", not "false"
        ({"fact": ["sysctl", "kernel.sysrq"], "equals": 0}, "error"),
        ({"fact": "auditd.rules", "empty": False}, "error"),  # unavailable above the path
        ({"fact": ["files", "/etc/shadow", "mode"], "mode_within": "0640"}, "pass"),
        ({"fact": ["files", "/etc/passwd", "mode"], "mode_within": "0640"}, "fail"),
        ({"fact": ["packages", "installed", "openssh-server"], "version_at_least": "1:9.2p1-2+deb12u3"}, "pass"),
        ({"fact": ["packages", "installed", "openssh-server"], "version_at_least": "1:9.2p1-2+deb12u10"}, "fail"),
        (
            {"fact": ["packages", "installed", "openssh-server"], "version_at_least": "2:1.0"},
            "fail",
        ),  # epoch 2 outranks any 1:
        ({"fact": "updates.lists_at", "days_since_at_most": 7}, "pass"),
        ({"fact": "updates.lists_at", "days_since_at_most": 1}, "fail"),
        ({"fact": "updates.never", "days_since_at_most": 7}, "fail"),
        ({"fact": "tls.not_after", "days_until_at_least": 7}, "pass"),
        ({"fact": "tls.not_after", "days_until_at_least": 30}, "fail"),
        ({"fact": "updates.lists_at", "days_since_at_least": 0}, "pass"),
        ({"fact": "updates.lists_at", "days_since_at_least": 3}, "fail"),
        ({"fact": "tls.not_after", "days_since_at_least": 0}, "fail"),  # in the future: not yet
        ({"fact": "updates.never", "days_since_at_least": 0}, "fail"),
        ({"fact": "updates.nosuchkey", "days_since_at_least": 0}, "fail"),
    ],
)
def test_operator(check, status):
    outcome = run_check(check, ROOT, NOW)
    assert outcome.status == status, outcome.reason


def test_combinators():
    yes = {"fact": "sshd.permitrootlogin", "equals": "no"}
    no = {"fact": "sshd.permitrootlogin", "equals": "yes"}
    broken = {"fact": ["sysctl", "kernel.sysrq"], "equals": 0}
    assert run_check({"all": [yes, yes]}, ROOT, NOW).status == "pass"
    assert run_check({"all": [yes, no]}, ROOT, NOW).status == "fail"
    assert run_check({"all": [yes, broken]}, ROOT, NOW).status == "error"
    assert run_check({"all": [no, broken]}, ROOT, NOW).status == "fail"  # a known failure outranks an unknown
    assert run_check({"any": [no, yes]}, ROOT, NOW).status == "pass"
    assert run_check({"any": [no, no]}, ROOT, NOW).status == "fail"
    assert run_check({"any": [no, broken]}, ROOT, NOW).status == "error"
    assert run_check({"not": no}, ROOT, NOW).status == "pass"
    assert run_check({"not": broken}, ROOT, NOW).status == "error"


def test_quantifiers_filter_and_relative_paths():
    interactive = {"fact": "login_shell", "equals": True}
    every_locked = {"fact": "users", "where": interactive, "every": {"fact": "password", "equals": "locked"}}
    outcome = run_check(every_locked, ROOT, NOW)
    assert outcome.status == "fail"
    # The deciding item, by its path and by its name.
    assert outcome.excerpt == {"users[1].name": "alice", "users[1].password": "set"}
    assert run_check({"fact": "users", "some": {"fact": "uid", "equals": 0}}, ROOT, NOW).status == "pass"
    assert run_check({"fact": "users", "none": {"fact": "password", "equals": "empty"}}, ROOT, NOW).status == "pass"
    none_uid0 = run_check({"fact": "users", "none": {"fact": "uid", "equals": 0}}, ROOT, NOW)
    assert none_uid0.status == "fail"
    assert none_uid0.excerpt == {"users[0].name": "root", "users[0].uid": 0}


def test_quantifier_over_mapping_and_min_items():
    files = {"fact": "files", "every": {"fact": "owner", "equals": "root"}}
    assert run_check(files, ROOT, NOW).status == "pass"
    vacuous = {"fact": "users", "where": {"fact": "uid", "at_least": 5000}, "every": {"fact": "uid", "equals": 0}}
    assert run_check({**vacuous, "min_items": 1}, ROOT, NOW).status == "fail"
    assert run_check({**vacuous, "min_items": 0}, ROOT, NOW).status == "fail"


@pytest.mark.parametrize("quantifier", ["every", "none"])
def test_a_quantifier_over_nothing_proves_nothing_unless_the_check_says_why(quantifier: str) -> None:
    nobody = {"fact": "uid", "at_least": 5000}
    over_nothing = {"fact": "users", "where": nobody, quantifier: {"fact": "uid", "equals": 0}}
    outcome = run_check(over_nothing, ROOT, NOW)
    assert outcome.status == "fail" and "nothing proves compliance" in outcome.reason
    assert run_check({"fact": "empty", quantifier: {"equals": 1}}, ROOT, NOW).status == "fail"
    allowed = run_check({**over_nothing, "empty_ok": "no such users exist on a compliant host"}, ROOT, NOW)
    assert allowed.status == "pass" and "no such users exist" in allowed.reason
    # `some` over nothing was never a pass.
    assert run_check({"fact": "empty", "some": {"equals": 1}}, ROOT, NOW).status == "fail"
    assert run_check({"fact": "sshd.permitrootlogin", "every": {"equals": "no"}}, ROOT, NOW).status == "error"
    assert run_check({"fact": "sshd.ciphers", "every": {"matches": "^aes"}}, ROOT, NOW).status == "pass"


def test_excerpt_names_the_value_that_decided():
    outcome = run_check({"fact": ["files", "/etc/passwd", "mode"], "mode_within": "0640"}, ROOT, NOW)
    assert outcome.excerpt == {"files['/etc/passwd'].mode": "0644"}
    assert "exceeds" in outcome.reason
    error = run_check({"fact": "auditd.rules", "empty": False}, ROOT, NOW)
    assert "not permitted in a container" in error.reason


# --- malformed evidence (a list or mapping where one value belongs, one value where a list belongs) decides
# nothing: the check gives `error`, so that no `not`, `none` or negative operator turns it into a pass


@pytest.mark.parametrize(
    ("check", "value"),
    [
        ({"fact": "setting", "not_equals": "yes"}, ["yes"]),
        ({"fact": "setting", "not_in": ["yes"]}, {"yes": 1}),
        ({"fact": "setting", "not_matches": "^yes"}, ["yes"]),
        ({"not": {"fact": "setting", "equals": "no"}}, ["no"]),
        ({"fact": "setting", "at_most": 4}, [5]),
        ({"fact": "setting", "not_contains": "nullok"}, [["nullok"], "obscure"]),
        ({"fact": "setting", "not_contains": "nullok"}, 7),
        ({"fact": "setting", "empty": False}, 0),
        ({"fact": "setting", "subset_of": ["aes128-ctr"]}, "3des-cbc"),
        ({"fact": "setting", "none": {"matches": "pool"}}, [["pool.ntp.org"]]),
        ({"not": {"fact": "setting", "every": {"equals": "x"}}}, "x"),
    ],
)
def test_a_value_of_the_wrong_kind_is_an_error(check: dict, value: object) -> None:
    outcome = run_check(check, {"setting": value}, NOW)
    assert outcome.status == "error", outcome.reason
    assert "was expected" in outcome.reason or "is not one value" in outcome.reason


# --- hostile evidence: patterns meet text no longer than MATCHED_TEXT_LIMIT; a longer text cannot decide a check

# One line of a hostile host's audit rules: Python's re backtracks on the catalog's `arch=b64 .*-S \S*\badjtimex\b`
# over it in time quadratic in its length (32 s for 334 KB here before the cap, 98 s on the machine).
HOSTILE_LINE = ("arch=b64 " * 40_000)[:334_000]
TIME_CHANGE = {"fact": "rules", "some": {"matches": r"arch=b64 .*-S \S*\badjtimex\b"}}


@pytest.mark.parametrize(
    "check",
    [
        TIME_CHANGE,
        {"fact": "rules", "none": {"matches": r"arch=b64 .*-S \S*\badjtimex\b"}},
        {"fact": "rules", "every": {"not_matches": "^-a never"}},
        {"not": TIME_CHANGE},
        {"any": [TIME_CHANGE, {"fact": "rules", "empty": True}]},
    ],
)
def test_a_text_longer_than_the_cap_is_an_error_never_a_pass_and_fast(check: dict) -> None:
    started = time.perf_counter()
    outcome = run_check(check, {"rules": ["-w /etc/passwd -p wa", HOSTILE_LINE]}, NOW)
    assert time.perf_counter() - started < 0.5
    assert outcome.status == "error"
    too_long = f"rules[1]: 334000 characters, more than the {MATCHED_TEXT_LIMIT} a pattern is matched against"
    assert too_long in outcome.reason


def test_a_text_at_the_cap_is_matched() -> None:
    rule = " arch=b64 -S adjtimex"
    line = "x" * (MATCHED_TEXT_LIMIT - len(rule)) + rule
    assert len(line) == MATCHED_TEXT_LIMIT
    assert run_check(TIME_CHANGE, {"rules": [line]}, NOW).status == "pass"
    assert run_check(TIME_CHANGE, {"rules": [line + " "]}, NOW).status == "error"


def test_the_worst_catalog_pattern_on_the_longest_matched_text_is_quick() -> None:
    """Every `matches`/`not_matches` pattern of the catalog on texts of MATCHED_TEXT_LIMIT characters built from its
    own literal parts (what makes a backtracking pattern slow): none takes more than a few milliseconds."""
    slowest, worst = 0.0, ""
    for pattern in catalog_patterns():
        for filler in {*re.split(r"[\\()\[\]*+?.^$|{}]", pattern), "arch=b64 ", " "} - {""}:
            text = (filler * (MATCHED_TEXT_LIMIT // len(filler) + 1))[:MATCHED_TEXT_LIMIT]
            started = time.perf_counter()
            re.search(pattern, text)
            seconds = time.perf_counter() - started
            if seconds > slowest:
                slowest, worst = seconds, f"/{pattern}/ on {filler!r}..."
    assert slowest < 0.05, f"{worst}: {slowest * 1000:.1f} ms"


def values_of(key: str, check: object) -> list:
    """Every value of `key` anywhere in a check."""
    if isinstance(check, dict):
        return ([check[key]] if key in check else []) + [v for item in check.values() for v in values_of(key, item)]
    return [v for item in check for v in values_of(key, item)] if isinstance(check, list) else []


def catalog_patterns() -> set[str]:
    controls = load_catalog(CATALOG_DIR).controls
    return {p for c in controls for op in ("matches", "not_matches") for p in values_of(op, [c.check, c.applies_when])}


def test_a_fact_over_the_size_cap_makes_the_checks_reading_it_errors() -> None:
    """A section of the facts larger than FACT_LIMIT is judged as unavailable: an error, never a pass."""
    evidence = json.loads(json.dumps(FIXTURE_EVIDENCE))
    evidence["facts"]["auditd"]["effective"]["rules"].extend(["-a never,task"] * (FACT_LIMIT // 16))
    catalog = load_catalog(CATALOG_DIR)
    findings = {f.control: f for f in evaluate([HostEvidence("h", evidence, {})], catalog, (), NOW)}
    recorded = {f.control: f for f in evaluate([HostEvidence("h", FIXTURE_EVIDENCE, {})], catalog, (), NOW)}
    auditd = [c.id for c in catalog.controls if "auditd" in {parse_path(f)[0] for f in values_of("fact", c.check)}]
    judged = [c for c in auditd if recorded[c].status != "not_applicable"]
    assert len(judged) > 5
    for control in judged:
        assert findings[control].status == "error", control
        assert "characters of JSON, over the limit of" in findings[control].reason
    others = [c.id for c in catalog.controls if c.id not in auditd]
    assert {c: findings[c].status for c in others} == {c: recorded[c].status for c in others}


@pytest.mark.parametrize(
    ("pattern", "nested"),
    [
        ("(a+)+$", True),
        (r"^(\S+\s*)*x", True),
        ("(a{1,3})*", True),
        ("(?:x|(ab)+)*", True),
        ("(?=(a+)+$)", True),
        ("((?=a+)b)*", True),
        ("(ab|cd)*", False),
        ("(a{3})+", False),
        (r"^-w /etc/passwd -p (?=[rwxa]*w)(?=[rwxa]*a)[rwxa]+( |$)", False),
        (r"arch=b64 .*-S \S*\bclock_settime\b", False),
    ],
)
def test_nested_repetition_is_the_exponential_shape(pattern: str, nested: bool) -> None:
    assert nested_repetition(pattern) is nested


def test_no_catalog_pattern_has_nested_repetition() -> None:
    patterns = [
        check[key]
        for control in load_catalog(CATALOG_DIR).controls
        for root in (control.check, control.applies_when)
        if root
        for _, check in walk_checks(root, ())
        for key in ("matches", "not_matches")
        if key in check
    ]
    assert len(patterns) > 50
    assert [p for p in patterns if nested_repetition(p)] == []


@pytest.mark.parametrize(
    "value",
    [{}, {"unavailable": "x"}, OrderedDict(a=1), MappingProxyType({"a": 1}), "text", 1, 1.5, True, None, [], ["a"], ()],
)
def test_is_mapping_is_isinstance_mapping(value: object) -> None:
    assert is_mapping(value) is isinstance(value, Mapping)


def test_a_mapping_that_is_not_a_dict_is_read_and_may_be_unavailable() -> None:
    now = datetime.now(UTC)
    root = MappingProxyType({"a": MappingProxyType({"b": "yes"}), "c": MappingProxyType({"unavailable": "gone"})})
    assert run_check({"fact": "a.b", "equals": "yes"}, root, now).status == "pass"
    assert run_check({"fact": "c.d", "equals": "yes"}, root, now).status == "error"
