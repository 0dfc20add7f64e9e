"""Run a drill plan's steps in order against an executor, timing each; undo every break at the end, even after a
failure or an interruption. Pure: the executor does the work on hosts (medinfra.drill.remote over SSH, a fake in
tests) and the clock is injected."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from medinfra.drill.evidence import DRILL_FORMAT
from medinfra.drill.plan import Break, Expect, ExpectAlerts, Plan, Restore, Step


class StepFailed(Exception):
    """A step did not do or see what it should: the message says what happened (one line)."""


class Executor(Protocol):
    """What runs on hosts. Each method returns a one-line detail on success and raises StepFailed otherwise."""

    def apply(self, step: Break) -> str: ...

    def undo(self, step: Break) -> str: ...

    def expect_alerts(self, step: ExpectAlerts) -> str: ...

    def expect(self, step: Expect) -> str: ...


@dataclass(frozen=True)
class StepResult:
    index: int  # 1-based position in the plan; 0 for the restores the runner adds at the end
    kind: str
    label: str
    passed: bool
    seconds: float
    detail: str


@dataclass(frozen=True)
class PlanRun:
    started: datetime
    finished: datetime
    steps: tuple[StepResult, ...]
    interrupted: bool = False

    @property
    def passed(self) -> bool:
        return all(step.passed for step in self.steps)


def kind_of(step: Step) -> str:
    return {Break: "break", ExpectAlerts: "expect_alerts", Expect: "expect", Restore: "restore"}[type(step)]


def _perform(step: Step, executor: Executor) -> str:
    if isinstance(step, Break):
        return executor.apply(step)
    if isinstance(step, Restore):
        return executor.undo(step.target)
    if isinstance(step, ExpectAlerts):
        return executor.expect_alerts(step)
    return executor.expect(step)


def run_plan(
    plan: Plan,
    executor: Executor,
    report: Callable[[StepResult], None] = lambda result: None,
    clock: Callable[[], float] = time.monotonic,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> PlanRun:
    """Each step in order until one fails; then every break not yet restored is undone, newest first.

    A break counts as in effect from the moment it is attempted (it may have half happened when it failed), so it
    is undone too. Ctrl-C during a step ends the drill as failed (`interrupted`); any other error of the executor
    propagates, after the restores. `report` hears of each step as it ends.
    """
    started, results, active, interrupted = now(), [], {}, False

    def record(index: int, step: Step, passed: bool, began: float, detail: str) -> None:
        result = StepResult(index, kind_of(step), step.label, passed, round(clock() - began, 3), detail)
        results.append(result)
        report(result)

    try:
        for index, step in enumerate(plan.steps, start=1):
            if isinstance(step, Break):
                active[step.name] = step
            began = clock()
            try:
                detail = _perform(step, executor)
            except StepFailed as exc:
                record(index, step, False, began, str(exc))
                break
            except KeyboardInterrupt:
                # Ctrl-C: the drill ends here, failed, and is still restored and published.
                record(index, step, False, began, "interrupted")
                interrupted = True
                break
            if isinstance(step, Restore):
                active.pop(step.target.name, None)
            record(index, step, True, began, detail)
    finally:
        # Also on Ctrl-C or an executor's unexpected error: a drill never leaves a host broken.
        for name in reversed(list(active)):
            restore = Restore(active[name])
            began = clock()
            try:
                record(0, restore, True, began, executor.undo(restore.target))
            except StepFailed as exc:
                record(0, restore, False, began, str(exc))
    return PlanRun(started, now(), tuple(results), interrupted)


def timestamp(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def plan_document(site: str, plan: Plan, run: PlanRun) -> dict[str, Any]:
    """The drill document (medinfra-drill/1, kind plan) publish_drill takes."""
    return {
        "format": DRILL_FORMAT,
        "kind": "plan",
        "site": site,
        "started": timestamp(run.started),
        "finished": timestamp(run.finished),
        "passed": run.passed,
        "result": {
            "interrupted": run.interrupted,
            "name": plan.name,
            "description": plan.description,
            "plan_file": plan.file,
            "steps": [asdict(step) for step in run.steps],
        },
    }


def step_line(result: StepResult, total: int) -> str:
    """`[2/5] PASS  87.3 s  expect alerts ExporterDown ...: detail` (the restores at the end: `[end]`)."""
    where = f"[{result.index}/{total}]" if result.index else "[end]"
    verdict = "PASS" if result.passed else "FAIL"
    detail = f": {result.detail}" if result.detail else ""
    return f"{where} {verdict} {result.seconds:7.1f} s  {result.label}{detail}"
