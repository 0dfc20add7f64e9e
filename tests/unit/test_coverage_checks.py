"""The check language on evidence the other tests never send: values of the wrong kind, absent and null values on
the way to a fact, a `where` that cannot decide. Each must decide as documented (fail or error), never pass."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from medinfra.compliance.checks import MISSING, apply_operator, as_number, as_time, run_check

NOW = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("check", "evidence", "status", "reason"),
    [
        # an index past the end, or a null on the way, is an absent fact: it fails, it is no error
        ({"fact": ["users", 5, "name"], "equals": "root"}, {"users": [{"name": "root"}]}, "fail", "absent"),
        ({"fact": "sshd.port", "equals": 22}, {"sshd": None}, "fail", "absent"),
        # a null list is empty when that is asked, and holds nothing
        ({"fact": "groups", "empty": True}, {"groups": None}, "pass", "none"),
        ({"fact": "groups", "empty": False}, {"groups": None}, "fail", "none"),
        ({"fact": "groups", "contains": "wheel"}, {"groups": None}, "fail", "None is not a list"),
        ({"fact": "groups", "subset_of": ["wheel"]}, {"groups": None}, "fail", "None is not a list"),
        # a value of the wrong kind never satisfies an operator that needs another
        ({"fact": "mode", "mode_within": "0644"}, {"mode": "rw-r--r--"}, "fail", "is not a file mode"),
        ({"fact": "mode", "mode_within": "0644"}, {"mode": 420}, "fail", "is not a file mode"),
        ({"fact": "version", "version_at_least": "1.2"}, {"version": 3}, "fail", "is not a version"),
        ({"fact": "not_after", "days_until_at_least": 7}, {"not_after": "next week"}, "fail", "is not a time"),
        ({"fact": "not_after", "days_until_at_least": 7}, {"not_after": 1736942400}, "fail", "is not a time"),
    ],
)
def test_an_odd_value_decides_as_documented(check: dict[str, Any], evidence: Any, status: str, reason: str) -> None:
    outcome = run_check(check, evidence, NOW)
    assert outcome.status == status and reason in outcome.reason, outcome


def test_a_where_that_cannot_decide_makes_the_quantifier_an_error() -> None:
    """An item whose selection is undecided must not be left out silently: the whole check is an error."""
    check = {"fact": "accounts", "every": {"fact": "uid", "at_least": 1000},
             "where": {"fact": "shell", "matches": "sh$"}}
    evidence = {"accounts": [{"uid": 1000, "shell": "/bin/sh"}, {"uid": 0, "shell": ["/bin/sh"]}]}
    outcome = run_check(check, evidence, NOW)
    assert outcome.status == "error" and "where one value was expected" in outcome.reason


def test_an_unknown_operator_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="unknown operator no_such_operator"):
        apply_operator("no_such_operator", 1, 1, NOW)


def test_booleans_are_no_numbers_and_only_iso_text_is_a_time() -> None:
    assert as_number(True) is None and as_number(" 12 ") == 12.0 and as_number("12 MB") is None
    assert as_time("2026-01-15T12:00:00Z") == NOW
    assert as_time("yesterday") is None and as_time(None) is None


def test_an_absent_value_shows_as_absent_in_excerpts() -> None:
    assert repr(MISSING) == "<absent>"
    assert run_check({"fact": "nosuch", "equals": 1}, {}, NOW).reason == "nosuch: absent from the evidence"
