"""Every role's Molecule scenario (syntax, check, converge, idempotence, verify) on the lab image, and the shared
scenario `plain`: the roles every host gets, on a stock Debian 12 host that the roles must equip themselves."""

from __future__ import annotations

import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple

import pytest

from medinfra.lab.image import PLAIN_IMAGE, ensure_image
from medinfra.toolenv import BIN, run_tool, tool_env
from tests.conftest import ROOT

pytestmark = pytest.mark.integration

ROLES = sorted(p.parent.parent.parent.name for p in ROOT.glob("roles/*/molecule/default/molecule.yml"))
# Each scenario: Molecule's project directory and the scenario's name there.
SCENARIOS = {role: (ROOT / "roles" / role, "default") for role in ROLES} | {"plain": (ROOT, "plain")}
# Two scenarios at a time: each has its own containers and network, and most of a scenario is waiting on systemd,
# apt and Ansible's round trips, so two share the 2 cores well. The longest starts first.
PARALLEL = 2
LONGEST_FIRST = ("monitoring_server", "backup", "rtc_relay", "plain")


class Scenario(NamedTuple):
    returncode: int
    output: str
    seconds: float


def run_scenario(name: str, images: dict[str, str]) -> Scenario:
    project, scenario = SCENARIOS[name]
    started = time.monotonic()
    # Molecule names its working directory after the project directory and the scenario ("default" everywhere), so
    # every role would share one inventory and one pki CA directory; each scenario gets its own.
    with tempfile.TemporaryDirectory(prefix=f"molecule-{name}-") as ephemeral:
        env = {**tool_env(ROOT), **images, "PY_COLORS": "0", "MOLECULE_EPHEMERAL_DIRECTORY": ephemeral}
        result = subprocess.run(
            [str(BIN / "molecule"), "-c", str(ROOT / "molecule/base.yml"), "test", "-s", scenario],
            cwd=project,
            env=env,
            capture_output=True,
            text=True,
            check=False,
            timeout=1800,
        )
    return Scenario(result.returncode, result.stdout + result.stderr, time.monotonic() - started)


@pytest.fixture(scope="module")
def scenarios(request: pytest.FixtureRequest) -> dict[str, Scenario]:
    image = run_tool(ROOT, "medinfra", "lab", "image")
    assert image.returncode == 0, image.stderr
    images = {"MEDINFRA_LAB_IMAGE": image.stdout.strip(), "MEDINFRA_PLAIN_IMAGE": ensure_image(print, PLAIN_IMAGE)}
    order = [*LONGEST_FIRST, *(name for name in SCENARIOS if name not in LONGEST_FIRST)]
    started = time.monotonic()
    with ThreadPoolExecutor(PARALLEL) as pool:
        futures = {name: pool.submit(run_scenario, name, images) for name in order}
        results = {role: future.result() for role, future in futures.items()}
    # The figures that decide PARALLEL and LONGEST_FIRST, in CI's log.
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(f"\nMolecule: {time.monotonic() - started:.0f} s in all, {PARALLEL} at a time")
        for role, scenario in sorted(results.items(), key=lambda item: -item[1].seconds):
            reporter.write_line(f"  {role}: {scenario.seconds:.0f} s, exit {scenario.returncode}")
    return results


def test_every_role_has_a_scenario() -> None:
    """Internal roles (roles/_common) run inside the scenarios of the roles that include them."""
    roles = sorted(p.name for p in (ROOT / "roles").iterdir() if p.is_dir() and not p.name.startswith("_"))
    assert roles == ROLES


def failure_excerpt(output: str) -> str:
    """What a red scenario's reader needs: the failing task or verifier lines (Ansible's `fatal:`, pytest's `E` and
    `FAILED` lines), which the destroy step's output pushes far above the end, then the end itself."""
    failing = [line for line in output.splitlines() if line.startswith(("E ", "FAILED ", "fatal:"))]
    return "\n".join(failing[-100:]) + "\n...\n" + output[-3000:]


@pytest.mark.parametrize("name", SCENARIOS)
def test_molecule(name: str, scenarios: dict[str, Scenario]) -> None:
    scenario = scenarios[name]
    assert scenario.returncode == 0, f"{name} after {scenario.seconds:.0f} s:\n" + failure_excerpt(scenario.output)
