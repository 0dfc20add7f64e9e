"""Kills mutants of history/diff.py left by test_history.py (`make mutation`): the run and drill tables, score
lines and JSON records, exactly as a reader gets them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from medinfra.history.diff import (
    REASON_WIDTH,
    Change,
    HostChange,
    RunDiff,
    ScoreChange,
    change_lines,
    diff_runs,
    diff_text,
    drill_record,
    drills_table,
    framework_order,
    run_label,
    run_record,
    runs_table,
    score_line,
    score_record,
    shorten,
    title,
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


def test_run_label_names_the_run_its_site_and_when_it_started() -> None:
    assert run_label(COMPLETE) == "run 1 of lab at 2026-11-22 07:16:44 UTC"
    assert run_label(SHORT) == "run 12 of site\\x1b[31m at 2026-11-23 07:00:00 UTC"


def finding(host: str, control: str, status: str, **reason: str | None) -> dict[str, Any]:
    """A finding as `medinfra audit` writes it; no `reason` keyword leaves the key out."""
    return {"host": host, "control": control, "status": status, **reason}


def findings_document(hosts: dict[str, str], findings: list[dict[str, Any]], **summary: Any) -> dict[str, Any]:
    """The parts of a findings document the diff reads: hosts by name -> status, the findings and, if given,
    the summary."""
    document: dict[str, Any] = {"hosts": [{"name": name, "status": status} for name, status in hosts.items()],
                                "findings": findings}
    if summary:
        document["summary"] = summary
    return document


def test_findings_and_hosts_without_a_reason_get_an_empty_one() -> None:
    before = findings_document({"a": "audited", "gone": "audited", "down": "audited"}, [
        finding("a", "c1", "pass"), finding("a", "c2", "fail"),
        finding("gone", "c1", "fail"), finding("gone", "c2", "error"), finding("gone", "c3", "pass"),
        finding("down", "c1", "waived")])
    after = findings_document({"a": "audited", "down": "unreachable", "fresh": "audited"}, [
        finding("a", "c1", "fail", reason=None), finding("a", "c2", "pass"),
        finding("fresh", "c1", "pass")])
    assert diff_runs(before, after) == RunDiff(
        new_failures=(Change("a", "c1", "fail", "", "pass"),),
        fixed=(Change("a", "c2", "pass", "", "fail"),),
        hosts_added=(HostChange("fresh", 0, "audited", ""),),
        hosts_removed=(HostChange("down", 0, "unreachable", ""), HostChange("gone", 2, "absent", "")),
        score_change=ScoreChange("overall", None, None),
        framework_changes=(),
    )


def test_findings_count_only_for_hosts_audited_in_both_runs() -> None:
    """A host audited in one run only is a host added or removed, however its findings read; a finding that stays
    failing, stays passing or is new and passing is no change."""
    before = findings_document({"a": "audited", "b": "unreachable"}, [
        finding("a", "still", "fail"), finding("a", "error", "error"), finding("a", "ok", "pass"),
        finding("a", "na", "pass"), finding("b", "c", "fail")])
    after = findings_document({"a": "audited", "b": "audited"}, [
        finding("a", "still", "error"), finding("a", "error", "not_applicable", reason="not here"),
        finding("a", "ok", "pass"), finding("a", "na", "not_applicable"), finding("a", "added", "pass"),
        finding("b", "c", "pass")])
    diff = diff_runs(before, after)
    assert (diff.new_failures, diff.fixed) == ((), (Change("a", "error", "not_applicable", "not here", "error"),))
    assert (diff.hosts_added, diff.hosts_removed) == ((HostChange("b", 0, "audited", ""),), ())


def test_scores_of_documents_with_parts_of_the_summary_missing() -> None:
    no_summary = findings_document({}, [])
    no_frameworks = findings_document({}, [], overall={"score": 1})
    frameworks = findings_document({}, [], overall={}, per_framework={
        "zeta": {"score": 0.25}, "cis_debian12": {"score": 0.5}, "alpha": {}, "hipaa": {"score": None}})
    assert diff_runs(no_summary, no_frameworks).score_change == ScoreChange("overall", None, 1.0)
    assert diff_runs(no_summary, no_frameworks).framework_changes == ()
    assert diff_runs(no_frameworks, no_summary).score_change == ScoreChange("overall", 1.0, None)
    both = diff_runs(no_frameworks, frameworks)
    assert both.score_change == ScoreChange("overall", 1.0, None)
    # Known frameworks in their own order, then the others by name.
    assert both.framework_changes == (ScoreChange("hipaa", None, None), ScoreChange("cis_debian12", None, 0.5),
                                      ScoreChange("alpha", None, None), ScoreChange("zeta", None, 0.25))
    assert type(both.score_change.before) is float
    assert framework_order(["zeta", "hipaa", "zeta", "alpha", "cis_debian12", "gbt22239"]) == [
        "hipaa", "gbt22239", "cis_debian12", "alpha", "zeta"]


def test_control_titles_in_either_language_or_none() -> None:
    controls = {
        "both": {"title": {"en": "Audit log", "zh": "审计日志"}},
        "english": {"title": {"en": "Audit log"}},
        "chinese": {"title": {"en": "", "zh": "审计日志"}},
        "untitled": {"severity": "high"},
        "unsafe": {"title": {"en": "bad\nline"}},
    }
    assert [title(controls, name) for name in (*controls, "unknown")] == [
        "Audit log / 审计日志", "Audit log", "审计日志", "", "bad\\x0aline", ""]


def red(text: str) -> str:
    return f"\x1b[31m{text}\x1b[0m"


def green(text: str) -> str:
    return f"\x1b[32m{text}\x1b[0m"


def yellow(text: str) -> str:
    return f"\x1b[33m{text}\x1b[0m"


def test_diff_text_exactly_plain_and_painted() -> None:
    from tests.unit.test_history import AFTER, BEFORE, make_document

    after = make_document(AFTER)
    diff = diff_runs(make_document(BEFORE), after)
    plain = diff_text(diff, after["controls"]).split("\n")
    assert plain == [
        "score:",
        "  overall     40.0% → 33.3% (-6.7 points)",
        "  HIPAA       28.6% → 33.3% (+4.8 points)",
        "  GB/T 22239  37.5% → 25.0% (-12.5 points)",
        "  CIS         33.3% → 25.0% (-8.3 points)",
        "new failures: 4",
        "  db audit_log: error (was pass)",
        "    Audit log enabled / 启用审计日志",
        "    audit_log error on db",
        "  db ntp_sync: fail (not evaluated before)",
        "    Clock synchronised / 时钟同步",
        "    ntp_sync fail on db",
        "  web ntp_sync: fail (was waived)",
        "    Clock synchronised / 时钟同步",
        "    ntp_sync fail on web",
        "  web ssh_root: fail (was pass)",
        "    SSH root login disabled / 禁止 SSH root 登录",
        "    ssh_root fail on web",
        "resolved (fixed, waived or no longer applicable): 2",
        "  web audit_log: waived (was fail)",
        "    Audit log enabled / 启用审计日志",
        "    audit_log waived on web",
        "  web tmp_noexec: pass (was error)",
        "    /tmp mounted noexec / /tmp 以 noexec 挂载",
        "    tmp_noexec pass on web",
        "hosts added: 1",
        "  new: 1 failing",
        "hosts no longer audited: 2",
        "  old: unreachable: connection refused (had 1 failing)",
        "  retired: absent (had 2 failing)",
    ]
    painted = diff_text(diff, after["controls"], Palette(enabled=True)).split("\n")
    assert painted == [
        *plain[:5],
        red("new failures: 4"),
        f"  db audit_log: {yellow('error')} (was {green('pass')})", *plain[7:9],
        f"  db ntp_sync: {red('fail')} (not evaluated before)", *plain[10:12],
        f"  web ntp_sync: {red('fail')} (was waived)", *plain[13:15],
        f"  web ssh_root: {red('fail')} (was {green('pass')})", *plain[16:18],
        green("resolved (fixed, waived or no longer applicable): 2"),
        f"  web audit_log: waived (was {red('fail')})", *plain[20:22],
        f"  web tmp_noexec: {green('pass')} (was {yellow('error')})", *plain[23:25],
        "hosts added: 1",
        f"  new: {red('1 failing')}",
        "hosts no longer audited: 2",
        f"  old: {yellow('unreachable')}: connection refused (had 1 failing)",
        "  retired: absent (had 2 failing)",
    ]


def test_diff_text_of_a_quiet_diff_paints_no_zero_and_escapes_what_the_documents_say() -> None:
    """Counts of zero stay plain; a change without a reason or a title takes one line; host names, controls,
    statuses and reasons from the documents are shown on one line each, their control characters escaped."""
    diff = RunDiff(
        new_failures=(Change("h\x1b", "c\n1", "fail", "", None),),
        fixed=(),
        hosts_added=(HostChange("fresh\t", 0, "audited", ""),),
        hosts_removed=(HostChange("old\r", 0, "unreachable", "no\nroute"),),
        score_change=ScoreChange("overall", None, None),
        framework_changes=(ScoreChange("hipaa", 0.5, None),),
    )
    expected = [
        "score:",
        "  overall     n/a → n/a",
        "  HIPAA       50.0% → n/a",
        "new failures: 1",
        "  h\\x1b c\\x0a1: fail (not evaluated before)",
        "resolved (fixed, waived or no longer applicable): 0",
        "hosts added: 1",
        "  fresh\\x09: 0 failing",
        "hosts no longer audited: 1",
        "  old\\x0d: unreachable: no\\x0aroute (had 0 failing)",
    ]
    assert diff_text(diff, {"c\n1": {}}).split("\n") == expected
    assert diff_text(diff, {}, Palette(enabled=True)).split("\n") == [
        *expected[:3], red(expected[3]), f"  h\\x1b c\\x0a1: {red('fail')} (not evaluated before)", *expected[5:9],
        f"  old\\x0d: {yellow('unreachable')}: no\\x0aroute (had 0 failing)"]


def test_a_long_reason_is_shortened_after_escaping() -> None:
    change = Change("h", "c", "fail", "\n" * REASON_WIDTH, "pass")
    assert change_lines([change], {}, Palette()) == ["  h c: fail (was pass)", "    " + "\\x0a" * 29 + "\\x0…"]
