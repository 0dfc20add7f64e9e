"""The history contract against a real, throwaway PostgreSQL server from the Debian package."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from medinfra.cli import main
from tests.unit.test_history import HistoryContract

pytestmark = pytest.mark.integration

POSTGRES_ROOT = Path("/usr/lib/postgresql")


def postgres_bindir() -> Path:
    """The newest installed server's bin directory (/usr/lib/postgresql/<version>/bin)."""
    found = [path.parent for path in POSTGRES_ROOT.glob("*/bin/pg_ctl")]
    if not found:
        pytest.fail(
            f"no PostgreSQL server in {POSTGRES_ROOT}/*/bin: run scripts/install-deps.sh (installs postgresql)",
            pytrace=False,
        )
    return max(found, key=lambda bindir: tuple(int(part) for part in bindir.parent.name.split(".") if part.isdigit()))


def run_as_server_user(*command: str | Path, cwd: Path) -> None:
    # PostgreSQL refuses to run as root; the Debian package creates the `postgres` user to run it as.
    prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    result = subprocess.run([*prefix, *map(str, command)], cwd=cwd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        pytest.fail(f"{' '.join(map(str, command))} failed:\n{result.stdout}{result.stderr}", pytrace=False)


@pytest.fixture(scope="session")
def postgres_socket_dir() -> Iterator[Path]:
    """A server listening only on a unix socket in its own temporary directory, stopped and removed afterwards."""
    bindir = postgres_bindir()
    # Not under pytest's tmp_path: that sits in a 0700 directory of root's, which the postgres user cannot traverse.
    root = Path(tempfile.mkdtemp(prefix="medinfra-pg-"))
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    data = root / "data"
    try:
        run_as_server_user(bindir / "initdb", "-D", data, "-A", "trust", "-U", "postgres", "-E", "UTF8",
                           "--locale=C", "--no-sync", cwd=root)
        run_as_server_user(bindir / "pg_ctl", "-D", data, "-l", root / "server.log", "-w", "-o",
                           f"-c listen_addresses='' -k {root} -c fsync=off", "start", cwd=root)
        try:
            yield root
        finally:
            run_as_server_user(bindir / "pg_ctl", "-D", data, "-m", "fast", "stop", cwd=root)
    finally:
        shutil.rmtree(root)


@pytest.fixture
def postgres_url(postgres_socket_dir: Path) -> str:
    """A fresh, empty database for one test."""
    name = f"history_{uuid.uuid4().hex}"
    with psycopg.connect(f"postgresql://postgres@/postgres?host={postgres_socket_dir}", autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return f"postgresql://postgres@/{name}?host={postgres_socket_dir}"


class TestPostgresHistory(HistoryContract):
    @pytest.fixture
    def location(self, postgres_url: str) -> str:
        return postgres_url


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://medinfra:s3cret-pw@127.0.0.1:1/history", "postgresql://medinfra:***@127.0.0.1:1/history"),
        ("postgres://medinfra@127.0.0.1:1/history?password=s3cret-pw",
         "postgres://medinfra@127.0.0.1:1/history?password=***"),
    ],
)
def test_unreachable_server_is_reported_without_its_password(
    url: str, shown: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["history", "--history", url]) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith(f"{shown}: (top level): cannot open history: connection")
    assert captured.err.count("\n") == 1
    assert "s3cret" not in captured.err + captured.out


def test_key_value_strings_and_any_scheme_spelling_reach_the_same_server(postgres_url: str) -> None:
    """libpq's key=value form and POSTGRESQL:// in capitals are PostgreSQL, never a SQLite file of that name."""
    from medinfra.history import open_history
    from tests.unit.test_history import BEFORE, make_document

    with open_history(postgres_url.replace("postgresql://", "POSTGRESQL://", 1)) as store:
        run = store.record(make_document(BEFORE))
    host = postgres_url.split("?host=", 1)[1]
    name = postgres_url.split("@/", 1)[1].split("?")[0]
    with open_history(f"host={host} user=postgres dbname={name} password='not needed'", read_only=True) as store:
        assert store.runs() == [run] and store.location.endswith("password=***")
