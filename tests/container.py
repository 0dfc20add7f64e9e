"""Helpers for Molecule's testinfra checks: run a Python script inside the container under test."""

from __future__ import annotations

import base64
import shlex
from typing import Any


def python_in(host: Any, script: str, *args: str) -> str:
    """Run ``script`` with the container's python3 and return its output (fails the test on a non-zero exit).

    The script travels base64-encoded, so no quoting in it can break the shell command.
    """
    encoded = base64.b64encode(script.encode()).decode()
    command = f"python3 -c 'import base64; exec(base64.b64decode(\"{encoded}\"))'"
    return str(host.check_output(" ".join([command, *(shlex.quote(arg) for arg in args)])))
