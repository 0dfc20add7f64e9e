"""Kills mutants of the check language (compliance/checks.py) that the behaviour tests let through (`make mutation`):
a finding's reason is what an auditor reads, so each operator's wording is pinned here, exactly."""

from __future__ import annotations

from typing import Any

import pytest

from medinfra.compliance.checks import (
    EXCERPT_ITEMS,
    EXCERPT_TEXT,
    MISSING,
    Outcome,
    apply_operator,
    as_time,
    excerpt_value,
    operator_schema,
    run_check,
)
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


QUANTIFIED: dict[str, Any] = {
    **ROOT,
    "text": "abc",
    "services": {"a": {"state": "up"}, "b": {"state": "down"}},
    "certs": [
        {"path": "/a", "not_after": "2026-12-30T00:00:00Z"},
        {"name": "", "path": "/b", "not_after": "2026-11-23T00:00:00Z"},  # an empty name names nothing
    ],
    "mixed": [{"v": 1}, {"v": [2]}, {"v": 3}],  # the second item cannot be judged by a one-value operator
}


@pytest.mark.parametrize(
    ("check", "status", "reason", "excerpt"),
    [
        ({"fact": "nosuch", "every": {"fact": "x", "equals": 1}}, "fail", "nosuch: absent from the evidence",
         {"nosuch": "<absent>"}),
        ({"fact": "updates.never", "some": {"fact": "x", "equals": 1}}, "fail",
         "updates.never: absent from the evidence", {"updates.never": "<absent>"}),
        ({"fact": "text", "every": {"fact": "x", "equals": 1}}, "error", "text: 'abc' where a list was expected",
         {"text": "abc"}),
        # A `where` that cannot be judged on an item leaves the whole check undecided.
        ({"fact": "users", "where": {"fact": "password.x", "equals": 1}, "every": {"fact": "name", "equals": "root"}},
         "error", "users[0].password: 'locked' cannot hold x", {}),
        ({"fact": "users", "where": {"fact": "login_shell", "equals": True},
          "every": {"fact": "password", "equals": "locked"}, "min_items": 3},
         "fail", "users: 2 matching item(s), need at least 3", {"users": ROOT["users"]}),
        # `where` is judged at NOW too: the certificate with half a day left is filtered out.
        ({"fact": "certs", "where": {"fact": "not_after", "days_until_at_least": 3},
          "every": {"fact": "path", "exists": True}},
         "pass", "certs: 1/1 item(s) pass", {"certs": "1 item(s)"}),
        ({"fact": "certs", "every": {"fact": "not_after", "days_until_at_least": 3}}, "fail",
         "certs: 1/2 item(s) pass: certs[1].not_after: 0.5 days left (need 3)",
         {"certs[1].path": "/b", "certs[1].not_after": "2026-11-23T00:00:00Z"}),
        ({"fact": "services", "every": {"fact": "state", "equals": "up"}}, "fail",
         "services: 1/2 item(s) pass: services.b.state: 'down' != 'up'", {"services.b.state": "down"}),
        ({"fact": "users", "where": {"fact": "uid", "at_least": 5000}, "some": {"fact": "name", "equals": "x"}},
         "fail", "users: 0 of 0 item(s) pass", {"users": "0 item(s)"}),
        ({"fact": "users", "some": {"fact": "name", "equals": "alice"}}, "pass", "users: 1 of 3 item(s) pass",
         {"users[1].name": "alice"}),
        ({"fact": "users", "none": {"fact": "password", "equals": "set"}}, "fail",
         "users: 1 item(s) match, none allowed: users[1].password: 'set' = 'set'",
         {"users[1].name": "alice", "users[1].password": "set"}),
        ({"fact": "users", "every": {"fact": "uid", "at_most": 1000}}, "pass", "users: 3/3 item(s) pass",
         {"users": "3 item(s)"}),
        ({"fact": "users", "every": {"all": [{"fact": "uid", "at_most": 999}]}}, "fail",
         "users: 2/3 item(s) pass: users[1].uid: 1000 is not at most 999",
         {"users[1].name": "alice", "users[1].uid": 1000}),
        ({"all": [{"fact": "updates.lists_at", "days_since_at_most": 7}]}, "pass",
         "updates.lists_at: 2.0 days ago (limit 7)", {"updates.lists_at": "2026-11-20T12:00:00Z"}),
        ({"any": [{"fact": "updates.lists_at", "days_since_at_most": 7}]}, "pass",
         "updates.lists_at: 2.0 days ago (limit 7)", {"updates.lists_at": "2026-11-20T12:00:00Z"}),
        # A known failure decides `every` although another item cannot be judged; a pass decides `some`.
        ({"fact": "mixed", "every": {"fact": "v", "at_most": 2}}, "fail",
         "mixed: 1/3 item(s) pass: mixed[2].v: 3 is not at most 2", {"mixed[2].v": 3}),
        ({"fact": "mixed", "some": {"fact": "v", "at_least": 3}}, "pass", "mixed: 1 of 3 item(s) pass",
         {"mixed[2].v": 3}),
        ({"fact": "mixed", "every": {"fact": "v", "at_least": 1}}, "error",
         "mixed[1].v: [2] where one value was expected", {"mixed[1].v": [2]}),
        ({"fact": "mixed", "some": {"fact": "v", "at_least": 9}}, "error",
         "mixed[1].v: [2] where one value was expected", {"mixed[1].v": [2]}),
        # `some` shows the first item that passed, only that one.
        ({"fact": "users", "some": {"fact": "uid", "at_most": 1000}}, "pass", "users: 3 of 3 item(s) pass",
         {"users[0].name": "root", "users[0].uid": 0}),
        ({"fact": "empty", "every": {"equals": 1}, "empty_ok": "no item is fine"}, "pass",
         "empty: no item(s), which is compliant: no item is fine", {"empty": []}),
        ({"fact": "empty", "every": {"equals": 1}}, "fail",
         "empty: no item(s) to check, so nothing proves compliance", {"empty": []}),
        ({"fact": "sshd.permitrootlogin", "matches": "^n"}, "pass", "sshd.permitrootlogin: 'no' matches /^n/",
         {"sshd.permitrootlogin": "no"}),
        ({"fact": "sshd.permitrootlogin", "matches": "^y"}, "fail", "sshd.permitrootlogin: 'no' does not match /^y/",
         {"sshd.permitrootlogin": "no"}),
        # A `where` that cannot judge an item shows that item's evidence.
        ({"fact": "mixed", "where": {"fact": "v", "at_least": 1}, "every": {"fact": "v", "equals": 1}}, "error",
         "mixed[1].v: [2] where one value was expected", {"mixed[1].v": [2]}),
        ({"fact": "users", "every": {"fact": "uid", "at_most": 0}}, "fail",
         "users: 1/3 item(s) pass: users[1].uid: 1000 is not at most 0; users[2].uid: 1 is not at most 0",
         {"users[1].name": "alice", "users[1].uid": 1000, "users[2].name": "daemon", "users[2].uid": 1}),
    ],
)
def test_each_quantifier_outcome_exactly(
    check: dict[str, Any], status: str, reason: str, excerpt: dict[str, Any]
) -> None:
    outcome = run_check(check, QUANTIFIED, NOW)
    assert (outcome.status, outcome.reason, outcome.excerpt) == (status, reason, excerpt)


SSHD_SHOWN = "{'permitrootlogin': 'no', 'maxauthtries': '3', 'ciphers': ['aes256-gcm@openssh.com', 'aes128-ctr']}"
USERS_SHOWN = (
    "[{'name': 'root', 'uid': 0, 'login_shell': True, 'password': 'locked'}, "
    "{'name': 'alice', 'uid': 1000, 'login_shell': True, 'password': 'set'}, "
    "{'name': 'daemon', 'uid': 1, 'login_shell': False, 'password': 'locked'}]"
)


@pytest.mark.parametrize(
    ("check", "status", "reason", "excerpt"),
    [
        ({"fact": "auditd.rules", "equals": 1}, "error",
         "auditd: unavailable on the host: auditctl: not permitted in a container", {}),
        ({"fact": ["sysctl", "kernel.sysrq"], "equals": 0}, "error",
         "sysctl['kernel.sysrq']: unavailable on the host: not readable here", {}),
        ({"fact": ["users", 0, "name"], "equals": "root"}, "pass", "users[0].name: 'root' = 'root'",
         {"users[0].name": "root"}),
        ({"fact": ["users", 3, "name"], "equals": "root"}, "fail", "users[3].name: absent from the evidence",
         {"users[3].name": "<absent>"}),
        ({"fact": ["users", -1, "name"], "equals": "root"}, "fail", "users[-1].name: absent from the evidence",
         {"users[-1].name": "<absent>"}),
        ({"fact": ["sshd", 0], "equals": 1}, "error", f"sshd: {SSHD_SHOWN} cannot hold [0]", {}),
        ({"fact": "users.name", "equals": 1}, "error", f"users: {USERS_SHOWN} cannot hold name", {}),
        ({"fact": "updates.never.x", "equals": 1}, "fail", "updates.never.x: absent from the evidence",
         {"updates.never.x": "<absent>"}),
        # Text is compared as written: only spellings across types (3 and "3", true and "True") are forgiven.
        ({"fact": "sshd.permitrootlogin", "equals": "No"}, "fail", "sshd.permitrootlogin: 'no' != 'No'",
         {"sshd.permitrootlogin": "no"}),
        ({"fact": "sshd.ciphers", "equals": "x"}, "error",
         "sshd.ciphers: ['aes256-gcm@openssh.com', 'aes128-ctr'] where one value was expected",
         {"sshd.ciphers": ["aes256-gcm@openssh.com", "aes128-ctr"]}),
    ],
)
def test_paths_resolve_exactly(check: dict[str, Any], status: str, reason: str, excerpt: dict[str, Any]) -> None:
    outcome = run_check(check, ROOT, NOW)
    assert (outcome.status, outcome.reason, outcome.excerpt) == (status, reason, excerpt)


def test_an_unknown_operator_is_named() -> None:
    with pytest.raises(ValueError, match=r"^unknown operator nope$"):
        apply_operator("nope", 1, 1, NOW)


def test_excerpts_are_bounded_at_their_limits_exactly() -> None:
    assert excerpt_value(MISSING) == "<absent>"
    assert excerpt_value("x" * EXCERPT_TEXT) == "x" * EXCERPT_TEXT
    assert excerpt_value("x" * (EXCERPT_TEXT + 1)) == "x" * EXCERPT_TEXT + "..."
    assert excerpt_value(list(range(EXCERPT_ITEMS))) == list(range(EXCERPT_ITEMS))
    assert excerpt_value(list(range(EXCERPT_ITEMS + 3))) == [*range(EXCERPT_ITEMS), "... 3 more"]
    twenty = {f"k{i}": i for i in range(EXCERPT_ITEMS)}
    assert excerpt_value(twenty) == twenty
    assert excerpt_value({**twenty, "a": 1, "b": 2}) == {**twenty, "...": "2 more"}
    # Nested values are bounded too, and keys are shown as text.
    assert excerpt_value([{1: "y" * 400}]) == [{"1": "y" * EXCERPT_TEXT + "..."}]
    assert excerpt_value({"k": ["y" * 400]}) == {"k": ["y" * EXCERPT_TEXT + "..."]}


@pytest.mark.parametrize(
    ("check", "expected"),
    [
        # `not` over a pass: a fail, with the evidence of what it wrapped.
        ({"not": {"fact": "sshd.permitrootlogin", "equals": "no"}},
         Outcome("fail", "not (sshd.permitrootlogin: 'no' = 'no')", {"sshd.permitrootlogin": "no"})),
        # `not` judges what it wraps at the same time as the rest of the check.
        ({"not": {"fact": "updates.lists_at", "days_since_at_most": 1}},
         Outcome("pass", "not (updates.lists_at: 2.0 days ago (limit 1))",
                 {"updates.lists_at": "2026-11-20T12:00:00Z"})),
        # Inside a quantifier, `any` and `not` name the item their facts come from.
        ({"fact": "users", "every": {"any": [{"fact": "uid", "at_least": 1000},
                                             {"not": {"fact": "login_shell", "equals": True}}]}},
         Outcome("fail", "users: 2/3 item(s) pass: none of: users[0].uid: 0 is not at least 1000 | "
                         "not (users[0].login_shell: True = True)",
                 {"users[0].name": "root", "users[0].uid": 0, "users[0].login_shell": True})),
    ],
    ids=["not-over-a-pass", "not-at-the-same-time", "any-and-not-in-an-item"],
)
def test_not_and_any_keep_the_time_and_the_item_path_of_what_they_wrap(
    check: dict[str, Any], expected: Outcome
) -> None:
    assert run_check(check, ROOT, NOW) == expected
