"""Kills mutants of history/diff.py left by test_history.py (`make mutation`): the run and drill tables, score
lines and JSON records, exactly as a reader gets them."""

from __future__ import annotations

from datetime import UTC, datetime

from medinfra.history.diff import (
    REASON_WIDTH,
    ScoreChange,
    drill_record,
    drills_table,
    run_record,
    runs_table,
    score_line,
    score_record,
    shorten,
)
from medinfra.history.store import DrillInfo, RunInfo
from medinfra.terminal import Palette

COMPLETE = RunInfo(1, None, "lab", "inv", "pyinfra", datetime(2026, 11, 22, 7, 16, 44, tzinfo=UTC), 12, 12, 0.9123,
                   {"hipaa": 0.5, "gbt22239": None, "cis_debian12": 1.0}, {"pass": 3})
SHORT = RunInfo(12, "u", "site\x1b[31m", "inv", "ansible", datetime(2026, 11, 23, 7, 0, 0, tzinfo=UTC), 11, 12, None,
                {}, {})
FAILOVER = DrillInfo(3, "d", "lab", "failover", "his-db", datetime(2026, 11, 22, 7, 0, 0, tzinfo=UTC),
                     datetime(2026, 11, 22, 7, 1, 30, tzinfo=UTC), True, "reports-drill/x.json")
PLAN = DrillInfo(14, "e", "lab", "plan", "power-outage", datetime(2026, 11, 22, 8, 0, 0, tzinfo=UTC),
                 datetime(2026, 11, 22, 8, 0, 5, tzinfo=UTC), False, "")


RUNS = [
    "id  started (UTC)        site          transport  hosts  overall   HIPAA  GB/T 22239     CIS",
    " 1  2026-11-22 07:16:44  lab           pyinfra    12/12    91.2%   50.0%         n/a  100.0%",
    "12  2026-11-23 07:00:00  site\\x1b[31m  ansible    11/12      n/a     n/a         n/a     n/a",
]
DRILLS = [
    "id  started (UTC)        site  kind      name          result  seconds  evidence",
    " 3  2026-11-22 07:00:00  lab   failover  his-db        pass         90  reports-drill/x.json",
    "14  2026-11-22 08:00:00  lab   plan      power-outage  fail          5",
]


def test_runs_table_exactly() -> None:
    assert runs_table([COMPLETE, SHORT]).split("\n") == RUNS


def test_runs_table_paints_only_an_incomplete_runs_hosts_after_padding() -> None:
    assert runs_table([COMPLETE, SHORT], Palette(enabled=True)).split("\n") == [
        *RUNS[:2], RUNS[2].replace("11/12", "\x1b[33m11/12\x1b[0m")]


def test_drills_table_exactly_and_painted() -> None:
    assert drills_table([FAILOVER, PLAN]).split("\n") == DRILLS
    assert drills_table([FAILOVER, PLAN], Palette(enabled=True)).split("\n") == [
        DRILLS[0], DRILLS[1].replace("pass", "\x1b[32mpass\x1b[0m"), DRILLS[2].replace("fail", "\x1b[31mfail\x1b[0m")]


def test_score_lines() -> None:
    assert score_line(ScoreChange("overall", 0.5, 0.625)) == "  overall     50.0% → 62.5% (+12.5 points)"
    assert score_line(ScoreChange("gbt22239", None, 0.5)) == "  GB/T 22239  n/a → 50.0%"
    assert score_line(ScoreChange("new\x1bfw", 0.5, 0.25)) == "  new\\x1bfw   50.0% → 25.0% (-25.0 points)"
    assert score_record(ScoreChange("hipaa", 0.5, 0.66666)) == {
        "scope": "hipaa", "before": 0.5, "after": 0.66666, "delta": 0.1667}
    assert score_record(ScoreChange("hipaa", None, 0.5))["delta"] is None


def test_shorten_at_the_width() -> None:
    assert shorten("x" * REASON_WIDTH) == "x" * REASON_WIDTH
    assert shorten("x" * (REASON_WIDTH + 1)) == "x" * (REASON_WIDTH - 1) + "…"
    assert shorten("abcdef", 4) == "abc…"


def test_records_for_json() -> None:
    assert run_record(COMPLETE) == {
        "id": 1, "run_uuid": None, "site": "lab", "inventory": "inv", "transport": "pyinfra",
        "started_at": "2026-11-22T07:16:44Z", "hosts_audited": 12, "hosts_total": 12, "score": 0.9123,
        "framework_scores": {"hipaa": 0.5, "gbt22239": None, "cis_debian12": 1.0}, "counts": {"pass": 3}}
    assert drill_record(FAILOVER) == {
        "id": 3, "drill_uuid": "d", "site": "lab", "kind": "failover", "name": "his-db",
        "started_at": "2026-11-22T07:00:00Z", "finished_at": "2026-11-22T07:01:30Z", "passed": True,
        "evidence": "reports-drill/x.json", "seconds": 90.0}


def test_diff_record_holds_every_part_of_the_diff() -> None:
    from medinfra.history.diff import diff_record, diff_runs
    from tests.unit.test_history import AFTER, BEFORE, make_document

    def change(host: str, control: str, status: str, before: str | None) -> dict[str, str | None]:
        return {"host": host, "control": control, "status": status, "reason": f"{control} {status} on {host}",
                "before": before}

    assert diff_record(diff_runs(make_document(BEFORE), make_document(AFTER))) == {
        "score": {"scope": "overall", "before": 0.4, "after": 0.3333, "delta": -0.0667},
        "frameworks": [
            {"scope": "hipaa", "before": 0.2857, "after": 0.3333, "delta": 0.0476},
            {"scope": "gbt22239", "before": 0.375, "after": 0.25, "delta": -0.125},
            {"scope": "cis_debian12", "before": 0.3333, "after": 0.25, "delta": -0.0833},
        ],
        "new_failures": [change("db", "audit_log", "error", "pass"), change("db", "ntp_sync", "fail", None),
                         change("web", "ntp_sync", "fail", "waived"), change("web", "ssh_root", "fail", "pass")],
        "fixed": [change("web", "audit_log", "waived", "fail"), change("web", "tmp_noexec", "pass", "error")],
        "hosts_added": [{"name": "new", "failing": 1, "status": "audited", "reason": ""}],
        "hosts_removed": [{"name": "old", "failing": 1, "status": "unreachable", "reason": "connection refused"},
                          {"name": "retired", "failing": 2, "status": "absent", "reason": ""}],
    }
