"""Every role's Molecule scenario (syntax, check, converge, idempotence, verify) on the lab image, and the shared
scenario `plain`: the roles every host gets, on a stock Debian 12 host that the roles must equip themselves."""

from __future__ import annotations

import pytest

from tests.conftest import ROOT
from tests.integration import molecule_pool
from tests.integration.molecule_pool import ROLES, SCENARIOS, Scenario

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def scenarios() -> dict[str, Scenario]:
    """The background pool's outcomes (tests/integration/conftest.py starts it when collection finishes and prints
    its figures, which decide PARALLEL and LONGEST_FIRST, in the session's summary)."""
    return molecule_pool.wait()


# Roles converged and verified inside another role's scenario: rtc_probe measures the relay of rtc_relay's.
TESTED_IN = {"rtc_probe": "rtc_relay"}


def test_every_role_has_a_scenario() -> None:
    """Internal roles (roles/_common) run inside the scenarios of the roles that include them."""
    roles = sorted(p.name for p in (ROOT / "roles").iterdir() if p.is_dir() and not p.name.startswith("_"))
    assert [role for role in roles if role not in TESTED_IN] == ROLES
    for role, host in TESTED_IN.items():
        scenario = ROOT / "roles" / host / "molecule" / "default"
        assert f"role: medinfra.hospital.{role}" in (scenario / "converge.yml").read_text(encoding="utf-8"), role
        assert (scenario / "tests" / f"test_{role}.py").is_file(), role


def failure_excerpt(output: str) -> str:
    """What a red scenario's reader needs: the failing task or verifier lines (Ansible's `fatal:`, pytest's `E` and
    `FAILED` lines), which the destroy step's output pushes far above the end, then the end itself."""
    failing = [line for line in output.splitlines() if line.startswith(("E ", "FAILED ", "fatal:"))]
    return "\n".join(failing[-100:]) + "\n...\n" + output[-3000:]


@pytest.mark.parametrize("name", SCENARIOS)
def test_molecule(name: str, scenarios: dict[str, Scenario]) -> None:
    scenario = scenarios[name]
    assert scenario.returncode == 0, f"{name} after {scenario.seconds:.0f} s:\n" + failure_excerpt(scenario.output)
