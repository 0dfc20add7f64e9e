"""The command line fits shell habits: --format json that pipes to jq, colour only on a terminal (NO_COLOR, --color),
help on every option, shell completion, and no history file named `none`."""

from __future__ import annotations

import argparse
import json
import os
import pty
import select
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from medinfra.cli import build_parser, main
from medinfra.completion import script
from medinfra.exits import AUDIT_EXITS, EXIT_UNREACHABLE
from medinfra.history import open_history
from medinfra.terminal import GREEN, RED, YELLOW, Palette, wants_colour
from tests.unit.test_cli import MEDINFRA, run
from tests.unit.test_history import AFTER, BEFORE, make_document, stamp
from tests.unit.test_safe_output import audit, stand_in_transport  # noqa: F401 (a fixture)

ESC = "\x1b["


def parsers(parser: argparse.ArgumentParser, path: str = "medinfra") -> Iterator[tuple[str, argparse.ArgumentParser]]:
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from parsers(sub, f"{path} {name}")


def test_every_option_and_subcommand_has_help() -> None:
    missing = []
    for path, parser in parsers(build_parser()):
        for action in parser._actions:
            if not action.help:
                missing.append(f"{path}: {action.option_strings or action.dest}")
            if isinstance(action, argparse._SubParsersAction):
                missing += [f"{path} {choice.dest}" for choice in action._choices_actions if not choice.help]
    assert missing == []


# Colour


@pytest.fixture
def terminal() -> Iterator[tuple[int, int]]:
    """A real pseudo-terminal: (the side medinfra writes to, the side that reads what it wrote)."""
    reader, writer = pty.openpty()
    yield writer, reader
    os.close(writer)
    os.close(reader)


@pytest.mark.parametrize(
    ("choice", "environ", "on_terminal", "expected"),
    [
        ("auto", {}, True, True),
        ("auto", {"NO_COLOR": ""}, True, True),  # no-color.org: only a non-empty NO_COLOR counts
        ("auto", {"NO_COLOR": "1"}, True, False),
        ("auto", {"NO_COLOR": "0"}, True, False),  # any value, even "0"
        ("auto", {"TERM": "dumb"}, True, False),
        ("auto", {}, False, False),
        ("always", {"NO_COLOR": "1"}, False, True),  # an option given on the command line wins over NO_COLOR
        ("never", {}, True, False),
    ],
)
def test_colour_on_a_terminal_unless_no_color(
    terminal: tuple[int, int], tmp_path: Path, choice: str, environ: dict[str, str], on_terminal: bool,
    expected: bool,
) -> None:
    if on_terminal:
        with os.fdopen(os.dup(terminal[0]), "w") as stream:
            assert wants_colour(choice, stream, environ) is expected
    else:
        with (tmp_path / "out").open("w") as stream:
            assert wants_colour(choice, stream, environ) is expected


def test_palette_paints_statuses_by_meaning() -> None:
    paint = Palette(True)
    assert paint.status("FAIL") == f"{ESC}{RED}mFAIL{ESC}0m"
    assert paint.status("pass") == f"{ESC}{GREEN}mpass{ESC}0m"
    assert paint.status("UNREACHABLE") == paint.status("UNREACHABLE", "error") == f"{ESC}{YELLOW}mUNREACHABLE{ESC}0m"
    assert paint.status("NOT PROBED").startswith(f"{ESC}{YELLOW}m")
    assert paint.status("waived") == "waived"
    assert paint.count("fail 0", "fail", 0) == "fail 0"
    assert Palette().status("FAIL") == "FAIL"


@pytest.fixture
def two_runs(tmp_path: Path) -> str:
    location = str(tmp_path / "history.sqlite")
    with open_history(location) as store:
        store.record(make_document(BEFORE, "lab", stamp(1)))
        store.record(make_document(AFTER, "lab", stamp(2)))
    return location


def on_terminal(*args: str, environ: dict[str, str] | None = None) -> tuple[int, str]:
    """`medinfra ARGS` with stdout on a real pseudo-terminal: its exit code and what it showed there."""
    reader, writer = pty.openpty()
    env = {key: value for key, value in os.environ.items() if key not in ("NO_COLOR", "TERM")} | (environ or {})
    with subprocess.Popen([str(MEDINFRA), *args], stdout=writer, stderr=subprocess.PIPE, env=env) as process:
        os.close(writer)
        chunks = []
        while True:
            # Wait in select before reading: once a test has run the audit's transport in this process, gevent's
            # os.close above only closes the writer when gevent's hub runs, which select lets it do and a bare
            # os.read would not (the read would then wait forever for the end that the open writer holds back).
            select.select([reader], [], [])
            try:
                chunk = os.read(reader, 65536)
            except OSError:  # EIO: the terminal's other side closed
                break
            if not chunk:
                break
            chunks.append(chunk)
        code = process.wait()
    os.close(reader)
    return code, b"".join(chunks).decode()


def test_diff_is_coloured_on_a_terminal_only(two_runs: str) -> None:
    code, shown = on_terminal("diff", "--history", two_runs)
    assert code == 0
    assert f"{ESC}{RED}mnew failures: 4{ESC}0m" in shown
    assert f"{ESC}{RED}mfail{ESC}0m (was {ESC}{GREEN}mpass{ESC}0m)" in shown
    assert f"{ESC}{YELLOW}munreachable{ESC}0m: connection refused" in shown
    code, shown = on_terminal("diff", "--history", two_runs, environ={"NO_COLOR": "1"})
    assert code == 0 and "new failures: 4" in shown and ESC not in shown
    piped = run("diff", "--history", two_runs)
    assert piped.returncode == 0 and "new failures: 4" in piped.stdout and ESC not in piped.stdout
    forced = run("diff", "--history", two_runs, "--color", "always")
    assert f"{ESC}{RED}mnew failures: 4" in forced.stdout


def test_history_paints_runs_that_missed_hosts_and_keeps_the_columns(two_runs: str) -> None:
    plain = run("history", "--history", two_runs).stdout.splitlines()
    painted = run("history", "--history", two_runs, "--color", "always").stdout.splitlines()
    assert f"{ESC}{YELLOW}m3/4{ESC}0m" in painted[1] and "4/4" in painted[2] and ESC not in painted[2]
    assert [line.replace(f"{ESC}{YELLOW}m", "").replace(f"{ESC}0m", "") for line in painted] == plain


def test_audit_summary_colours_failures(
    tmp_path: Path, stand_in_transport: list[str], capsys: pytest.CaptureFixture[str],  # noqa: F811
) -> None:
    assert audit(tmp_path / "out", "--no-history", "--color", "always") == 1
    out = capsys.readouterr().out
    assert f"{ESC}{RED}mfail " in out and f"{ESC}{GREEN}mpass " in out
    assert audit(tmp_path / "again", "--no-history") == 1  # captured output is not a terminal
    assert ESC not in capsys.readouterr().out


# JSON


def test_history_and_diff_as_json(two_runs: str) -> None:
    listed = run("history", "--history", two_runs, "--format", "json", "--color", "always")
    assert listed.returncode == 0 and listed.stderr == ""
    document = json.loads(listed.stdout)
    assert document["format"] == "medinfra-history/1" and document["location"] == two_runs
    assert [(r["id"], r["started_at"], r["hosts_audited"], r["hosts_total"]) for r in document["runs"]] == [
        (2, "2026-11-02T07:00:00Z", 3, 4), (1, "2026-11-01T07:00:00Z", 4, 4)]
    assert document["runs"][0]["counts"]["fail"] == 5 and document["runs"][0]["framework_scores"]["hipaa"] is not None

    compared = run("diff", "--history", two_runs, "--format", "json")
    assert compared.returncode == 0 and compared.stderr == ""
    diff = json.loads(compared.stdout)
    assert diff["older"]["id"] == 1 and diff["newer"]["id"] == 2
    changes = diff["changes"]
    assert len(changes["new_failures"]) == 4
    assert {"host": "web", "control": "ssh_root", "status": "fail", "reason": "ssh_root fail on web",
            "before": "pass"} in changes["new_failures"]
    assert changes["hosts_removed"] == [
        {"name": "old", "failing": 1, "status": "unreachable", "reason": "connection refused"},
        {"name": "retired", "failing": 2, "status": "absent", "reason": ""},
    ]
    assert changes["score"]["scope"] == "overall" and changes["score"]["delta"] < 0
    assert [f["scope"] for f in changes["frameworks"]] == ["hipaa", "gbt22239", "cis_debian12"]


def test_json_without_runs_is_still_one_document_and_the_note_goes_to_stderr(tmp_path: Path) -> None:
    location = str(tmp_path / "empty.sqlite")
    listed = run("history", "--history", location, "--format", "json")
    assert json.loads(listed.stdout) == {"format": "medinfra-history/1", "location": location, "runs": []}
    assert listed.stderr == f"no runs recorded in {location}\n"
    compared = run("diff", "--history", location, "--format", "json")
    assert json.loads(compared.stdout)["changes"] is None and "no runs recorded" in compared.stderr
    with open_history(location) as store:
        store.record(make_document(BEFORE, "lab", stamp(1)))
    compared = run("diff", "--history", location, "--format", "json")
    document = json.loads(compared.stdout)
    assert document["newer"]["id"] == 1 and document["older"] is None and document["changes"] is None
    assert "first recorded run of its site" in compared.stderr


def test_json_texts_pass_through_safe_text(tmp_path: Path) -> None:
    """A host name carrying a terminal escape and a bidi override shows as visible escapes, as in the text form."""
    location = str(tmp_path / "history.sqlite")
    sly = "web\u202e\x1b[2J"
    with open_history(location) as store:
        store.record(make_document({"web": {"ssh_root": "pass"}}, "lab", stamp(1)))
        store.record(make_document({"web": {"ssh_root": "pass"}, sly: {"ssh_root": "fail"}}, "lab", stamp(2)))
    compared = run("diff", "--history", location, "--format", "json")
    assert "\u202e" not in compared.stdout and "\\u001b" not in compared.stdout
    assert json.loads(compared.stdout)["changes"]["hosts_added"][0]["name"] == "web\\u202e\\x1b[2J"


def test_postgres_password_never_in_the_json(tmp_path: Path) -> None:
    listed = run("history", "--history", "postgresql://audit:s3cret@127.0.0.1:9/history?connect_timeout=1",
                 "--format", "json")
    assert listed.returncode == 2 and "s3cret" not in listed.stdout + listed.stderr and listed.stdout == ""


def test_audit_json_is_the_only_thing_on_stdout(tmp_path: Path) -> None:
    """A real audit (one host that refuses the connection): stdout is one JSON document, progress is on stderr."""
    inventory = tmp_path / "hosts.ini"
    inventory.write_text("closed ansible_host=127.0.0.1 ansible_port=9 ansible_user=nobody\n")
    done = subprocess.run(
        f"{MEDINFRA} audit -i {inventory} -o {tmp_path / 'out'} --no-history --format json | "
        f"{sys.executable} -c 'import json, sys; d = json.load(sys.stdin); "
        "print(d[\"exit\"][\"code\"], d[\"hosts\"][0][\"status\"])'; exit ${PIPESTATUS[0]}",
        shell=True, executable="/bin/bash", capture_output=True, text=True, check=False, timeout=120,
    )
    assert done.returncode == EXIT_UNREACHABLE, done.stderr
    assert done.stdout == "3 unreachable\n"
    assert "[1/1] closed unreachable" in done.stderr and "Traceback" not in done.stderr


def test_audit_json_summary_carries_counts_hosts_exit_and_reports(
    tmp_path: Path, stand_in_transport: list[str], capsys: pytest.CaptureFixture[str],  # noqa: F811
) -> None:
    history = tmp_path / "history.sqlite"
    assert audit(tmp_path / "first", "--history", str(history), "--format", "json") == 1
    first = json.loads(capsys.readouterr().out)
    assert audit(tmp_path / "out", "--history", str(history), "--format", "json", "--color", "always") == 1
    captured = capsys.readouterr()
    assert ESC not in captured.out and captured.err == ""
    summary: dict[str, Any] = json.loads(captured.out)
    assert summary["format"] == "medinfra-audit-summary/1" and summary["site"] == "test"
    assert [(h["name"], h["status"]) for h in summary["hosts"]] == [("a", "audited"), ("b", "audited")]
    assert summary["summary"]["hosts"] == {"audited": 2, "unreachable": 0, "error": 0}
    assert set(summary["summary"]["per_host"]) == {"a", "b"} and summary["summary"]["overall"]["fail"] > 0
    assert summary["exit"] == {"code": 1, "meaning": AUDIT_EXITS[1]}
    assert summary["reports"]["directory"] == str(tmp_path / "out") and summary["reports"]["manifest"] is None
    assert str(tmp_path / "out" / "findings.json") in summary["reports"]["files"]
    recorded = summary["history"]
    assert recorded["location"] == str(history) and recorded["error"] is None
    assert recorded["previous"]["id"] == first["history"]["recorded"]["id"] == 1 and recorded["recorded"]["id"] == 2
    assert recorded["changes"]["new_failures"] == [] and first["history"]["changes"] is None


# Completion


def completions(shell_script: str, *words: str) -> list[str]:
    """What the completion function offers after `words` (the last one being completed), under real bash."""
    done = subprocess.run(
        ["bash", "-c", 'source /dev/stdin; COMP_WORDS=("${@}"); COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); _medinfra; '
         'printf "%s\\n" "${COMPREPLY[@]}"', "bash", *words],
        input=shell_script, capture_output=True, text=True, check=True,
    )
    return done.stdout.split()


@pytest.fixture(scope="module")
def bash_script() -> str:
    done = run("completion", "bash")
    assert done.returncode == 0 and done.stderr == ""
    return done.stdout


def test_bash_completion_offers_the_parser_s_commands_and_options(bash_script: str, tmp_path: Path) -> None:
    top = [name for name, _ in parsers(build_parser()) if name.count(" ") == 1]
    assert completions(bash_script, "medinfra", "") == [*(p.split()[1] for p in top), "-h", "--help", "--version"]
    assert completions(bash_script, "medinfra", "h") == ["history"]
    assert completions(bash_script, "medinfra", "segmentation", "") == ["verify", "-h", "--help"]
    assert "--format" in completions(bash_script, "medinfra", "audit", "--")
    assert completions(bash_script, "medinfra", "audit", "-i", "inv", "--fo") == ["--forks", "--format"]
    assert completions(bash_script, "medinfra", "audit", "--format", "") == ["text", "json"]
    assert completions(bash_script, "medinfra", "diff", "--color", "a") == ["auto", "always"]
    assert completions(bash_script, "medinfra", "report", "--lang", "") == ["en", "zh", "both"]
    assert completions(bash_script, "medinfra", "completion", "") == ["bash", "zsh"]
    (tmp_path / "waivers.yml").write_text("")
    assert completions(bash_script, "medinfra", "audit", "--waivers", str(tmp_path / "wai")) == [
        str(tmp_path / "waivers.yml")]
    # A value of an option is not taken for a subcommand or a positional argument.
    assert completions(bash_script, "medinfra", "history", "--site", "audit", "--li") == ["--limit"]


def test_completion_script_is_generated_from_the_parser() -> None:
    parser = build_parser()
    assert script(parser, "bash").endswith("complete -F _medinfra medinfra\n")
    for path, sub in parsers(parser):
        for action in sub._actions:
            for option in action.option_strings:
                assert f'"{path}/{option}"' in script(parser, "bash") or action.nargs == 0


def test_zsh_completion_through_bashcompinit(tmp_path: Path) -> None:
    (tmp_path / "medinfra.zsh").write_text(run("completion", "zsh").stdout)
    test = (
        f"source {tmp_path / 'medinfra.zsh'}\n"
        'print -r -- "$_comps[medinfra]"\n'
        "emulate sh -c 'COMP_WORDS=(medinfra audit --fo); COMP_CWORD=2; _medinfra; echo \"${COMPREPLY[*]}\"'\n"
        # Under zsh, compgen leaves matching the typed word to zsh, and -f reads that word from zle's PREFIX.
        f"PREFIX={tmp_path}/med emulate sh -c 'COMP_WORDS=(medinfra verify --pubkey x); COMP_CWORD=3; _medinfra; "
        'echo "${COMPREPLY[*]}"\'\n'
    )
    done = subprocess.run(["zsh", "-f", "-c", test], capture_output=True, text=True, check=False,
                          env={**os.environ, "HOME": str(tmp_path)})
    assert done.returncode == 0 and done.stderr == ""
    registered, options, files = done.stdout.splitlines()
    assert registered == "_bash_complete -F _medinfra"
    assert {"--forks", "--format", "--no-history"} <= set(options.split()) and "text" not in options
    assert files == f"{tmp_path}/medinfra.zsh"


# A history location that is not one


@pytest.mark.parametrize("location", ["none", "None", "NULL", " off ", ""])
@pytest.mark.parametrize("command", [["history"], ["diff"], ["audit", "-i", "inventory", "-o", "out", "-q"]])
def test_none_is_not_a_history_file(
    location: str, command: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main([*command, "--history", location]) == 2
    err = capsys.readouterr().err
    if location:
        assert "is not a history location: to keep a run out of the history, use --no-history" in err
    else:
        assert "is empty: give a SQLite file path" in err
    assert list(tmp_path.iterdir()) == []  # once a SQLite file named `none` here


def test_a_file_named_none_can_still_be_meant(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with open_history("./none") as store:
        store.record(make_document(BEFORE, "lab", stamp(1)))
    assert main(["history", "--history", "./none"]) == 0
