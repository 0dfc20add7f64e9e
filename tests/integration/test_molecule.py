"""Every role's Molecule scenario (syntax, check, converge, idempotence, verify) on the lab image."""

from __future__ import annotations

import subprocess

import pytest

from medinfra.toolenv import BIN, run_tool, tool_env
from tests.conftest import ROOT

pytestmark = pytest.mark.integration

ROLES = sorted(p.parent.parent.parent.name for p in ROOT.glob("roles/*/molecule/default/molecule.yml"))


@pytest.fixture(scope="module")
def lab_image() -> str:
    result = run_tool(ROOT, "medinfra", "lab", "image")
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_every_role_has_a_scenario() -> None:
    roles = sorted(p.name for p in (ROOT / "roles").iterdir() if p.is_dir())
    assert roles == ROLES


@pytest.mark.parametrize("role", ROLES)
def test_molecule(role: str, lab_image: str) -> None:
    env = {**tool_env(ROOT), "MEDINFRA_LAB_IMAGE": lab_image, "MOLECULE_ROLE": role, "PY_COLORS": "0"}
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
