"""Running the project's own tools (medinfra, ansible-*, molecule) from its virtualenv."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from medinfra.lab.podman import podman_env

BIN = Path(sys.executable).parent


def tool_env(project_root: Path) -> dict[str, str]:
    """The environment: this venv first on PATH, the project's ansible.cfg, medinfra's podman settings."""
    return {
        **podman_env(),
        "ANSIBLE_CONFIG": str(project_root / "ansible.cfg"),
        "ANSIBLE_FORCE_COLOR": "0",
        "PATH": f"{BIN}:{os.environ['PATH']}",
    }


def run_tool(
    project_root: Path, tool: str, *args: str, timeout: float | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``tool`` from the venv in the project root; output captured, exit code left to the caller."""
    return subprocess.run(
        [str(BIN / tool), *args],
        capture_output=True,
        text=True,
        cwd=project_root,
        env=tool_env(project_root),
        check=False,
        timeout=timeout,
    )
