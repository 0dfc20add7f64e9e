"""medinfra as a site installs it: the wheel and the collection built from this checkout, installed into a fresh
virtualenv and a collections path outside the checkout, and run from elsewhere with Ansible's own configuration.

The `installed` fixture is built once per test session and shared by test_packaging.py and test_lab.py.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import ROOT

COLLECTION = "medinfra.hospital"


def clean_environment(venv: Path, collections: Path) -> dict[str, str]:
    """The caller's environment without its Ansible and Python settings (make exports ANSIBLE_CONFIG for the
    checkout): Ansible finds collections through ANSIBLE_COLLECTIONS_PATH alone, programs in the venv first."""
    kept = {k: v for k, v in os.environ.items() if not k.startswith(("ANSIBLE_", "PYTHON", "VIRTUAL_ENV"))}
    return {
        **kept,
        "PATH": f"{venv / 'bin'}:{os.environ['PATH']}",
        "ANSIBLE_COLLECTIONS_PATH": str(collections),
        "ANSIBLE_FORCE_COLOR": "0",
    }


def checked(
    command: list[str], timeout: float, cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(command, capture_output=True, text=True, check=False, timeout=timeout, cwd=cwd, env=env)
    assert result.returncode == 0, f"{command}:\n{result.stdout[-3000:]}{result.stderr[-3000:]}"
    return result


@dataclass(frozen=True)
class Installed:
    venv: Path
    collections: Path  # holds ansible_collections/medinfra/hospital
    workdir: Path  # outside the checkout, with no ansible.cfg
    build_seconds: float
    install_seconds: float

    def environment(self) -> dict[str, str]:
        return clean_environment(self.venv, self.collections)

    def run(self, tool: str, *args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
        """Run one of the venv's programs (medinfra, ansible-playbook, ...) in the work directory."""
        return subprocess.run(
            [str(self.venv / "bin" / tool), *args], capture_output=True, text=True, check=False, timeout=timeout,
            cwd=self.workdir, env=self.environment(),
        )


def install(base: Path) -> Installed:
    """Build the wheel (in an isolated build environment) and the collection, then install both where neither
    the checkout nor the project's venv is: pip's cache makes the fresh venv's dependencies quick to install."""
    started = time.monotonic()
    dist = base / "dist"
    # The sdist, then the wheel from it: what a release ships, and no stale build/ of the checkout in the wheel.
    checked([sys.executable, "-m", "build", "--outdir", str(dist), str(ROOT)], 600)
    ansible_galaxy = str(Path(sys.executable).with_name("ansible-galaxy"))
    checked([ansible_galaxy, "collection", "build", str(ROOT), "--output-path", str(dist)], 300)
    built = time.monotonic()
    [wheel] = dist.glob("medinfra-*.whl")
    [tarball] = dist.glob("medinfra-hospital-*.tar.gz")
    venv = base / "venv"
    checked([sys.executable, "-m", "venv", str(venv)], 300)
    # Compiling the `ansible` package's tens of thousands of modules would take longer than installing them.
    checked([str(venv / "bin" / "pip"), "install", "--quiet", "--no-compile", str(wheel)], 900)
    collections = base / "collections"
    # --offline: the collection's dependencies (ansible.posix, ...) come with the `ansible` package just installed.
    checked([str(venv / "bin" / "ansible-galaxy"), "collection", "install", "--offline", str(tarball),
             "-p", str(collections)], 300, cwd=base, env=clean_environment(venv, collections))
    workdir = base / "elsewhere"
    workdir.mkdir()
    return Installed(venv, collections, workdir, built - started, time.monotonic() - built)


@pytest.fixture(scope="session")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    return install(tmp_path_factory.mktemp("installed"))
