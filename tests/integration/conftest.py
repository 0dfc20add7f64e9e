"""Fixtures shared by integration modules."""

from __future__ import annotations

import subprocess
import time

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
