"""Every role's Molecule scenario, run in the background from the start of the test session.

A scenario is mostly waiting on systemd, apt and Ansible's round trips, as are the lab tests; the unit tests use one
core. Started when collection finishes, the scenarios share the machine with the rest of `make test` instead of
running after it (test_molecule.py collects their results).

The pool is a process of its own (`python -m tests.integration.molecule_pool RESULTS NAME...`), not threads of
pytest's: once a test imports the audit's transport, gevent patches pytest's subprocess module, and a scenario
started from a second thread then deadlocked against the test's own subprocesses in gevent's fork watcher.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Collection, Sequence
from pathlib import Path
from types import FrameType
from typing import IO, NamedTuple

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
# The pool's whole run: the images, then every scenario two at a time.
POOL_TIMEOUT = 5400


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

    def run(self) -> None:
        images = {"MEDINFRA_LAB_IMAGE": lab_image(), "MEDINFRA_PLAIN_IMAGE": ensure_image(print, PLAIN_IMAGE)}
        workers = [threading.Thread(target=self._work, args=(images,), name=f"molecule-{n}") for n in range(PARALLEL)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()

    def _work(self, images: dict[str, str]) -> None:
        while True:
            with self._lock:
                if self._cancelled or not self._queue:
                    return
                name = self._queue.popleft()
            self.results[name] = self._run(name, images)

    def _run(self, name: str, images: dict[str, str]) -> Scenario:
        project, scenario = SCENARIOS[name]
        started = time.monotonic()
        # Molecule names its working directory after the project directory and the scenario ("default" everywhere),
        # so every role would share one inventory and one pki CA directory; each scenario gets its own.
        with tempfile.TemporaryDirectory(prefix=f"molecule-{name}-") as ephemeral:
            env = {**tool_env(ROOT), **images, "PY_COLORS": "0", "MOLECULE_EPHEMERAL_DIRECTORY": ephemeral}
            with self._lock:
                if self._cancelled:
                    return Scenario(-1, "cancelled before it started", 0.0)
                # Its own session, so that cancel kills Molecule and the ansible-playbook it runs together.
                process = subprocess.Popen(
                    [str(BIN / "molecule"), "-c", str(ROOT / "molecule/base.yml"), "test", "-s", scenario],
                    cwd=project, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                    start_new_session=True,
                )
                self._running[name] = process
            try:
                output, _ = process.communicate(timeout=SCENARIO_TIMEOUT)
            except subprocess.TimeoutExpired:
                kill_group(process.pid)
                output, _ = process.communicate()
                output += f"\n(killed after {SCENARIO_TIMEOUT} s)"
            finally:
                with self._lock:
                    self._running.pop(name, None)
        return Scenario(process.returncode, output, time.monotonic() - started)

    def cancel(self) -> None:
        with self._lock:
            self._cancelled = True
            running = list(self._running.values())
        for process in running:
            kill_group(process.pid)


def lab_image() -> str:
    image = run_tool(ROOT, "medinfra", "lab", "image")
    if image.returncode != 0:
        raise RuntimeError(f"medinfra lab image failed:\n{image.stderr}")
    return image.stdout.strip()


def kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGTERM)


def main(argv: Sequence[str]) -> int:
    """Run the named scenarios and write {name: [returncode, output, seconds]} (or {"error": text}) to RESULTS."""
    results_file, names = Path(argv[0]), argv[1:]
    pool = MoleculePool(names)

    def cancel(signum: int, frame: FrameType | None) -> None:
        pool.cancel()

    signal.signal(signal.SIGTERM, cancel)
    try:
        pool.run()
        outcome: dict[str, object] = {name: list(scenario) for name, scenario in pool.results.items()}
    except Exception as exc:  # any failure to start is the test's failure, told in its message
        outcome = {"error": f"{type(exc).__name__}: {exc}"}
    results_file.write_text(json.dumps(outcome), encoding="utf-8")
    return 0


class Background(NamedTuple):
    """The pool's process, started by pytest, and where it writes."""

    process: subprocess.Popen[bytes]
    results: Path
    log: IO[bytes]
    started: float


background: Background | None = None


def start(names: Collection[str], scratch: Path) -> None:
    """Start the pool's process once per session (conftest's pytest_collection_finish, with the selected names)."""
    global background
    if background is not None:
        return
    scratch.mkdir(parents=True, exist_ok=True)
    log = (scratch / "molecule-pool.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.integration.molecule_pool", str(scratch / "molecule-pool.json"), *names],
        cwd=ROOT, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    background = Background(process, scratch / "molecule-pool.json", log, time.monotonic())


# The pool's figures for the session's summary: how long it took from the session's start, and each scenario.
figures: list[str] = []


def wait() -> dict[str, Scenario]:
    """Every scenario's outcome once all have run."""
    assert background is not None, "conftest's pytest_collection_finish starts the pool"
    background.process.wait(timeout=POOL_TIMEOUT)
    took = time.monotonic() - background.started
    log = Path(background.log.name).read_text(encoding="utf-8", errors="replace")
    exit_code = background.process.returncode
    assert background.results.exists(), f"the Molecule pool wrote no results (exit {exit_code}):\n{log[-5000:]}"
    outcome = json.loads(background.results.read_text(encoding="utf-8"))
    assert "error" not in outcome, f"{outcome['error']}\n{log[-5000:]}"
    results = {name: Scenario(*values) for name, values in outcome.items()}
    figures.append(f"Molecule: {took:.0f} s in all from the session's start, {PARALLEL} at a time")
    figures.extend(f"  {name}: {scenario.seconds:.0f} s, exit {scenario.returncode}"
                   for name, scenario in sorted(results.items(), key=lambda item: -item[1].seconds))
    return results


def stop() -> None:
    """An interrupted or finished session leaves no scenario running: the pool kills its scenarios on SIGTERM."""
    if background is not None and background.process.poll() is None:
        background.process.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            background.process.wait(timeout=30)
    if background is not None:
        background.log.close()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
