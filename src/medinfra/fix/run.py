"""Running a fix plan: where the findings come from, when changes are allowed, the playbook commands, and what
the re-audit shows against the audit that was fixed. Reading and running live here; the decisions are pure."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, time
from pathlib import Path
from typing import Any, TextIO
from zoneinfo import ZoneInfo

from medinfra.compliance.evaluate import MONITORING_SERVICE
from medinfra.compliance.model import Catalog, Finding, Status
from medinfra.fix.plan import FixPlan
from medinfra.problems import refused
from medinfra.report.model import Report
from medinfra.safe_text import one_line
from medinfra.topology.model import Topology

WINDOW = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-3]):([0-5]\d)$")
RUN_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


@dataclass(frozen=True)
class Window:
    """A daily maintenance window in the site's time zone; it may run past midnight (22:00-04:00)."""

    start: time
    end: time

    def __str__(self) -> str:
        return f"{self.start:%H:%M}-{self.end:%H:%M}"

    def contains(self, moment: time) -> bool:
        if self.start <= self.end:
            return self.start <= moment < self.end
        return moment >= self.start or moment < self.end


def parse_window(text: str) -> Window:
    """`--window HH:MM-HH:MM`; ValueError (argparse's usage error) otherwise."""
    match = WINDOW.match(text)
    if match is None or match.group(1, 2) == match.group(3, 4):
        raise ValueError(f"expected HH:MM-HH:MM with two different times, e.g. 22:00-04:00, got {text!r}")
    hours_a, minutes_a, hours_b, minutes_b = (int(part) for part in match.groups())
    return Window(time(hours_a, minutes_a), time(hours_b, minutes_b))


def window_refusal(window: Window | None, now: datetime, timezone: str | None) -> str | None:
    """Why applying now is refused, or None when it is allowed (no window given, or inside it)."""
    if window is None:
        return None
    zone = ZoneInfo(timezone or "UTC")
    local = now.astimezone(zone)
    if window.contains(local.time().replace(tzinfo=None)):
        return None
    return (f"it is {local:%H:%M} in {zone.key}, outside the maintenance window {window}: nothing was changed; "
            "run again inside the window, or without --window if the change is authorised now")


def with_current_remediation(report: Report, catalog: Catalog) -> Report:
    """The report with each control's remediation as the catalog in use says: what the roles repair today, not what
    they repaired when the audit ran (a run recorded before remediation tags existed has none)."""
    current = {control.id: control.remediation for control in catalog.controls}
    controls = {
        cid: replace(info, remediation_role=current[cid].role, remediation_variables=current[cid].variables,
                     remediation=current[cid].text, remediation_tags=current[cid].tags,
                     remediation_manual=current[cid].manual,
                     remediation_with_services=current[cid].with_services)
        if cid in current else replace(info, remediation_tags=(), remediation_manual=True)
        for cid, info in report.controls.items()
    }
    return replace(report, controls=controls)


@dataclass(frozen=True)
class Step:
    """One ansible-playbook command of a plan: which run of the plan it serves, on which hosts."""

    run: int
    hosts: tuple[str, ...]
    argv: tuple[str, ...]


def playbook_steps(plan: FixPlan, playbooks: Callable[[Sequence[str]], Sequence[Path]], inventory: Path,
                   check: bool, vault_password_file: Path | None = None) -> list[Step]:
    """The commands of a plan, each running `playbooks(tags)`. Applied, a one-at-a-time run is one command per host
    (the next host starts only when the previous one converged without failing); checked, nothing changes, so
    each run is one command."""
    steps = []
    for index, run in enumerate(plan.runs):
        batches = [(host,) for host in run.hosts] if run.one_at_a_time and not check else [run.hosts]
        for hosts in batches:
            argv = ["ansible-playbook", "-i", str(inventory), *map(str, playbooks(run.tags)),
                    "--limit", ",".join((*hosts, *run.with_hosts)), "--tags", ",".join(run.tags)]
            if vault_password_file is not None:
                argv += ["--vault-password-file", str(vault_password_file)]
            if check:
                argv += ["--check", "--diff"]
            steps.append(Step(index, hosts, tuple(argv)))
    return steps


def run_steps(steps: Sequence[Step], stop_at_failure: bool, output: TextIO) -> list[tuple[Step, int]]:
    """Run each command with its output passed through to `output` (the terminal); stop at the first that fails
    when changes are applied. Returns what ran, with exit codes."""
    ansible_playbook = Path(sys.executable).parent / "ansible-playbook"
    done = []
    for step in steps:
        command = [str(ansible_playbook) if ansible_playbook.exists() else step.argv[0], *step.argv[1:]]
        print(f"$ {one_line(' '.join(step.argv))}", file=output, flush=True)
        code = subprocess.run(command, stdout=output, stderr=subprocess.STDOUT, check=False).returncode
        done.append((step, code))
        if code != 0 and stop_at_failure:
            break
    return done


@dataclass(frozen=True)
class Outcome:
    """Per host and control, what the re-audit shows against the audit that was fixed."""

    fixed: tuple[tuple[str, str], ...]
    still_failing: tuple[tuple[str, str], ...]
    newly_failing: tuple[tuple[str, str], ...]
    not_judged: tuple[tuple[str, str], ...]  # failed before, no verdict now (error, host unreachable)

    @property
    def clean(self) -> bool:
        return not (self.still_failing or self.newly_failing or self.not_judged)


def compare(before: Iterable[Finding], after: Iterable[Finding], hosts: Iterable[str],
            planned: Iterable[tuple[str, str]]) -> Outcome:
    """`planned` are the (host, control) failures the fix set out to repair; anything else that fails now on the
    re-audited hosts and did not fail before is newly failing."""
    scope = set(hosts)
    was = {(f.host, f.control): f.status for f in before if f.host in scope}
    now = {(f.host, f.control): f.status for f in after if f.host in scope}
    fixed, still, judged_not = [], [], []
    for key in sorted(set(planned)):
        status = now.get(key)
        if status is Status.FAIL:
            still.append(key)
        elif status in (Status.PASS, Status.NOT_APPLICABLE, Status.WAIVED):
            fixed.append(key)
        else:
            judged_not.append(key)
    newly = sorted(key for key, status in now.items() if status is Status.FAIL and was.get(key) is not Status.FAIL)
    return Outcome(tuple(fixed), tuple(still), tuple(newly), tuple(judged_not))


def reaudit_hosts(changed: Iterable[str], topology: Topology, audited: Iterable[str]) -> list[str]:
    """The changed hosts, plus the hosts whose evidence judges them (the monitoring servers the audit had: without
    them monitoring_coverage has no verdict on any host)."""
    judges = {host.name for host in topology.hosts if MONITORING_SERVICE in host.services}
    return sorted(set(changed) | (judges & set(audited)))


def planned_failures(plan: FixPlan) -> list[tuple[str, str]]:
    """(host, control) pairs the plan's runs repair."""
    return [(host, control) for run in plan.runs for host in run.hosts for control in run.controls]


def source_kind(source: str) -> str:
    """`directory`, `file`, `run-id` (a number from `medinfra history`) or `run-uuid` (a findings run_id)."""
    path = Path(source)
    if path.is_dir():
        return "directory"
    if path.exists():
        return "file"
    if source.isdigit():
        return "run-id"
    if RUN_UUID.match(source):
        return "run-uuid"
    raise refused(source, "neither a report directory, a findings.json, nor a run id or run uuid from the history")


def outcome_record(outcome: Outcome) -> dict[str, list[dict[str, str]]]:
    def pairs(values: Sequence[tuple[str, str]]) -> list[dict[str, str]]:
        return [{"host": host, "control": control} for host, control in values]

    return {"fixed": pairs(outcome.fixed), "still_failing": pairs(outcome.still_failing),
            "newly_failing": pairs(outcome.newly_failing), "not_judged": pairs(outcome.not_judged)}


def plan_record(plan: FixPlan, steps: Sequence[Step]) -> dict[str, Any]:
    return {
        "runs": [{"hosts": list(run.hosts), "tags": list(run.tags), "controls": list(run.controls),
                  "one_at_a_time": run.one_at_a_time, "with_hosts": list(run.with_hosts),
                  "commands": [list(step.argv) for step in steps if step.run == index]}
                 for index, run in enumerate(plan.runs)],
        "left_alone": [{"control": item.control, "hosts": list(item.hosts), "reason": item.reason.en}
                       for item in plan.left_alone],
    }


def plan_text(plan: FixPlan, steps: Sequence[Step]) -> str:
    lines = []
    for index, run in enumerate(plan.runs):
        how = "one host at a time, stopping at the first failure" if run.one_at_a_time else "all hosts together"
        lines.append(f"run {index + 1}: hosts {', '.join(run.hosts)}; tags {', '.join(run.tags)} ({how})")
        if run.with_hosts:
            lines.append(f"  with: {', '.join(run.with_hosts)} (the role's play needs them; they are converged too)")
        lines.append(f"  repairs: {', '.join(run.controls)}")
        lines += [f"  $ {' '.join(step.argv)}" for step in steps if step.run == index]
    if not plan.runs:
        lines.append("nothing a role can repair: no playbook to run")
    for item in plan.left_alone:
        lines.append(f"left alone: {item.control} on {', '.join(item.hosts)}: {item.reason.en}")
    return one_line_each(lines)


def outcome_text(outcome: Outcome) -> str:
    lines = []
    for label, pairs in (("fixed", outcome.fixed), ("still failing", outcome.still_failing),
                         ("newly failing", outcome.newly_failing), ("not judged", outcome.not_judged)):
        lines += [f"{label}: {control} on {host}" for host, control in pairs]
    counts = (f"{len(outcome.fixed)} fixed, {len(outcome.still_failing)} still failing, "
              f"{len(outcome.newly_failing)} newly failing, {len(outcome.not_judged)} not judged")
    return one_line_each([*lines, counts])


def one_line_each(lines: Iterable[str]) -> str:
    """Names come from findings someone may have sent: each line escaped so none can paint another."""
    return "\n".join(one_line(line) for line in lines)

