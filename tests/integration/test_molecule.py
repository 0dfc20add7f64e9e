"""Every role's Molecule scenario (syntax, check, converge, idempotence, verify) on the lab image."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.integration

BIN = Path(sys.executable).parent
ROLES = sorted(p.parent.parent.parent.name for p in ROOT.glob("roles/*/molecule/default/molecule.yml"))


@pytest.fixture(scope="module")
def lab_image() -> str:
    result = subprocess.run([str(BIN / "medinfra"), "lab", "image"], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_every_role_has_a_scenario() -> None:
    roles = sorted(p.name for p in (ROOT / "roles").iterdir() if p.is_dir())
    assert roles == ROLES


@pytest.mark.parametrize("role", ROLES)
def test_molecule(role: str, lab_image: str) -> None:
    env = {
        **os.environ,
        "PATH": f"{BIN}:{os.environ['PATH']}",
        "MEDINFRA_LAB_IMAGE": lab_image,
        "MOLECULE_ROLE": role,
        "CONTAINERS_CONF": str(ROOT / "src/medinfra/lab/containers.conf"),
        "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
        "PY_COLORS": "0",
        "ANSIBLE_FORCE_COLOR": "0",
    }
    result = subprocess.run(
        [str(BIN / "molecule"), "-c", str(ROOT / "molecule/base.yml"), "test"],
        cwd=ROOT / "roles" / role,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=1800,
    )
    assert result.returncode == 0, (result.stdout + result.stderr)[-6000:]
