"""History of audit runs and the diff between runs.

`HistoryContract` holds the behaviour every backend must show; `TestSQLiteHistory` runs it here and
tests/integration/test_history_postgres.py runs it against a real PostgreSQL server.
"""

from __future__ import annotations

import gzip
import json
import multiprocessing
import os
import random
import sqlite3
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from medinfra.audit.results import FINDINGS_FORMAT, Tally
from medinfra.cli import main
from medinfra.history import (
    Change,
    HistoryStore,
    HostChange,
    ScoreChange,
    default_history_location,
    diff_runs,
    diff_text,
    open_history,
)
from medinfra.history.store import SCHEMA_VERSION, parse_location, redact
from medinfra.problems import PrerequisiteError, UserInputError

FRAMEWORKS_OF = {
    "ssh_root": ("hipaa", "gbt22239", "cis_debian12"),
    "audit_log": ("hipaa", "gbt22239"),
    "tmp_noexec": ("cis_debian12",),
    "ntp_sync": ("gbt22239",),
}
CONTROLS = {
    "ssh_root": {"title": {"en": "SSH root login disabled", "zh": "禁止 SSH root 登录"}, "severity": "high"},
    "audit_log": {"title": {"en": "Audit log enabled", "zh": "启用审计日志"}, "severity": "high"},
    "tmp_noexec": {"title": {"en": "/tmp mounted noexec", "zh": "/tmp 以 noexec 挂载"}, "severity": "low"},
    "ntp_sync": {"title": {"en": "Clock synchronised", "zh": "时钟同步"}, "severity": "medium"},
}
# Host name -> {control: status} for an audited host, or the reason it could not be audited.
Hosts = Mapping[str, Mapping[str, str] | str]


def tally(findings: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    return Tally(Counter(f["status"] for f in findings)).as_dict()


def make_document(hosts: Hosts, site: str | None = "lab", started: str = "2026-11-22T07:16:44Z") -> dict[str, Any]:
    """A findings document as `medinfra audit` writes it, with the summary computed from the findings."""
    per_host: dict[str, list[dict[str, Any]]] = {
        host: [
            {"host": host, "control": c, "status": s, "reason": f"{c} {s} on {host}", "evidence": {}}
            for c, s in sorted(results.items())
        ]
        for host, results in hosts.items()
        if not isinstance(results, str)
    }
    findings = [finding for host_findings in per_host.values() for finding in host_findings]
    document: dict[str, Any] = {
        "format": FINDINGS_FORMAT,
        "generator": "medinfra test",
        "transport": "pyinfra",
        "inventory": f"inventories/{site or 'lab'}",
        "run_id": str(uuid.uuid4()),
        "started_at": started,
        "hosts": [
            {"name": name, "status": "unreachable", "reason": results}
            if isinstance(results, str)
            else {"name": name, "status": "audited", "reason": ""}
            for name, results in hosts.items()
        ],
        "controls": CONTROLS,
        "findings": findings,
        "summary": {
            "overall": tally(findings),
            "per_framework": {
                name: tally(f for f in findings if name in FRAMEWORKS_OF[f["control"]])
                for name in ("hipaa", "gbt22239", "cis_debian12")
            },
            "per_host": {host: tally(host_findings) for host, host_findings in per_host.items()},
        },
    }
    if site is not None:
        document["site"] = site
    return document


BEFORE: Hosts = {
    "web": {"ssh_root": "pass", "audit_log": "fail", "tmp_noexec": "error", "ntp_sync": "waived"},
    "db": {"ssh_root": "fail", "audit_log": "pass", "tmp_noexec": "pass"},
    "old": {"ssh_root": "fail"},
    "retired": {"ssh_root": "fail", "audit_log": "fail"},
}
AFTER: Hosts = {
    "web": {"ssh_root": "fail", "audit_log": "waived", "tmp_noexec": "pass", "ntp_sync": "fail"},
    "db": {"ssh_root": "fail", "audit_log": "error", "tmp_noexec": "not_applicable", "ntp_sync": "fail"},
    "new": {"ssh_root": "fail", "audit_log": "pass"},
    "old": "connection refused",
}


def stamp(n: int) -> str:
    return f"2026-11-{n:02d}T07:00:00Z"


def drill_document(kind: str, started: str, finished: str, passed: bool) -> dict[str, Any]:
    result = {"cluster": "his-db"} if kind == "failover" else {"name": "backup-server-lost", "steps": []}
    return {"format": "medinfra-drill/1", "kind": kind, "site": "lab", "drill_id": str(uuid.uuid4()),
            "started": started, "finished": finished, "passed": passed, "result": result}


def raw_sql(location: str, statement: str) -> list[tuple[Any, ...]]:
    """Run SQL on the history database itself, past the store, and commit."""
    if location.startswith(("postgresql://", "postgres://")):
        import psycopg

        with psycopg.connect(location) as server:
            cursor = server.execute(statement)
            return cursor.fetchall() if cursor.description else []
    with closing(sqlite3.connect(location)) as database, database:
        return database.execute(statement).fetchall()


class HistoryContract:
    """Behaviour shared by every backend; a subclass provides the `location` fixture."""

    @pytest.fixture
    def store(self, location: str) -> Iterator[HistoryStore]:
        with open_history(location) as store:
            yield store

    def test_record_then_list_get_and_document_round_trip(self, location: str, store: HistoryStore) -> None:
        document = make_document(AFTER)
        run = store.record(document)
        assert (run.site, run.inventory, run.transport) == ("lab", "inventories/lab", "pyinfra")
        assert run.run_uuid == document["run_id"]
        assert run.started_at == datetime(2026, 11, 22, 7, 16, 44, tzinfo=UTC)
        assert (run.hosts_audited, run.hosts_total) == (3, 4)
        assert run.score == document["summary"]["overall"]["score"]
        assert run.framework_scores == {k: v["score"] for k, v in document["summary"]["per_framework"].items()}
        assert run.counts == {"pass": 2, "fail": 5, "error": 1, "waived": 1, "not_applicable": 1}
        assert store.runs() == [run]
        assert store.get(run.id) == run
        assert store.document(run.id) == document
        # Reopening creates nothing twice and finds the run again.
        with open_history(location) as again:
            assert again.runs() == [run]
        assert raw_sql(location, "SELECT MAX(version) FROM medinfra_schema") == [(SCHEMA_VERSION,)]
        assert raw_sql(location, f"SELECT COUNT(*) FROM medinfra_results WHERE run_id = {run.id}") == [(10,)]

    def test_same_run_recorded_twice_is_kept_once(self, store: HistoryStore) -> None:
        document = make_document(AFTER)
        assert store.record(document) == store.record(document)
        assert len(store.runs()) == 1

    def test_site_falls_back_to_inventory_and_run_id_is_optional(self, store: HistoryStore) -> None:
        documents = [make_document(BEFORE, site=None), make_document(BEFORE, site=None, started=stamp(23))]
        for document in documents:
            del document["run_id"]
        runs = [store.record(document) for document in documents]
        assert [(r.site, r.run_uuid) for r in runs] == [("inventories/lab", None)] * 2
        assert store.previous(runs[1].id) == runs[0]

    def test_previous_and_trend_stay_within_a_site(self, store: HistoryStore) -> None:
        lab1 = store.record(make_document(BEFORE, "lab", stamp(1)))
        ter1 = store.record(make_document(BEFORE, "tertiary", stamp(2)))
        lab2 = store.record(make_document(AFTER, "lab", stamp(3)))
        ter2 = store.record(make_document(AFTER, "tertiary", stamp(4)))
        lab3 = store.record(make_document(AFTER, "lab", stamp(5)))
        # Recorded last but audited first: order follows started_at, not recording order.
        lab0 = store.record(make_document(BEFORE, "lab", "2026-10-31T07:00:00Z"))
        assert store.previous(lab3.id) == lab2
        assert store.previous(lab1.id) == lab0
        assert store.previous(lab0.id) is None
        assert store.previous(ter2.id) == ter1
        assert store.earlier("lab", lab2.started_at, lab2.id, 19) == [lab0, lab1]
        assert store.earlier("lab", lab3.started_at, lab3.id, 1) == [lab2]
        assert store.earlier("tertiary", ter2.started_at, ter2.id, 19) == [ter1]
        # A run not recorded yet comes after every run of its site that started no later.
        assert store.earlier("lab", lab3.started_at, None, 19) == [lab0, lab1, lab2, lab3]
        assert store.runs(site="tertiary") == [ter2, ter1]
        assert store.runs(limit=2) == [lab3, ter2]

    def test_runs_started_in_the_same_second_are_ordered_by_id(self, store: HistoryStore) -> None:
        first, second = (store.record(make_document(BEFORE)) for _ in range(2))
        assert store.previous(second.id) == first
        assert store.earlier("lab", second.started_at, second.id, 19) == [first]

    def test_unknown_run_is_a_located_user_error(self, location: str, store: HistoryStore) -> None:
        for lookup in (store.get, store.document, store.previous):
            with pytest.raises(UserInputError) as caught:
                lookup(999)
            assert str(caught.value) == f"{redact(location)}: (top level): no run 999"

    def test_not_a_findings_document_is_refused(self, store: HistoryStore) -> None:
        with pytest.raises(UserInputError, match="format: expected 'medinfra-findings/1'"):
            store.record({"format": "something-else"})
        broken = make_document(BEFORE)
        del broken["summary"]
        with pytest.raises(UserInputError, match="missing or malformed field: 'summary'"):
            store.record(broken)
        assert store.runs() == []

    def test_failed_record_leaves_nothing_behind(
        self, location: str, store: HistoryStore, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # A NULL host violates NOT NULL after the run row is in: the whole run must roll back.
        monkeypatch.setattr("medinfra.history.store.result_rows", lambda _document: [(None, "ssh_root", "fail")])
        with pytest.raises(UserInputError, match="recording run: "):
            store.record(make_document(BEFORE))
        assert store.runs() == []
        assert raw_sql(location, "SELECT COUNT(*) FROM medinfra_results") == [(0,)]

    def test_history_from_a_newer_medinfra_is_refused(self, location: str) -> None:
        open_history(location).close()
        raw_sql(location, "UPDATE medinfra_schema SET version = 99")
        with pytest.raises(PrerequisiteError, match="history schema version 99, this medinfra reads version 2"):
            open_history(location)

    def test_records_60000_results(self, location: str, store: HistoryStore) -> None:
        document = make_document({f"h{i:05d}": dict.fromkeys(FRAMEWORKS_OF, "pass") for i in range(15_000)})
        clock = time.perf_counter()
        run = store.record(document)
        elapsed = time.perf_counter() - clock
        backend = "postgresql" if "://" in location else "sqlite"
        print(f"recorded {len(document['findings'])} results in {elapsed:.2f} s ({backend})")
        assert raw_sql(location, f"SELECT COUNT(*) FROM medinfra_results WHERE run_id = {run.id}") == [(60_000,)]

    def test_cli_history_lists_runs_newest_first(self, location: str, capsys: pytest.CaptureFixture[str]) -> None:
        with open_history(location) as store:
            older = store.record(make_document(BEFORE, "lab", stamp(1)))
            newer = store.record(make_document(AFTER, "lab", stamp(2)))
        assert main(["history", "--history", location]) == 0
        lines = capsys.readouterr().out.splitlines()
        assert lines[0].split() == ["id", "started", "(UTC)", "site", "transport", "hosts", "overall", "HIPAA", "GB/T",
                                    "22239", "CIS"]
        assert lines[1].split() == [str(newer.id), "2026-11-02", "07:00:00", "lab", "pyinfra", "3/4", "33.3%", "33.3%",
                                    "25.0%", "25.0%"]
        assert lines[2].split()[:6] == [str(older.id), "2026-11-01", "07:00:00", "lab", "pyinfra", "4/4"]
        assert main(["history", "--history", location, "--site", "elsewhere"]) == 0
        assert capsys.readouterr().out == f"no runs recorded in {redact(location)} for site elsewhere\n"

    def test_cli_diff(self, location: str, capsys: pytest.CaptureFixture[str]) -> None:
        assert main(["diff", "--history", location]) == 0
        assert capsys.readouterr().out == f"no runs recorded in {redact(location)}\n"
        with open_history(location) as store:
            first = store.record(make_document(BEFORE, "lab", stamp(1)))
            assert main(["diff", "--history", location]) == 0
            assert "is the first recorded run of its site: nothing to compare" in capsys.readouterr().out
            second = store.record(make_document(AFTER, "lab", stamp(2)))
            store.record(make_document(BEFORE, "tertiary", stamp(3)))
        for args in ([str(second.id)], [str(first.id), str(second.id)]):
            assert main(["diff", "--history", location, *args]) == 0
            out = capsys.readouterr().out
            assert out.startswith(f"run {first.id} of lab at 2026-11-01 07:00:00 UTC → run {second.id} of lab")
            assert "new failures: 4\n" in out
        # No ids: the latest run (tertiary's first) has nothing before it in its own site.
        assert main(["diff", "--history", location]) == 0
        assert "run 3 of tertiary" in capsys.readouterr().out
        assert main(["diff", "--history", location, str(first.id), "99"]) == 2
        captured = capsys.readouterr()
        assert captured.err == f"{redact(location)}: (top level): no run 99\n"
        assert captured.out == ""


    def test_read_only_store_reads_and_refuses_to_write(self, location: str) -> None:
        with open_history(location) as store:
            run = store.record(make_document(BEFORE))
        with open_history(location, read_only=True) as reader:
            assert reader.runs() == [run] and reader.document(run.id)["run_id"] == run.run_uuid
            with pytest.raises(UserInputError, match=r"recording run: .*read-?only"):
                reader.record(make_document(AFTER))
        with open_history(location, read_only=True) as reader:
            assert reader.runs() == [run]

    def test_drills_are_recorded_once_listed_and_read_back(self, location: str, store: HistoryStore,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
        failover = drill_document("failover", "2026-11-01T07:00:00+00:00", "2026-11-01T07:00:42.5Z", True)
        plan = drill_document("plan", "2026-11-02T08:00:00Z", "2026-11-02T08:03:00Z", False)
        first = store.record_drill(failover, "/evidence/a/drill.json")
        assert store.record_drill(failover, "/elsewhere") == first
        second = store.record_drill(plan, "/evidence/b/drill.json")
        assert (first.kind, first.name, first.passed, first.seconds) == ("failover", "his-db", True, 42)
        assert (second.kind, second.name, second.passed) == ("plan", "backup-server-lost", False)
        assert store.drills() == [second, first] and store.drills("elsewhere") == []
        assert store.drill_document(first.id) == failover
        assert main(["history", "--drills", "--history", location]) == 0
        lines = capsys.readouterr().out.splitlines()
        assert lines[0].split() == ["id", "started", "(UTC)", "site", "kind", "name", "result", "seconds", "evidence"]
        assert lines[1].split() == [str(second.id), "2026-11-02", "08:00:00", "lab", "plan", "backup-server-lost",
                                    "fail", "180", "/evidence/b/drill.json"]
        assert main(["history", "--drills", "--history", location, "--format", "json"]) == 0
        listed = json.loads(capsys.readouterr().out)["drills"]
        assert [(d["id"], d["started_at"], d["seconds"]) for d in listed] == [
            (second.id, "2026-11-02T08:00:00Z", 180.0), (first.id, "2026-11-01T07:00:00Z", 42.0)]

    def test_history_of_schema_1_migrates_when_written_and_reads_without_drills(
        self, location: str, capsys: pytest.CaptureFixture[str]
    ) -> None:
        with open_history(location) as store:
            run = store.record(make_document(BEFORE))
        # What medinfra before drill records left behind: no drills table, version 1.
        raw_sql(location, "DROP TABLE medinfra_drills")
        raw_sql(location, "DELETE FROM medinfra_schema")
        raw_sql(location, "INSERT INTO medinfra_schema (version) VALUES (1)")
        with open_history(location, read_only=True) as reader:
            assert reader.drills() == [] and reader.runs() == [run]
        assert main(["history", "--drills", "--history", location]) == 0
        assert capsys.readouterr().out == f"no drills recorded in {redact(location)}\n"
        with open_history(location) as store:
            assert store.runs() == [run]
            drill = store.record_drill(drill_document("plan", stamp(1), stamp(2), True), "/e/drill.json")
        assert raw_sql(location, "SELECT MAX(version) FROM medinfra_schema") == [(2,)]
        with open_history(location, read_only=True) as reader:
            assert reader.drills() == [drill]

    def test_read_only_store_of_a_history_never_written_is_empty(self, location: str) -> None:
        with open_history(location, read_only=True) as reader:
            assert reader.runs() == [] and reader.find(str(uuid.uuid4())) is None
            with pytest.raises(UserInputError, match="no run 1"):
                reader.get(1)
        with open_history(location) as store:
            assert store.runs() == []


class TestSQLiteHistory(HistoryContract):
    @pytest.fixture
    def location(self, tmp_path: Path) -> str:
        return str(tmp_path / "private" / "history.sqlite")


def test_sqlite_history_is_private(tmp_path: Path) -> None:
    path = tmp_path / "new" / "history.sqlite"
    open_history(str(path)).close()
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.parent.stat().st_mode & 0o777 == 0o700


def test_corrupt_sqlite_file_exits_2_without_traceback(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "history.sqlite"
    path.write_bytes(b"not a database, just some bytes " * 100)
    assert main(["history", "--history", str(path)]) == 2
    assert capsys.readouterr().err == f"{path}: (top level): opening history: file is not a database\n"


def test_unusable_sqlite_location_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "file").write_text("", encoding="utf-8")
    location = tmp_path / "file" / "history.sqlite"
    assert main(["diff", "--history", str(location)]) == 2
    assert capsys.readouterr().err == f"{location}: (top level): cannot open history: Not a directory: {location}\n"
    deeper = tmp_path / "file" / "sub" / "history.sqlite"
    assert main(["history", "--history", str(deeper)]) == 2
    assert capsys.readouterr().err == f"{deeper}: (top level): cannot open history: Not a directory: {deeper}\n"
    # Recording creates what is missing, and says which part is in the way.
    with pytest.raises(UserInputError) as caught:
        open_history(str(location))
    assert str(caught.value) == f"{location}: (top level): cannot open history: {location.parent} is not a directory"
    with pytest.raises(UserInputError) as caught:
        open_history(str(deeper))
    assert str(caught.value) == f"{deeper}: (top level): cannot open history: Not a directory: {deeper.parent}"


def test_default_location(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("MEDINFRA_HISTORY", raising=False)
    monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    assert default_history_location() == f"{tmp_path}/.local/share/medinfra/history.sqlite"
    monkeypatch.setenv("XDG_DATA_HOME", "relative/is/ignored")
    assert default_history_location() == f"{tmp_path}/.local/share/medinfra/history.sqlite"
    monkeypatch.setenv("XDG_DATA_HOME", "/srv/data")
    assert default_history_location() == "/srv/data/medinfra/history.sqlite"
    monkeypatch.setenv("MEDINFRA_HISTORY", "postgresql://audit@db/history")
    assert default_history_location() == "postgresql://audit@db/history"


@pytest.mark.parametrize(
    ("location", "shown"),
    [
        ("postgresql://audit:s3cret@db:5432/history", "postgresql://audit:***@db:5432/history"),
        ("postgres://audit@db/history?password=s3cret&sslmode=require",
         "postgres://audit@db/history?password=***&sslmode=require"),
        ("postgresql://audit@db/history", "postgresql://audit@db/history"),
        ("/var/lib/medinfra/history.sqlite", "/var/lib/medinfra/history.sqlite"),
    ],
)
def test_redact_hides_passwords(location: str, shown: str) -> None:
    assert redact(location) == shown


def test_diff_between_runs() -> None:
    before, after = make_document(BEFORE), make_document(AFTER)
    diff = diff_runs(before, after)
    assert diff.new_failures == (
        Change("db", "audit_log", "error", "audit_log error on db", "pass"),  # error counts as failing
        Change("db", "ntp_sync", "fail", "ntp_sync fail on db", None),
        Change("web", "ntp_sync", "fail", "ntp_sync fail on web", "waived"),  # waived did not count as failing
        Change("web", "ssh_root", "fail", "ssh_root fail on web", "pass"),
    )
    assert diff.fixed == (
        Change("web", "audit_log", "waived", "audit_log waived on web", "fail"),
        Change("web", "tmp_noexec", "pass", "tmp_noexec pass on web", "error"),
    )
    assert diff.hosts_added == (HostChange("new", 1, "audited", ""),)
    assert diff.hosts_removed == (
        HostChange("old", 1, "unreachable", "connection refused"),
        HostChange("retired", 2, "absent", ""),
    )
    scores = before["summary"]["overall"]["score"], after["summary"]["overall"]["score"]
    assert diff.score_change == ScoreChange("overall", *scores)
    assert [c.scope for c in diff.framework_changes] == ["hipaa", "gbt22239", "cis_debian12"]
    assert diff.framework_changes[2] == ScoreChange("cis_debian12", 0.3333, 0.25)


def test_diff_is_deterministic() -> None:
    before, after = make_document(BEFORE), make_document(AFTER)
    shuffled = make_document(AFTER)
    random.Random(4).shuffle(shuffled["findings"])
    shuffled["hosts"].reverse()
    assert diff_runs(before, after) == diff_runs(before, shuffled)


def test_score_change_is_none_safe() -> None:
    assert ScoreChange("overall", None, 0.5).delta is None
    assert ScoreChange("overall", 0.5, None).delta is None
    assert ScoreChange("overall", 0.5, 0.75).delta == 0.25
    empty = make_document({"web": {}})
    assert diff_runs(empty, make_document(AFTER)).score_change.delta is None


def test_diff_text_names_controls_in_both_languages() -> None:
    after = make_document(AFTER)
    text = diff_text(diff_runs(make_document(BEFORE), after), after["controls"])
    assert "score:\n  overall     40.0% → 33.3% (-6.7 points)\n" in text
    assert "  CIS         33.3% → 25.0% (-8.3 points)\n" in text
    assert (
        "new failures: 4\n"
        "  db audit_log: error (was pass)\n"
        "    Audit log enabled / 启用审计日志\n"
        "    audit_log error on db\n"
        "  db ntp_sync: fail (not evaluated before)\n"
    ) in text
    assert "resolved (fixed, waived or no longer applicable): 2\n  web audit_log: waived (was fail)\n" in text
    assert "hosts added: 1\n  new: 1 failing\n" in text
    assert text.endswith(
        "hosts no longer audited: 2\n"
        "  old: unreachable: connection refused (had 1 failing)\n"
        "  retired: absent (had 2 failing)"
    )


def record_when_all_are_ready(location: str, start: Any, results: Any, index: int) -> None:
    start.wait()
    try:
        with open_history(location) as store:
            results.put(("recorded", store.record(make_document(BEFORE, started=stamp(index % 28 + 1))).id))
    except Exception as exc:  # reported to the parent, which shows what was lost
        results.put(("lost", str(exc)))


def test_24_concurrent_writers_all_record_their_run(tmp_path: Path) -> None:
    """24 audits finishing at once while a large run's recording holds the write lock for longer than sqlite3's
    default 5 s wait. Before, writers gave up with `database is locked` (the issue saw 7 of 24 runs lost): each one
    threw away a finished audit."""
    location = str(tmp_path / "history.sqlite")
    open_history(location).close()
    context = multiprocessing.get_context("fork")
    start, results = context.Barrier(25), context.Queue()
    writers = [context.Process(target=record_when_all_are_ready, args=(location, start, results, i)) for i in range(24)]
    for writer in writers:  # forked before this process opens the database: SQLite's lock state is per process
        writer.start()
    with closing(sqlite3.connect(location, isolation_level=None)) as long_recording:
        long_recording.execute("BEGIN IMMEDIATE")
        start.wait()
        time.sleep(5.5)
        long_recording.execute("COMMIT")
    outcomes = [results.get(timeout=120) for _ in writers]
    for writer in writers:
        writer.join(timeout=30)
    assert [outcome for outcome in outcomes if outcome[0] == "lost"] == []
    with open_history(location, read_only=True) as store:
        recorded = sorted(run.id for run in store.runs())
    assert recorded == sorted(outcome[1] for outcome in outcomes) == list(range(1, 25))


def test_history_and_diff_create_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    location = tmp_path / "new" / "history.sqlite"
    assert main(["history", "--history", str(location)]) == 0
    assert main(["diff", "--history", str(location)]) == 0
    assert capsys.readouterr().out == f"no runs recorded in {location}\n" * 2
    assert list(tmp_path.iterdir()) == []


def test_history_and_diff_never_write_to_the_database(tmp_path: Path) -> None:
    location = tmp_path / "history.sqlite"
    with open_history(str(location)) as store:
        store.record(make_document(BEFORE, started=stamp(1)))
        store.record(make_document(AFTER, started=stamp(2)))
    before = location.read_bytes(), location.stat().st_mtime_ns
    assert main(["history", "--history", str(location)]) == 0
    assert main(["diff", "--history", str(location)]) == 0
    assert (location.read_bytes(), location.stat().st_mtime_ns) == before
    assert sorted(path.name for path in tmp_path.iterdir()) == ["history.sqlite"]


@pytest.mark.parametrize(
    ("location", "postgres", "shown"),
    [
        ("POSTGRESQL://audit:s3cret@db/history", True, "postgresql://audit:***@db/history"),
        ("Postgres://audit@db/history?Password=s3cret", True, "postgres://audit@db/history?Password=***"),
        ("postgresql://audit:s3/cr@et@db/history", True, "postgresql://audit:***@db/history"),
        ("postgresql://audit@db/history?pass%77ord=s3cret&x=1", True, "postgresql://audit@db/history?pass%77ord=***&x=1"),
        ("host=db user=audit password=s3cret dbname=history", True, "host=db user=audit password=*** dbname=history"),
        ("host=db  password = 's3 cret\\' x' port=5432", True, "host=db password=*** port=5432"),
        ("PASSWORD=s3cret host=db", True, "PASSWORD=*** host=db"),
        ("host=db password='s3cret", True, "host=db password=***"),
        ("/var/lib/medinfra/history.sqlite", False, "/var/lib/medinfra/history.sqlite"),
        ("relative/history.sqlite", False, "relative/history.sqlite"),
        ("/srv/a=b/history.sqlite", False, "/srv/a=b/history.sqlite"),
    ],
)
def test_locations_are_parsed_and_shown_without_passwords(location: str, postgres: bool, shown: str) -> None:
    parsed = parse_location(location)
    assert (parsed.postgres, parsed.shown) == (postgres, shown)
    assert redact(location) == shown
    if postgres:
        assert parsed.target.startswith(("postgresql://", "host=", "PASSWORD="))
        assert all("s3" in secret for secret in parsed.secrets) and parsed.secrets


@pytest.mark.parametrize(
    ("location", "shown", "message"),
    [
        ("mysql://audit:s3cret@db/history", "mysql://audit:***@db/history", "unsupported scheme 'mysql'"),
        ("sqlite:///var/lib/history.sqlite", "sqlite:///var/lib/history.sqlite", "unsupported scheme 'sqlite'"),
        ("host=db password=s3cret 'oops", "host=db password=***", "not a valid key=value connection string"),
        ("", "''", "is empty"),
        ("   ", "'   '", "is empty"),
        ("/tmp/h\0password=s3cret", "/tmp/h\\x00password=***", "contains a NUL character"),

        ("~no-such-user-here/h.sqlite", "~no-such-user-here/h.sqlite", "names the home directory of an unknown user"),
    ],
)
def test_unusable_locations_are_refused_without_their_password(location: str, shown: str, message: str) -> None:
    with pytest.raises(UserInputError) as caught:
        parse_location(location)
    assert str(caught.value).startswith(f"{shown}: (top level): {message}")
    assert "s3cret" not in str(caught.value) and redact(location) == shown


@pytest.mark.parametrize(
    "location",
    ["host=127.0.0.1 port=1 password=s3cret connect_timeout=3", "POSTGRESQL://medinfra:s3cret@127.0.0.1:1/history"],
)
def test_a_connection_string_never_becomes_a_sqlite_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], location: str
) -> None:
    """Before: a SQLite file named with the password was created in the working directory and printed."""
    monkeypatch.chdir(tmp_path)
    for command in ("history", "diff"):
        assert main([command, "--history", location]) == 2
        captured = capsys.readouterr()
        assert "cannot open history" in captured.err and "s3cret" not in captured.out + captured.err
    assert list(tmp_path.iterdir()) == []


def stored(location: Path, run_id: int, column: str, value: object) -> None:
    with closing(sqlite3.connect(location)) as database, database:
        database.execute(f"UPDATE medinfra_runs SET {column} = ? WHERE id = ?", (value, run_id))


@pytest.mark.parametrize(
    ("column", "value", "message"),
    [
        ("document", b"\x00\x01\x02", "runs[1].document: damaged: Error -3 while decompressing data"),
        ("document", gzip.compress(b"{not json"), "runs[1].document: damaged: Expecting property name"),
        ("document", gzip.compress(b"\xff\xfe"), "runs[1].document: damaged: 'utf-8' codec can't decode"),
        ("document", gzip.compress(b"[" * 100_000), "runs[1].document: damaged: nested too deeply"),
        ("document", gzip.compress(b"{}")[:-4], "runs[1].document: damaged: the compressed data is cut short"),
        ("document", gzip.compress(b"[]"), "runs[1].document: is not a JSON object"),
        ("document", gzip.compress(b'{"hosts": [], "findings": [{"host": 1}]}'),
         "runs[1].document.findings[0]: needs text host, control and status (and reason)"),
        ("document", gzip.compress(b'{"hosts": {}, "findings": []}'),
         "runs[1].document.hosts: is missing or not a list"),
        ("document", gzip.compress(json.dumps({"hosts": [], "findings": [], "summary": {"overall": {"score": "x"}}})
                                   .encode()), "runs[1].document.summary.overall: needs a numeric score (or null)"),
        ("document", "text, not bytes", "runs[1].document: damaged:"),
        ("framework_scores", "not json", "runs[1]: damaged row: Expecting value"),
        ("counts", "[]", "runs[1]: damaged row: framework scores and counts must be JSON objects"),
        ("started_at", "yesterday", "runs[1]: damaged row: time data 'yesterday' does not match format"),
    ],
)
def test_a_damaged_stored_run_is_a_located_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], column: str, value: object, message: str
) -> None:
    location = tmp_path / "history.sqlite"
    with open_history(str(location)) as store:
        first = store.record(make_document(BEFORE, started=stamp(1)))
        store.record(make_document(AFTER, started=stamp(2)))
    stored(location, first.id, column, value)
    assert main(["diff", "--history", str(location)]) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith(f"{location}: {message}") and captured.err.count("\n") == 1
    assert "Traceback" not in captured.err


def test_a_stored_run_that_inflates_past_the_cap_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    location = tmp_path / "history.sqlite"
    with open_history(str(location)) as store:
        store.record(make_document(BEFORE, started=stamp(1)))
        store.record(make_document(AFTER, started=stamp(2)))
    monkeypatch.setattr("medinfra.history.store.FINDINGS_MAX_BYTES", 1000)
    assert main(["diff", "--history", str(location)]) == 2
    assert "runs[1].document: damaged: inflates to more than 0 MB" in capsys.readouterr().err


def test_report_reads_the_history_without_creating_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from medinfra.report.publish import publish
    from tests.unit.test_report import two_host_run

    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("MEDINFRA_HISTORY", raising=False)
    monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    publish(two_host_run(), tmp_path / "reports", None, None)
    assert main(["report", str(tmp_path / "reports")]) == 0
    assert not (tmp_path / "home").exists()
    assert os.listdir(tmp_path) == ["reports"]


def test_texts_a_column_cannot_hold_are_stored_cleaned(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A host or site named with a lone surrogate (a YAML "\\ud800") or an escape sequence: before, the driver's
    UnicodeEncodeError escaped as a traceback; the columns now hold the cleaned text, the document the original."""
    location = str(tmp_path / "history.sqlite")
    document = make_document({"db\ud800\x1b[2J": {"ssh_root": "fail"}}, site="lab\ud800")
    with open_history(location) as store:
        run = store.record(document)
        assert run.site == "lab\\ud800" and store.document(run.id) == document
        assert store.find(document["run_id"]) == run
        second = store.record(make_document({"db\ud800\x1b[2J": {"ssh_root": "pass"}}, "lab\ud800", stamp(30)))
        assert store.previous(second.id) == run
    assert raw_sql(location, "SELECT host FROM medinfra_results") == [("db\\ud800\\x1b[2J",)] * 2
    assert main(["history", "--history", location]) == 0
    assert main(["diff", "--history", location]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "lab\\ud800" in out and "db\\ud800\\x1b[2J ssh_root: pass (was fail)" in out
