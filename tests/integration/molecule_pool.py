"""Every role's Molecule scenario, run in the background from the start of the test session.

A scenario is mostly waiting on systemd, apt and Ansible's round trips, as are the lab tests; the unit tests use one
core. Started when collection finishes, the scenarios share the machine with the rest of `make test` instead of
running after it (test_molecule.py collects their results).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import tempfile
import threading
import time
from collections import deque
from collections.abc import Collection
from typing import NamedTuple

from medinfra.lab.image import PLAIN_IMAGE, ensure_image
from medinfra.toolenv import BIN, run_tool, tool_env
from tests.conftest import ROOT

ROLES = sorted(p.parent.parent.parent.name for p in ROOT.glob("roles/*/molecule/default/molecule.yml"))
# Each scenario: Molecule's project directory and the scenario's name there.
SCENARIOS = {role: (ROOT / "roles" / role, "default") for role in ROLES} | {"plain": (ROOT, "plain")}
# Two scenarios at a time: each has its own containers and network. The longest starts first.
PARALLEL = 2
LONGEST_FIRST = ("monitoring_server", "backup", "rtc_relay", "database_ha", "plain")
SCENARIO_TIMEOUT = 1800


class Scenario(NamedTuple):
    returncode: int
    output: str
    seconds: float


class MoleculePool:
    """The scenarios, `PARALLEL` at a time on worker threads; `cancel` kills what runs and starts nothing more."""

    def __init__(self, names: Collection[str]) -> None:
        order = [*(name for name in LONGEST_FIRST if name in names),
                 *sorted(name for name in names if name not in LONGEST_FIRST)]
        self._queue = deque(order)
        self._lock = threading.Lock()
        self._running: dict[str, subprocess.Popen[str]] = {}
        self._cancelled = False
        self.results: dict[str, Scenario] = {}
        self.started = time.monotonic()
        self.finished: float | None = None
        self._images: dict[str, str] | None = None
        self._image_error: str | None = None
        # What building the images said: not printed from this thread, where a unit test's capture would take it.
        self.said: list[str] = []
        self._thread = threading.Thread(target=self._run_all, name="molecule-pool", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run_all(self) -> None:
        image = run_tool(ROOT, "medinfra", "lab", "image")
        if image.returncode != 0:
            self._image_error = image.stderr
        else:
            self._images = {"MEDINFRA_LAB_IMAGE": image.stdout.strip(),
                            "MEDINFRA_PLAIN_IMAGE": ensure_image(self.said.append, PLAIN_IMAGE)}
            workers = [threading.Thread(target=self._work, name=f"molecule-{n}", daemon=True)
                       for n in range(PARALLEL)]
            for worker in workers:
                worker.start()
            for worker in workers:
                worker.join()
        self.finished = time.monotonic()

    def _work(self) -> None:
        while True:
            with self._lock:
                if self._cancelled or not self._queue:
                    return
                name = self._queue.popleft()
            self.results[name] = self._run(name)

    def _run(self, name: str) -> Scenario:
        assert self._images is not None
        project, scenario = SCENARIOS[name]
        started = time.monotonic()
        # Molecule names its working directory after the project directory and the scenario ("default" everywhere),
        # so every role would share one inventory and one pki CA directory; each scenario gets its own.
        with tempfile.TemporaryDirectory(prefix=f"molecule-{name}-") as ephemeral:
            env = {**tool_env(ROOT), **self._images, "PY_COLORS": "0", "MOLECULE_EPHEMERAL_DIRECTORY": ephemeral}
            with self._lock:
                if self._cancelled:
                    return Scenario(-1, "cancelled before it started", 0.0)
                # Its own session, so that cancel can kill Molecule and the ansible-playbook it runs together.
                process = subprocess.Popen(
                    [str(BIN / "molecule"), "-c", str(ROOT / "molecule/base.yml"), "test", "-s", scenario],
                    cwd=project, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                    start_new_session=True,
                )
                self._running[name] = process
            try:
                output, _ = process.communicate(timeout=SCENARIO_TIMEOUT)
            except subprocess.TimeoutExpired:
                _kill(process)
                output, _ = process.communicate()
                output += f"\n(killed after {SCENARIO_TIMEOUT} s)"
            finally:
                with self._lock:
                    self._running.pop(name, None)
        return Scenario(process.returncode, output, time.monotonic() - started)

    def wait(self) -> dict[str, Scenario]:
        """Every scenario's outcome, once all have run."""
        self._thread.join()
        assert self._image_error is None, self._image_error
        return self.results

    def cancel(self) -> None:
        with self._lock:
            self._cancelled = True
            running = list(self._running.values())
        for process in running:
            _kill(process)


def _kill(process: subprocess.Popen[str]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)


pool: MoleculePool | None = None


def start(names: Collection[str]) -> None:
    """Start the scenarios once per session (pytest_collection_finish calls this with the ones selected)."""
    global pool
    if pool is None:
        pool = MoleculePool(names)
        pool.start()


def stop() -> None:
    if pool is not None:
        pool.cancel()
