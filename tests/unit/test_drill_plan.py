"""Drill plans: schema and inventory errors located (file, path, line), and the runner's order, timing and the
restores it owes even when a step fails or the run is interrupted (a fake executor, a fake clock)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from medinfra.cli import main
from medinfra.drill.evidence import check_document
from medinfra.drill.plan import Break, Expect, ExpectAlerts, load_plan
from medinfra.drill.runner import StepFailed, StepResult, plan_document, run_plan, step_line
from medinfra.problems import UserInputError
from tests.conftest import ROOT

LAB_DRILLS = ROOT / "drill-plans" / "lab"
LAB_HOSTS = {"fw", "monitor-01", "backup-01", "his-app", "his-db", "his-db-2", "ws-01"}

GOOD = """\
name: backup-server-lost
description: the backup server is cut off
steps:
  - {kind: break, name: cut, host: backup-01, action: isolate}
  - {kind: expect_alerts, alerts: [ExporterDown], labels: {instance: backup-01}, within: 240}
  - {kind: restore, break: cut}
  - {kind: expect, host: monitor-01, command: "true", within: 60}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "plan.yml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("name", ["backup-server-lost", "zone-firewall-restarted", "his-db-lost"])
def test_the_lab_plans_are_valid_for_the_lab(name: str) -> None:
    plan = load_plan(LAB_DRILLS / f"{name}.yml", LAB_HOSTS)
    assert plan.name == name
    breaks = [step for step in plan.steps if isinstance(step, Break)]
    assert breaks, "a drill breaks something"


def test_a_good_plan_becomes_steps(tmp_path: Path) -> None:
    plan = load_plan(write(tmp_path, GOOD), LAB_HOSTS)
    cut = Break("cut", "backup-01", "isolate")
    assert plan.steps[0] == cut
    assert plan.steps[1] == ExpectAlerts(("ExporterDown",), 240.0, {"instance": "backup-01"})
    assert plan.steps[3] == Expect("monitor-01", "true", 60.0)
    assert plan.hosts == {"backup-01", "monitor-01"}


@pytest.mark.parametrize(
    ("text", "where", "message"),
    [
        (GOOD.replace("action: isolate", "action: explode"), "steps[0].action:4", "is not one of"),
        (GOOD.replace("within: 240", "within: -1"), "steps[1].within:5", "less than or equal to the minimum"),
        (GOOD.replace("host: monitor-01, ", ""), "steps[3]:7", "'host' is a required property"),
        (GOOD.replace("kind: restore", "kind: repair"), "steps[2].kind:6", "is not one of"),
        (GOOD.replace("action: isolate", "action: stop_unit"), "steps[0]:4", "'unit' is a required property"),
        (GOOD.replace("restore, break: cut", "restore, break: snip"), "steps[2].break:6", "no earlier break"),
        (GOOD.replace("host: backup-01, action", "host: backup-02, action"), "steps[0].host:4",
         "'backup-02' is not a host of the inventory"),
        (GOOD + "  - {kind: restore, break: cut}\n", "steps[4].break:8", "restored twice"),
        (GOOD.replace("description: the backup server is cut off\n", ""), "(top level):1",
         "'description' is a required property"),
        ("- just a list\n", "(top level):1", "must be a YAML mapping"),
    ],
)
def test_bad_plans_are_refused_located(tmp_path: Path, text: str, where: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(UserInputError) as caught:
        load_plan(path, LAB_HOSTS)
    shown = [str(problem) for problem in caught.value.problems]
    assert any(line.startswith(f"{path}:{where.split(':')[1]}: {where.split(':')[0]}: ") and message in line
               for line in shown), shown


def test_drill_run_refuses_a_bad_plan_with_exit_2_and_runs_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, GOOD.replace("host: backup-01, action", "host: nowhere, action"))
    code = main(["drill", "run", str(path), "-i", str(ROOT / "inventories" / "lab"), "--no-history",
                 "--evidence", str(tmp_path / "evidence")])
    assert code == 2
    assert f"{path}:4: steps[0].host: 'nowhere' is not a host of the inventory" in capsys.readouterr().err
    assert not (tmp_path / "evidence").exists()


class FakeExecutor:
    """Records what it was asked to do; fails the steps named in `failing`; each call takes 1.5 s of fake time."""

    def __init__(self, clock: list[float], failing: set[str] = frozenset(), interrupt: str | None = None) -> None:
        self.calls: list[str] = []
        self.clock, self.failing, self.interrupt = clock, failing, interrupt

    def _do(self, what: str) -> str:
        self.calls.append(what)
        self.clock[0] += 1.5
        if what == self.interrupt:
            raise KeyboardInterrupt
        if what in self.failing:
            raise StepFailed(f"{what} failed")
        return f"{what} done"

    def apply(self, step: Break) -> str:
        return self._do(f"apply {step.name}")

    def undo(self, step: Break) -> str:
        return self._do(f"undo {step.name}")

    def expect_alerts(self, step: ExpectAlerts) -> str:
        return self._do(f"alerts {','.join(step.alerts)}")

    def expect(self, step: Expect) -> str:
        return self._do(f"expect {step.host}")


TWO_BREAKS = """\
name: two-breaks
description: two things broken, one restored by the plan
steps:
  - {kind: break, name: first, host: backup-01, action: stop_unit, unit: ssh.service}
  - {kind: break, name: second, host: fw, action: restart_unit, unit: nftables.service}
  - {kind: restore, break: first}
  - {kind: expect_alerts, alerts: [ExporterDown], within: 60}
  - {kind: expect, host: monitor-01, command: "true", within: 5}
"""


def run(tmp_path: Path, failing: set[str] = frozenset(), interrupt: str | None = None,
        ) -> tuple[FakeExecutor, list[StepResult], object]:
    plan = load_plan(write(tmp_path, TWO_BREAKS), LAB_HOSTS)
    clock = [100.0]
    executor = FakeExecutor(clock, failing, interrupt)
    heard: list[StepResult] = []
    moments = iter([datetime(2026, 12, 6, 18, 0, tzinfo=UTC), datetime(2026, 12, 6, 18, 1, tzinfo=UTC)])
    outcome = run_plan(plan, executor, heard.append, lambda: clock[0], lambda: next(moments))
    return executor, heard, (plan, outcome)


def test_every_step_runs_in_order_and_the_unrestored_break_is_undone_at_the_end(tmp_path: Path) -> None:
    executor, heard, (plan, outcome) = run(tmp_path)
    assert executor.calls == ["apply first", "apply second", "undo first", "alerts ExporterDown", "expect monitor-01",
                              "undo second"]
    assert [(r.index, r.kind, r.passed, r.seconds) for r in heard] == [
        (1, "break", True, 1.5), (2, "break", True, 1.5), (3, "restore", True, 1.5), (4, "expect_alerts", True, 1.5),
        (5, "expect", True, 1.5), (0, "restore", True, 1.5)]
    assert outcome.passed and outcome.steps == tuple(heard)
    document = plan_document("lab", plan, outcome)
    check_document(document)
    assert (document["started"], document["finished"]) == ("2026-12-06T18:00:00.000Z", "2026-12-06T18:01:00.000Z")
    assert document["result"]["steps"][3]["label"] == "expect alerts ExporterDown within 60 s"
    assert step_line(heard[3], 5) == (
        "[4/5] PASS     1.5 s  expect alerts ExporterDown within 60 s: alerts ExporterDown done")
    assert step_line(heard[5], 5).startswith("[end] PASS     1.5 s  restore second on fw")


def test_a_failed_step_ends_the_drill_and_every_break_is_still_undone(tmp_path: Path) -> None:
    executor, heard, (_plan, outcome) = run(tmp_path, failing={"alerts ExporterDown"})
    assert executor.calls == ["apply first", "apply second", "undo first", "alerts ExporterDown", "undo second"]
    assert not outcome.passed
    assert [(r.kind, r.passed, r.detail) for r in heard][3:] == [
        ("expect_alerts", False, "alerts ExporterDown failed"), ("restore", True, "undo second done")]


def test_a_break_that_fails_half_way_is_undone_and_so_are_the_earlier_ones_newest_first(tmp_path: Path) -> None:
    executor, heard, (_plan, outcome) = run(tmp_path, failing={"apply second", "undo second"})
    assert executor.calls == ["apply first", "apply second", "undo second", "undo first"]
    assert [(r.index, r.passed) for r in heard] == [(1, True), (2, False), (0, False), (0, True)]
    assert not outcome.passed


def test_an_interrupted_drill_fails_and_still_undoes_its_breaks(tmp_path: Path) -> None:
    executor, heard, (_plan, outcome) = run(tmp_path, interrupt="alerts ExporterDown")
    assert executor.calls == ["apply first", "apply second", "undo first", "alerts ExporterDown", "undo second"]
    assert outcome.interrupted and not outcome.passed
    assert [(r.kind, r.passed, r.detail) for r in heard][3:] == [
        ("expect_alerts", False, "interrupted"), ("restore", True, "undo second done")]


def test_isolation_keeps_ssh_from_the_management_zones_and_the_controller() -> None:
    from medinfra.drill.remote import controller_address, management_sources, monitoring_server
    from medinfra.topology import load_topology

    lab = load_topology(ROOT / "inventories" / "lab" / "hospital.yml")
    assert management_sources(lab) == ["10.231.10.0/24"]
    assert monitoring_server(lab) == "monitor-01"
    # The route's source address, found without sending anything.
    assert controller_address("127.0.0.1", 22) == "127.0.0.1"
