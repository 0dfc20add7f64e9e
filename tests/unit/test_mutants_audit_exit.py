"""Kills mutants of the audit's exit status and its tally (audit/results.py exit_code, tally, Tally) left by
test_audit.py (`make mutation`)."""

from __future__ import annotations

from dataclasses import replace

from medinfra.audit.results import HostResult, Tally, exit_code, tally
from medinfra.compliance.model import Finding, Status
from medinfra.exits import EXIT_FAILURES, EXIT_OK, EXIT_UNREACHABLE
from tests.unit.test_audit import evidence, run_of


def finding(status: Status) -> Finding:
    return Finding("a", "root_login_off", status, "", {})


def test_the_exit_status_of_each_kind_of_run() -> None:
    clean = run_of([HostResult("a", "audited", "", evidence(), 0.1)])
    assert exit_code(clean) == EXIT_OK
    # Not recorded in the history it was meant for: incomplete, even with every control passing.
    assert exit_code(clean, recorded=False) == EXIT_UNREACHABLE
    assert exit_code(replace(clean, findings=[finding(Status.ERROR)])) == EXIT_FAILURES
    assert exit_code(replace(clean, findings=[finding(Status.FAIL)])) == EXIT_FAILURES
    passing = [finding(Status.WAIVED), finding(Status.NOT_APPLICABLE), finding(Status.PASS)]
    assert exit_code(replace(clean, findings=passing)) == EXIT_OK


def test_tally_counts_errors_against_the_score_and_not_applicable_not_at_all() -> None:
    counted = tally([finding(s) for s in (Status.PASS, Status.PASS, Status.WAIVED, Status.FAIL, Status.ERROR,
                                          Status.NOT_APPLICABLE)])
    assert counted.decided == 5
    assert counted.score == 3 / 5
    assert counted.as_dict() == {"pass": 2, "fail": 1, "not_applicable": 1, "error": 1, "waived": 1, "score": 0.6}
    thirds = tally([finding(Status.PASS), finding(Status.FAIL), finding(Status.FAIL)])
    assert thirds.as_dict()["score"] == 0.3333
    # A status no finding has counts 0 in the summary (the counts here are a plain mapping, not a Counter).
    nothing = Tally({Status.NOT_APPLICABLE: 4})
    assert (nothing.decided, nothing.score) == (0, None)
    assert nothing.as_dict() == {"pass": 0, "fail": 0, "not_applicable": 4, "error": 0, "waived": 0, "score": None}
