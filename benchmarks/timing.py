"""Wall time and controller CPU of one tool run: what every lab benchmark reports."""

from __future__ import annotations

import resource
import time
from dataclasses import dataclass
from pathlib import Path

from medinfra.toolenv import run_tool

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Timed:
    seconds: float
    controller_cpu: float  # user + system of the tool and every process it waited for
    code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(*args: str, timeout: float | None = None) -> Timed:
    """Run a tool of the venv (`medinfra`, `ansible-playbook`...) from the project root, timed."""
    cpu, started = children_cpu(), time.monotonic()
    done = run_tool(ROOT, *args, timeout=timeout)
    return Timed(time.monotonic() - started, children_cpu() - cpu, done.returncode, done.stdout, done.stderr)
