"""Every file medinfra writes, where an attacker prepared the place: planted symlinks and hard links, an evidence/
that is a symlink, hosts named to escape the output directory, a bad -o found only after the hosts were contacted.
"""

from __future__ import annotations

import os
import sqlite3
import stat
import sys
import types
from collections.abc import Callable, Iterator, Sequence
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from medinfra.audit.results import AuditRun, HostResult, judge
from medinfra.audit.targets import Target
from medinfra.cli import main
from medinfra.problems import UserInputError
from medinfra.report.publish import EVIDENCE_DIR, evidence_name, publish
from medinfra.safe_output import NAME_MAX, OutputDirectory, file_name, is_single_name
from tests.unit.test_audit import CATALOG, NOW, evidence
from tests.unit.test_report import two_host_run

VICTIM_TEXT = "ssh-ed25519 AAAA... admin@hospital\n"


@pytest.fixture
def victim(tmp_path: Path) -> Path:
    """A file outside the output directory that an attacker wants medinfra to overwrite (root's authorized_keys)."""
    path = tmp_path / "victim" / "authorized_keys"
    path.parent.mkdir()
    path.write_text(VICTIM_TEXT)
    path.chmod(0o600)
    return path


def untouched(path: Path) -> bool:
    return path.read_text() == VICTIM_TEXT and stat.S_IMODE(path.stat().st_mode) == 0o600


def rerender(tmp_path: Path, out: Path) -> None:
    """`medinfra report` of a past run into `out` (which, unlike an audit's, clears nothing first)."""
    sent = tmp_path / "sent"
    publish(two_host_run(), sent, None, None)
    assert main(["report", str(sent), "-o", str(out), "--no-history"]) == 0


def test_a_planted_symlink_is_replaced_never_written_through_or_chmodded(tmp_path: Path, victim: Path) -> None:
    out = tmp_path / "reports"
    out.mkdir()
    (out / "findings.csv").symlink_to(victim)
    (out / "junit.xml").symlink_to(tmp_path / "victim" / "created-through-a-dangling-link")
    rerender(tmp_path, out)
    assert untouched(victim)
    assert not (tmp_path / "victim" / "created-through-a-dangling-link").exists()
    for name in ("findings.csv", "junit.xml"):
        assert not (out / name).is_symlink() and stat.S_IMODE((out / name).stat().st_mode) == 0o640


def test_a_planted_hard_link_is_replaced_never_written_into(tmp_path: Path, victim: Path) -> None:
    out = tmp_path / "reports"
    out.mkdir()
    os.link(victim, out / "report.en.html")
    rerender(tmp_path, out)
    assert untouched(victim)
    assert (out / "report.en.html").stat().st_ino != victim.stat().st_ino


def test_report_command_on_a_sent_directory_does_not_write_through_its_symlinks(
    tmp_path: Path, victim: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The issue's attack: a results directory someone sent, its findings.csv a link to authorized_keys."""
    sent = tmp_path / "sent"
    publish(two_host_run(), sent, None, None)
    for name in ("findings.csv", "assessment-results.oscal.json", "report.zh.html"):
        (sent / name).unlink()
        (sent / name).symlink_to(victim)
    assert main(["report", str(sent), "--no-history"]) == 0
    assert untouched(victim)
    assert not (sent / "findings.csv").is_symlink()
    assert "Traceback" not in capsys.readouterr().err


def test_an_evidence_symlink_is_refused_and_what_it_points_to_is_kept(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "keep.json").write_text("{}")
    out = tmp_path / "reports"
    out.mkdir()
    (out / EVIDENCE_DIR).symlink_to(elsewhere)
    with pytest.raises(UserInputError, match="evidence: \\(top level\\): is a symlink"):
        publish(two_host_run(), out, None, None)
    assert (elsewhere / "keep.json").read_text() == "{}"
    assert sorted(p.name for p in elsewhere.iterdir()) == ["keep.json"]


def test_the_output_directory_itself_must_not_be_a_symlink(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "link").symlink_to(real)
    with pytest.raises(UserInputError, match="link: \\(top level\\): is a symlink"):
        publish(two_host_run(), tmp_path / "link", None, None)
    assert list(real.iterdir()) == []
    (tmp_path / "file").write_text("x")
    with pytest.raises(UserInputError, match="file: \\(top level\\): is not a directory"):
        publish(two_host_run(), tmp_path / "file", None, None)


HOSTILE_HOST_NAMES = ["../../x", "..", ".", ".hidden", "a/b", "nul\0byte", "x" * 300, "中文-host", "\ud800", "-rf"]


@pytest.mark.parametrize("name", HOSTILE_HOST_NAMES, ids=range(len(HOSTILE_HOST_NAMES)))
def test_evidence_of_any_host_name_stays_in_evidence(tmp_path: Path, name: str) -> None:
    out = tmp_path / "a" / "b" / "reports"
    results = [HostResult(name, "audited", "", evidence(), 0.1), HostResult("his-01", "audited", "", evidence(), 0.1)]
    views: dict[str, dict[str, Any]] = {host.host: {"groups": [], "services": []} for host in results}
    run = AuditRun("pyinfra", "inv", NOW, results, judge(results, views, CATALOG, (), NOW), CATALOG, views=views)
    published = publish(run, out, None, None)
    written = [path for path in published.files if path.parent.name == EVIDENCE_DIR]
    assert len(written) == 2 and all(path.parent == out / EVIDENCE_DIR for path in written)
    assert sorted(os.listdir(out / EVIDENCE_DIR)) == sorted([evidence_name(name), "his-01.json"])
    assert sorted(os.listdir(tmp_path)) == ["a"] and sorted(os.listdir(tmp_path / "a" / "b")) == ["reports"]


def test_file_names_are_single_components_readable_and_distinct() -> None:
    names = {text: file_name(text, ".json") for text in [*HOSTILE_HOST_NAMES, "his-db", "10.0.0.5", "a~b", "a%2Fb"]}
    assert all(is_single_name(name) and not name.startswith(".") for name in names.values())
    assert len(set(names.values())) == len(names)
    assert names["his-db"] == "his-db.json" and names["10.0.0.5"] == "10.0.0.5.json"
    assert names["../../x"] == "%2E.%2F..%2Fx.json"
    assert len(names["x" * 300].encode()) == NAME_MAX and "~" in names["x" * 300]
    assert file_name("x" * 300 + "a") != file_name("x" * 300 + "b")


@pytest.mark.parametrize("name", ["", ".", "..", "a/b", "/etc/passwd", "nul\0", "x" * 256, "\ud800"])
def test_output_directory_refuses_names_that_are_not_one_component(tmp_path: Path, name: str) -> None:
    with OutputDirectory.open(tmp_path / "out") as out, pytest.raises(UserInputError, match="not a single file name"):
        out.write_text(name, "x")
    assert os.listdir(tmp_path / "out") == []


def test_written_files_have_their_mode_from_the_start_and_leave_no_temporary(tmp_path: Path) -> None:
    old = os.umask(0o077)
    try:
        with OutputDirectory.open(tmp_path / "new" / "out") as out:
            out.write_text("a.txt", "a")
            out.write_bytes("k.key", b"k", 0o600, exclusive=True)
            with pytest.raises(UserInputError, match="already exists; refusing to overwrite it"):
                out.write_bytes("k.key", b"other", 0o600, exclusive=True)
            with pytest.raises(RuntimeError), out.open_text("broken.txt") as handle:
                handle.write("half")
                raise RuntimeError("renderer failed")
    finally:
        os.umask(old)
    directory = tmp_path / "new" / "out"
    assert sorted(os.listdir(directory)) == ["a.txt", "k.key"]
    assert stat.S_IMODE((directory / "a.txt").stat().st_mode) == 0o640
    assert (directory / "k.key").read_bytes() == b"k" and stat.S_IMODE((directory / "k.key").stat().st_mode) == 0o600
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700  # 0750 as far as the umask allows


def test_clearing_an_earlier_run_removes_links_not_what_they_point_to(tmp_path: Path, victim: Path) -> None:
    out = tmp_path / "reports"
    publish(two_host_run(), out, None, None)
    (out / "findings.json").unlink()
    (out / "findings.json").symlink_to(victim)
    (out / EVIDENCE_DIR / "stale.json").symlink_to(victim)
    (out / ".medinfra-0123456789abcdef.tmp").write_text("left by a killed run")
    publish(two_host_run(), out, None, None)
    assert untouched(victim)
    assert not (out / "findings.json").is_symlink() and not (out / EVIDENCE_DIR / "stale.json").exists()
    assert not any(name.startswith(".medinfra-") for name in os.listdir(out))


def test_keys_are_never_written_through_a_planted_link(tmp_path: Path, victim: Path) -> None:
    keys = tmp_path / "keys"
    keys.mkdir()
    (keys / "audit.key").symlink_to(tmp_path / "victim" / "new-file")
    assert main(["keys", "generate", "--out", str(keys / "audit")]) == 2
    assert not (tmp_path / "victim" / "new-file").exists()
    (tmp_path / "link").symlink_to(keys)
    assert main(["keys", "generate", "--out", str(tmp_path / "link" / "other")]) == 2
    assert not (keys / "other.key").exists()


# `medinfra audit` in this process, with a stand-in transport: what happens before and after hosts are contacted.


@pytest.fixture
def stand_in_transport(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Two hosts that always answer with evidence; yields the names of the hosts contacted, in order."""
    contacted: list[str] = []

    def collect_evidence(targets: Sequence[Target], **kwargs: Any) -> list[HostResult]:
        contacted.extend(target.name for target in targets)
        return [HostResult(target.name, "audited", "", evidence(), 0.1) for target in targets]

    transport = types.ModuleType("medinfra.audit.pyinfra_transport")
    transport.collect_evidence = collect_evidence  # type: ignore[attr-defined]
    transport.quiet_hub = lambda: closing(types.SimpleNamespace(close=lambda: None))  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "medinfra.audit.pyinfra_transport", transport)
    targets = [Target(name, {"site": "test", "zone": "his", "groups": [], "services": []}, None) for name in ("a", "b")]
    monkeypatch.setattr("medinfra.audit.targets.load_targets", lambda *args: targets)
    yield contacted


def audit(out: Path, *args: str) -> int:
    return main(["audit", "-i", "inventory", "-o", str(out), "-q", *args])


@pytest.mark.parametrize(
    ("prepare", "message"),
    [
        (lambda out: out.symlink_to(out.parent / "real", target_is_directory=True), "is a symlink"),
        (lambda out: out.write_text("a file"), "is not a directory"),
        (lambda out: (out.mkdir(), (out / EVIDENCE_DIR).symlink_to(out.parent / "real")), "evidence: (top level)"),
        (lambda out: (out.parent / "file").write_text("") or out.parent.joinpath("file", "sub"), "Not a directory"),
    ],
    ids=["out-symlink", "out-file", "evidence-symlink", "under-a-file"],
)
def test_a_bad_output_directory_fails_before_any_host_is_contacted(
    tmp_path: Path, stand_in_transport: list[str], capsys: pytest.CaptureFixture[str],
    prepare: Callable[[Path], Any], message: str,
) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "keep.json").write_text("{}")
    out = tmp_path / "out"
    made = prepare(out)
    out = made if isinstance(made, Path) else out
    assert audit(out, "--no-history") == 2
    assert message in capsys.readouterr().err
    assert stand_in_transport == []
    assert sorted(os.listdir(tmp_path / "real")) == ["keep.json"]


def test_audit_writes_every_file_then_records_the_run(tmp_path: Path, stand_in_transport: list[str]) -> None:
    history = tmp_path / "history.sqlite"
    assert audit(tmp_path / "out", "--history", str(history)) == 1  # the stand-in evidence fails some controls
    assert stand_in_transport == ["a", "b"]
    assert (tmp_path / "out" / "findings.json").exists() and (tmp_path / "out" / "evidence" / "b.json").exists()
    with closing(sqlite3.connect(history)) as database:
        assert database.execute("SELECT COUNT(*) FROM medinfra_runs").fetchone() == (1,)


@pytest.mark.parametrize("lock", ["BEGIN IMMEDIATE", "BEGIN EXCLUSIVE"])
def test_a_locked_history_keeps_the_reports_and_exits_3(
    tmp_path: Path, stand_in_transport: list[str], capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch, lock: str,
) -> None:
    history = tmp_path / "history.sqlite"
    assert audit(tmp_path / "first", "--history", str(history)) == 1
    capsys.readouterr()
    monkeypatch.setattr("medinfra.history.store.BUSY_TIMEOUT", 0.2)
    with closing(sqlite3.connect(history, isolation_level=None, timeout=0)) as holder:
        holder.execute(lock)
        code = audit(tmp_path / "out", "--history", str(history))
        holder.execute("ROLLBACK")
    captured = capsys.readouterr()
    assert code == 3
    assert captured.err.count("\n") == 1 and "this run was NOT recorded" in captured.err
    assert "database is locked" in captured.err and "Traceback" not in captured.err
    assert "reports in" in captured.out and (tmp_path / "out" / "report.en.html").exists()
    assert len(list((tmp_path / "out").iterdir())) == 7  # evidence/, findings, 2 HTML, OSCAL, JUnit, CSV
    with closing(sqlite3.connect(history)) as database:
        assert database.execute("SELECT COUNT(*) FROM medinfra_runs").fetchone() == (1,)


def test_a_corrupt_history_keeps_the_reports_and_exits_3(
    tmp_path: Path, stand_in_transport: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    history = tmp_path / "history.sqlite"
    history.write_bytes(b"not a database, just some bytes " * 100)
    assert audit(tmp_path / "out", "--history", str(history)) == 3
    err = capsys.readouterr().err
    assert err == (f"medinfra: history: this run was NOT recorded ({history}: (top level): opening history: file is "
                   "not a database); the reports are complete\n")
    assert (tmp_path / "out" / "findings.json").exists() and (tmp_path / "out" / "junit.xml").exists()


def test_an_unusable_history_location_fails_before_any_host_is_contacted(
    tmp_path: Path, stand_in_transport: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert audit(tmp_path / "out", "--history", "mysql://audit:s3cret@db/history") == 2
    err = capsys.readouterr().err
    assert "unsupported scheme 'mysql'" in err and "s3cret" not in err
    assert stand_in_transport == [] and not (tmp_path / "out").exists()
