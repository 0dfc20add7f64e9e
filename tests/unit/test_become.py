"""The become password and what a hostile host sends back: never executed, echoed, stored or shown.

`sudo -S` reads the password only when it prompts. Before, a sudo that did not (NOPASSWD, cached credentials,
already root) left the password line on stdin for `python3 -`, whose SyntaxError showed it on the terminal and in
every report and the history. Root's own sudo never prompts, which is exactly that case, so these tests run the
command line medinfra builds under the real sudo here; a loopback SSH server (sshd_standin.py) stands in for
honest and hostile hosts behind the real pyinfra transport.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
import zlib
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from medinfra.audit.received import OUTPUT_LIMIT, ProgramOutput, program_result
from medinfra.audit.results import AuditRun, judge, summary_text
from medinfra.audit.targets import SshSettings, collector_command, inventory_view, ssh_settings
from medinfra.cli import print_published
from medinfra.collector import collector_program, default_paths
from medinfra.compliance.catalog import load_catalog
from medinfra.package_data import CATALOG_DIR
from medinfra.report.publish import publish
from medinfra.toolenv import run_tool
from tests.conftest import ROOT

HERE = Path(__file__).resolve().parent
FIXTURE = HERE / "compliance" / "fixtures" / "evidence-his-app.json"
BECOME = "Become-Secret-7fA3-zz"
SSH_PASSWORD = "Ssh-Secret-91Qb-yy"
SECRETS = (BECOME, SSH_PASSWORD)
PAINTED = "\x1b[2K\rverified: signature valid"
NOW = datetime(2026, 12, 5, tzinfo=UTC)

needs_sudo = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("sudo") is None,
    reason="needs root and sudo (scripts/install-deps.sh installs sudo); root's sudo does not prompt, as NOPASSWD",
)

# sudo -S when it does prompt: it reads the password line from stdin (a byte at a time, as sudo does), then runs
# the command with the rest of stdin.
PROMPTING_SUDO = """#!/bin/sh
IFS= read -r given
[ "$given" = "$EXPECTED_PASSWORD" ] || { echo "Sorry, try again." >&2; exit 1; }
while [ $# -gt 0 ]; do case $1 in -H|-S|-n) shift ;; -p|-u) shift 2 ;; *) break ;; esac; done
exec "$@"
"""


def run_locally(command: str, stdin: bytes, env: dict[str, str] | None = None) -> ProgramOutput:
    """The command line run as a host's sshd would run it: by a shell, stdin piped in."""
    done = subprocess.run(["sh", "-c", command], input=stdin, capture_output=True, env=env, timeout=120)
    return ProgramOutput(done.stdout, done.stderr, done.returncode)


def prompting_sudo(directory: Path) -> dict[str, str]:
    """An environment whose `sudo` prompts for BECOME."""
    directory.mkdir()
    (directory / "sudo").write_text(PROMPTING_SUDO)
    (directory / "sudo").chmod(0o755)
    return {**os.environ, "PATH": f"{directory}:{os.environ['PATH']}", "EXPECTED_PASSWORD": BECOME}


@needs_sudo
@pytest.mark.parametrize(
    ("case", "become_user", "as_root"),
    [
        ("sudo without a prompt (NOPASSWD)", None, True),
        ("sudo -u nobody", "nobody", False),
        ("sudo prompting", None, True),
    ],
)
def test_the_collector_runs_under_sudo_and_never_shows_the_password(
    tmp_path: Path, case: str, become_user: str | None, as_root: bool
) -> None:
    env = prompting_sudo(tmp_path / "bin") if case == "sudo prompting" else None
    ssh = SshSettings(hostname="h", become=True, become_user=become_user, become_password=BECOME)
    command, stdin = collector_command(ssh, collector_program(default_paths()))
    assert BECOME not in command
    output = run_locally(command, stdin, env)
    assert output.exit_status == 0, output.stderr.decode()
    assert BECOME.encode() not in output.stdout + output.stderr
    evidence = json.loads(output.stdout)
    assert evidence["schema"] == "medinfra-evidence/1"
    assert evidence["running_as_root"] is as_root


def test_without_the_start_marker_nothing_runs_and_nothing_is_echoed() -> None:
    command, _ = collector_command(SshSettings(hostname="h"), "print('ran')\n", "medinfra-start-1")
    output = run_locally(command, f"{BECOME}\nprint('ran')\n".encode())
    assert output.exit_status == 1 and output.stdout == b""
    assert b"no program after the start marker" in output.stderr
    assert BECOME.encode() not in output.stderr and b"ran" not in output.stderr


@pytest.mark.parametrize("password", ["first\nsecond", "first\rsecond"])
def test_a_become_password_sudo_would_read_as_two_is_refused_without_showing_it(password: str) -> None:
    problem = ssh_settings("h", {"ansible_become": True, "ansible_become_password": password}, True)
    assert isinstance(problem, str) and "line break" in problem
    assert "first" not in problem and "second" not in problem


def hostile_evidence() -> dict:
    """Recorded evidence from a host that echoes the passwords it was given into facts, keys and texts."""
    evidence = json.loads(FIXTURE.read_text())
    evidence["facts"]["sshd"]["connections"][0]["settings"]["permitrootlogin"] = f"{BECOME} {PAINTED}"
    evidence["facts"]["sysctl"][SSH_PASSWORD] = BECOME
    evidence["facts"]["auditd"]["rules_on_disk"].append(f"-w /etc/shadow -p wa -k {BECOME}")
    return evidence


def history_texts(database: Path) -> Iterator[bytes]:
    """Every value of every row of every table, compressed documents decompressed."""
    with sqlite3.connect(database) as connection:
        tables = [row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        for table in tables:
            for row in connection.execute(f"SELECT * FROM {table}"):  # table names from the database itself
                for value in row:
                    raw = value if isinstance(value, bytes) else str(value).encode()
                    try:
                        yield gzip.decompress(raw)
                    except (OSError, EOFError, zlib.error):
                        yield raw


def assert_nothing_shows(paths: list[Path], database: Path, terminal: str) -> None:
    for secret in (*SECRETS, "\x1b"):
        assert secret not in terminal, f"{secret!r} on the terminal"
        for path in paths:
            assert secret.encode() not in path.read_bytes(), f"{secret!r} in {path}"
        for text in history_texts(database):
            assert secret.encode() not in text, f"{secret!r} in a history row"


@needs_sudo
def test_the_password_reaches_no_report_no_history_row_and_no_terminal_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    become = SshSettings(hostname="h", become=True, become_password=BECOME)
    honest = run_locally(*collector_command(become, collector_program(default_paths())))
    syntax_error = f'  File "<stdin>", line 1\n    {BECOME}\n    ^\nSyntaxError: invalid syntax\n'  # the old command
    outputs = {
        "honest": honest,
        "old-sudo-leak": ProgramOutput(b"", syntax_error.encode(), 1),
        "echoer": ProgramOutput(json.dumps(hostile_evidence()).encode(), f"{PAINTED} {BECOME}\n".encode(), 0),
        "painter": ProgramOutput(b"", f"{PAINTED} {SSH_PASSWORD}\n".encode(), 1),
    }
    results = [program_result(name, output, 0.1, SECRETS) for name, output in outputs.items()]
    assert [r.status for r in results] == ["audited", "error", "audited", "error"]
    catalog = load_catalog(CATALOG_DIR)
    views = {name: inventory_view({}) for name in outputs}
    run = AuditRun("pyinfra", "inventories/x", NOW, results, judge(results, views, catalog, (), NOW), catalog,
                   views=views)
    database = tmp_path / "history.sqlite"
    published = publish(run, tmp_path / "out", str(database), None)
    print(summary_text(run))
    print_published(published)
    terminal = "".join(capsys.readouterr())
    assert "painter: ERROR: collector printed no JSON document: \\x1b[2K\\x0dverified: signature valid ***" in terminal
    echoed = next(f for f in run.findings if f.host == "echoer" and f.control == "sshd_root_login_disabled")
    assert echoed.status == "fail" and "'*** " in echoed.reason and "\x1b" not in echoed.reason
    files = [path for path in (tmp_path / "out").rglob("*") if path.is_file()]
    assert len(files) > 5
    assert_nothing_shows(files, database, terminal)


# --- over SSH, through the real pyinfra transport and `medinfra audit`, against hosts played by sshd_standin.py

ECHOER = f"""import json, sys
password = sys.stdin.buffer.readline().decode().strip()
evidence = json.load(open({str(FIXTURE)!r}))
evidence["facts"]["sshd"]["connections"][0]["settings"]["permitrootlogin"] = password
evidence["facts"]["sysctl"][password] = password
print(json.dumps(evidence))
sys.stderr.write({PAINTED!r} + " " + password + "\\n")
"""
HOSTS = {
    # name: the command the host runs whatever it is asked (None: what it is asked, as an honest host does)
    "honest": None,
    "echoer": "python3 ECHOER",
    "painter": "printf '\\033[2K\\rverified: signature valid %s\\n' \"$(head -n 1)\" >&2; exit 1",
    "flood": "cat /dev/zero",
    "stderr-flood": "head -c 20000000 /dev/zero | tr '\\000' e >&2; exit 1",
    "deep": "python3 -c 'print(\"[\" * 200000 + \"]\" * 200000)'",
    "not-utf8": "printf '\\377\\376{}'",
}


@pytest.fixture
def hostile_site(tmp_path: Path) -> Iterator[Path]:
    """An inventory of loopback hosts (one honest, the others hostile) behind one SSH stand-in; its path."""
    echoer = tmp_path / "echoer.py"
    echoer.write_text(ECHOER)
    replacements = [f"{name}={command.replace('ECHOER', str(echoer))}" for name, command in HOSTS.items() if command]
    server = subprocess.Popen(
        [sys.executable, str(HERE / "sshd_standin.py"), SSH_PASSWORD, *replacements], stdout=subprocess.PIPE, text=True
    )
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline())
        options = f"-o StrictHostKeyChecking=no -o UserKnownHostsFile={tmp_path / 'known_hosts'}"
        lines = [
            f"{name} ansible_host=127.0.0.1 ansible_port={port} ansible_user={name} ansible_password={SSH_PASSWORD} "
            f"ansible_become=true ansible_become_password={BECOME} ansible_ssh_common_args='{options}'"
            for name in HOSTS
        ]
        inventory = tmp_path / "hosts.ini"
        inventory.write_text("\n".join(lines) + "\n")
        yield inventory
    finally:
        server.terminate()
        server.wait(10)


@needs_sudo
def test_hostile_hosts_over_ssh_are_bounded_redacted_and_escaped(tmp_path: Path, hostile_site: Path) -> None:
    database = tmp_path / "history.sqlite"
    started = time.monotonic()
    done = run_tool(
        ROOT, "medinfra", "audit", "-i", str(hostile_site), "-o", str(tmp_path / "out"),
        "--history", str(database), timeout=300,
    )
    seconds = time.monotonic() - started
    assert done.returncode == 3, done.stderr
    assert "Traceback" not in done.stderr
    document = json.loads((tmp_path / "out" / "findings.json").read_text())
    hosts = {host["name"]: host for host in document["hosts"]}
    assert hosts["honest"]["status"] == "audited" and hosts["echoer"]["status"] == "audited"
    assert hosts["painter"]["reason"].startswith("collector printed no JSON document: \\x1b[2K\\x0dverified: signature")
    flooded = f"collector output goes on past the limit of {OUTPUT_LIMIT} bytes; not read further"
    assert hosts["flood"]["reason"] == flooded
    assert hosts["stderr-flood"]["reason"] == "collector printed no JSON document: … (collector exited with status 1)"
    assert hosts["deep"]["status"] == "error" and hosts["not-utf8"]["status"] == "error"
    assert "] painter error (" in done.stderr and "\\x1b[2K\\x0dverified: signature valid ***" in done.stderr
    files = [path for path in (tmp_path / "out").rglob("*") if path.is_file()]
    assert_nothing_shows(files, database, done.stdout + done.stderr)
    assert seconds < 120, f"a flooding host held the audit {seconds:.0f} s"


# --- the Ansible transport: what `medinfra.hospital.evidence` registered goes through the same host_result


def test_the_ansible_transport_redacts_escapes_and_bounds_what_hosts_registered() -> None:
    from ansible_collections.medinfra.hospital.plugins.action.findings import host_result, started_at

    failed = host_result("a", {"failed": True, "msg": f"MODULE FAILURE {PAINTED} {BECOME}\nmore"}, SECRETS)
    assert failed.status == "error"
    assert failed.reason == "MODULE FAILURE \\x1b[2K\\x0dverified: signature valid ***\\x0amore"
    gone = host_result("b", {"unreachable": True, "msg": f"ssh: {SSH_PASSWORD}@host refused"}, SECRETS)
    assert (gone.status, gone.reason) == ("unreachable", "ssh: ***@host refused")
    evidence = {**hostile_evidence(), "collection_seconds": "soon", "collected_at": "yesterday"}
    echoed = host_result("c", {"evidence": evidence}, SECRETS)
    assert echoed.status == "audited" and echoed.seconds == 0.0
    text = json.dumps(echoed.evidence, ensure_ascii=False)
    assert BECOME not in text and SSH_PASSWORD not in text and "\x1b" not in text
    assert started_at([echoed], NOW) == NOW  # a collected_at that is no time is not one
    deep: dict = {"schema": "medinfra-evidence/1"}
    for _ in range(200):
        deep = {"facts": deep}
    assert host_result("d", {"evidence": deep}, SECRETS).reason == "collector output nests deeper than 32 levels"
    huge = {**hostile_evidence(), "padding": "x" * (OUTPUT_LIMIT + 1)}
    assert host_result("e", {"evidence": huge}, SECRETS).reason.startswith("collector output is ")
