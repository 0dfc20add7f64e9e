"""podman with medinfra's own engine settings (runc, cgroupfs, netavark), never touching /etc."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

CONTAINERS_CONF = Path(__file__).with_name("containers.conf")


class LabError(Exception):
    """The lab could not do something (podman, debootstrap, ssh); the message says what."""


def podman_env() -> dict[str, str]:
    return {**os.environ, "CONTAINERS_CONF": str(CONTAINERS_CONF)}


def podman(*args: str, stdin: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        ["podman", *args], input=stdin, capture_output=True, text=True, env=podman_env(), check=False
    )
    if check and result.returncode != 0:
        raise LabError(f"podman {' '.join(args[:3])} failed: {result.stderr.strip() or result.stdout.strip()}")
    return result


def podman_json(*args: str) -> Any:
    output = podman(*args).stdout.strip()
    return json.loads(output) if output else []
