"""Kills mutants of the check language (compliance/checks.py) that the behaviour tests let through (`make mutation`):
a finding's reason is what an auditor reads, so each operator's wording is pinned here, exactly."""

from __future__ import annotations

from typing import Any

import pytest

from medinfra.compliance.checks import MISSING, as_time, operator_schema, run_check
from tests.unit.test_checks import NOW, ROOT


@pytest.mark.parametrize(
    ("check", "status", "reason"),
    [
        ({"fact": "sshd.maxauthtries", "at_most": 4}, "pass", "sshd.maxauthtries: 3 is at most 4"),
        ({"fact": "sshd.maxauthtries", "at_most": 2}, "fail", "sshd.maxauthtries: 3 is not at most 2"),
        ({"fact": "sshd.maxauthtries", "at_least": 3.5}, "fail", "sshd.maxauthtries: 3 is not at least 3.5"),
        ({"fact": "sshd.permitrootlogin", "at_least": 1}, "fail", "sshd.permitrootlogin: 'no' is not a number"),
        ({"fact": "sshd.permitrootlogin", "in": ["no", "prohibit-password"]}, "pass",
         "sshd.permitrootlogin: 'no' is in ['no', 'prohibit-password']"),
        ({"fact": "sshd.permitrootlogin", "not_in": ["no"]}, "fail", "sshd.permitrootlogin: 'no' is in ['no']"),
        ({"fact": "sshd.permitrootlogin", "in": ["yes"]}, "fail", "sshd.permitrootlogin: 'no' is not in ['yes']"),
        ({"fact": "updates.never", "contains": "x"}, "fail", "updates.never: None is not a list"),
        ({"fact": "updates.never", "not_contains": "x"}, "fail", "updates.never: None is not a list"),
        ({"fact": "updates.never", "days_since_at_most": 7}, "fail", "updates.never: never"),
        ({"fact": "sshd.permitrootlogin", "days_since_at_most": 7}, "fail",
         "sshd.permitrootlogin: 'no' is not a time"),
        # Exactly two days before NOW: at the limit, which passes (a day is 86,400 s, not a second more).
        ({"fact": "updates.lists_at", "days_since_at_least": 2}, "pass",
         "updates.lists_at: 2.0 days ago (need at least 2 days ago)"),
        ({"any": [{"fact": "sshd.permitrootlogin", "equals": "yes"}, {"fact": "sshd.maxauthtries", "at_most": 2}]},
         "fail", "none of: sshd.permitrootlogin: 'no' != 'yes' | sshd.maxauthtries: 3 is not at most 2"),
        ({"fact": "updates.never", "matches": "x"}, "fail", "updates.never: None is no text to match"),
        ({"fact": "text", "contains": "x"}, "error", "text: 'abc' where a list was expected"),
        ({"fact": "nested", "contains": "x"}, "error", "nested: item ['a'] of the list is not one value"),
        ({"fact": "sshd.ciphers", "contains": "aes128-ctr"}, "pass", "sshd.ciphers: 'aes128-ctr' found"),
        ({"fact": "sshd.ciphers", "contains": "x"}, "fail", "sshd.ciphers: 'x' not found"),
        ({"all": [{"fact": "sshd.permitrootlogin", "equals": "no"}, {"fact": "sshd.maxauthtries", "at_most": 4}]},
         "pass", "sshd.permitrootlogin: 'no' = 'no'; sshd.maxauthtries: 3 is at most 4"),
        ({"all": [{"fact": "sshd.permitrootlogin", "equals": "yes"}, {"fact": "sshd.maxauthtries", "at_most": 2}]},
         "fail", "sshd.permitrootlogin: 'no' != 'yes'; sshd.maxauthtries: 3 is not at most 2"),
    ],
)
def test_each_operator_says_exactly_why(check: dict[str, Any], status: str, reason: str) -> None:
    outcome = run_check(check, {**ROOT, "nested": [["a"], "b"], "text": "abc"}, NOW)
    assert (outcome.status, outcome.reason) == (status, reason)


def test_any_that_fails_shows_the_evidence_of_every_alternative() -> None:
    check = {"any": [{"fact": "sshd.permitrootlogin", "equals": "yes"}, {"fact": "sshd.maxauthtries", "at_most": 2}]}
    assert run_check(check, ROOT, NOW).excerpt == {"sshd.permitrootlogin": "no", "sshd.maxauthtries": "3"}


def test_an_absent_value_is_shown_as_absent() -> None:
    assert repr(MISSING) == "<absent>"


def test_a_utc_time_may_end_in_z_but_not_in_a_lowercase_z() -> None:
    assert as_time("2026-11-20T12:00:00Z") == as_time("2026-11-20T12:00:00+00:00")
    assert as_time("2026-11-20T12:00:00z") is None


def test_each_operator_is_one_required_alternative_of_the_control_schema() -> None:
    alternatives, arguments = operator_schema()
    assert alternatives[:3] == [{"required": ["exists"]}, {"required": ["empty"]}, {"required": ["equals"]}]
    assert len(alternatives) == len(arguments) == 18
    assert arguments["mode_within"] == {"type": "string", "pattern": "^0?[0-7]{3,4}$"}


def test_all_shows_the_evidence_of_what_decided_it() -> None:
    """A pass shows every part's evidence; a failure only the failing parts'."""
    root_login, tries = {"fact": "sshd.permitrootlogin", "equals": "no"}, {"fact": "sshd.maxauthtries", "at_most": 4}
    assert run_check({"all": [root_login, tries]}, ROOT, NOW).excerpt == {
        "sshd.permitrootlogin": "no", "sshd.maxauthtries": "3"}
    failing = {"all": [{"fact": "sshd.permitrootlogin", "equals": "yes"}, {"fact": "sshd.ciphers", "contains": "x"},
                       tries]}
    assert run_check(failing, ROOT, NOW).excerpt == {
        "sshd.permitrootlogin": "no", "sshd.ciphers": ["aes256-gcm@openssh.com", "aes128-ctr"]}
