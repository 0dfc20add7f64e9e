"""Fixtures shared by integration modules."""

from __future__ import annotations

import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from medinfra.toolenv import tool_env
from tests.conftest import ROOT


def build_ee() -> tuple[str, float]:
    """`make ee`'s command: the execution environment's tag (built only when missing) and the seconds it took."""
    started = time.monotonic()
    result = subprocess.run(
        [str(ROOT / "scripts" / "build-ee.sh")],
        capture_output=True,
        text=True,
        env=tool_env(ROOT),
        check=False,
        timeout=1800,
    )
    assert result.returncode == 0, result.stderr[-5000:]
    return result.stdout.strip(), time.monotonic() - started


@pytest.fixture(scope="session")
def ee_image() -> str:
    """medinfra's execution environment, built from this checkout (about 3 minutes cold, under a second cached)."""
    return build_ee()[0]


def pytest_collection_finish(session: pytest.Session) -> None:
    """Start every selected Molecule scenario in the background (a process of its own) when collection ends."""
    if session.config.option.collectonly:
        return
    from tests.integration import molecule_pool

    names = [item.callspec.params["name"] for item in session.items
             if isinstance(item, pytest.Function) and item.originalname == "test_molecule"
             and item.module is not None and item.module.__name__.endswith("test_molecule")]
    if names:
        molecule_pool.start(names, Path(tempfile.mkdtemp(prefix="medinfra-molecule-pool-")))


def pytest_sessionfinish(session: pytest.Session) -> None:
    """An interrupted or finished session leaves no scenario running."""
    from tests.integration import molecule_pool

    molecule_pool.stop()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    from tests.integration import molecule_pool

    for line in molecule_pool.figures:
        terminalreporter.write_line(line)
