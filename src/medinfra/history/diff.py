"""What changed between two audit runs of a site (new failures, fixes, hosts, scores), and the terminal text for
runs and their differences, and their JSON records. Pure: no I/O. Texts from the documents are shown through
safe_text.one_line: a host's reason must not move the cursor or paint a line of its own."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from medinfra.audit.results import framework_rank, percent
from medinfra.history.store import STARTED_FORMAT, DrillInfo, RunInfo
from medinfra.safe_text import one_line
from medinfra.terminal import PLAIN, Palette

FAILING = frozenset({"fail", "error"})
# A failure that becomes one of these was dealt with: fixed, accepted (waived) or no longer relevant.
RESOLVED = frozenset({"pass", "waived", "not_applicable"})
FRAMEWORK_LABELS = {"hipaa": "HIPAA", "gbt22239": "GB/T 22239", "cis_debian12": "CIS"}
REASON_WIDTH = 120


@dataclass(frozen=True)
class Change:
    """One (host, control) whose standing changed; status and reason are run B's, before is A's status."""

    host: str
    control: str
    status: str
    reason: str
    before: str | None


@dataclass(frozen=True)
class HostChange:
    """A host audited in only one run: its failing findings there, and its state in run B."""

    name: str
    failing: int
    status: str
    reason: str


@dataclass(frozen=True)
class ScoreChange:
    """A score in run A and in run B; scope is "overall" or a framework key such as "hipaa"."""

    scope: str
    before: float | None
    after: float | None

    @property
    def delta(self) -> float | None:
        if self.before is None or self.after is None:
            return None
        return self.after - self.before


@dataclass(frozen=True)
class RunDiff:
    """Run B against run A, each part sorted by host and control (or host name)."""

    new_failures: tuple[Change, ...]
    fixed: tuple[Change, ...]
    hosts_added: tuple[HostChange, ...]
    hosts_removed: tuple[HostChange, ...]
    score_change: ScoreChange
    framework_changes: tuple[ScoreChange, ...]


@dataclass(frozen=True)
class Result:
    status: str
    reason: str


def results(document: Mapping[str, Any]) -> dict[tuple[str, str], Result]:
    return {(f["host"], f["control"]): Result(f["status"], f.get("reason") or "") for f in document["findings"]}


def audited(document: Mapping[str, Any]) -> set[str]:
    return {h["name"] for h in document["hosts"] if h["status"] == "audited"}


def failing_by_host(by_key: Mapping[tuple[str, str], Result]) -> Counter[str]:
    return Counter(host for (host, _), result in by_key.items() if result.status in FAILING)


def host_state(document: Mapping[str, Any], name: str) -> tuple[str, str]:
    """Status and reason of a host in a run; a host left out of the run is "absent"."""
    for host in document["hosts"]:
        if host["name"] == name:
            return host["status"], host.get("reason") or ""
    return "absent", ""


def framework_order(names: Iterable[str]) -> list[str]:
    return sorted(set(names), key=lambda n: (framework_rank(n), n))


def score(summary: Mapping[str, Any], scope: str) -> float | None:
    value = summary.get(scope, {}).get("score")
    return float(value) if value is not None else None


def score_changes(a: Mapping[str, Any], b: Mapping[str, Any]) -> tuple[ScoreChange, tuple[ScoreChange, ...]]:
    summary_a, summary_b = a.get("summary", {}), b.get("summary", {})
    frameworks_a, frameworks_b = summary_a.get("per_framework", {}), summary_b.get("per_framework", {})
    overall = ScoreChange("overall", score(summary_a, "overall"), score(summary_b, "overall"))
    per_framework = tuple(
        ScoreChange(name, score(frameworks_a, name), score(frameworks_b, name))
        for name in framework_order([*frameworks_a, *frameworks_b])
    )
    return overall, per_framework


def diff_runs(a: Mapping[str, Any], b: Mapping[str, Any]) -> RunDiff:
    """Compare findings documents A (older) and B (newer); findings are compared for hosts audited in both."""
    before, after = results(a), results(b)
    hosts_a, hosts_b = audited(a), audited(b)
    both = hosts_a & hosts_b
    new_failures, fixed = [], []
    for key in sorted(after):
        if key[0] not in both:
            continue
        new, old = after[key], before.get(key)
        old_status = old.status if old else None
        if new.status in FAILING and old_status not in FAILING:
            new_failures.append(Change(*key, new.status, new.reason, old_status))
        elif new.status in RESOLVED and old_status in FAILING:
            fixed.append(Change(*key, new.status, new.reason, old_status))
    overall, per_framework = score_changes(a, b)
    failing_a, failing_b = failing_by_host(before), failing_by_host(after)
    return RunDiff(
        new_failures=tuple(new_failures),
        fixed=tuple(fixed),
        hosts_added=tuple(HostChange(n, failing_b[n], "audited", "") for n in sorted(hosts_b - hosts_a)),
        hosts_removed=tuple(HostChange(n, failing_a[n], *host_state(b, n)) for n in sorted(hosts_a - hosts_b)),
        score_change=overall,
        framework_changes=per_framework,
    )


def shorten(text: str, width: int = REASON_WIDTH) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def score_line(change: ScoreChange) -> str:
    label = FRAMEWORK_LABELS.get(change.scope, one_line(change.scope))  # "overall" and unknown frameworks as named
    delta = change.delta
    moved = "" if delta is None else f" ({delta * 100:+.1f} points)"
    return f"  {label:<11} {percent(change.before).strip()} → {percent(change.after).strip()}{moved}"


def title(controls: Mapping[str, Any], control: str) -> str:
    names = controls.get(control, {}).get("title", {})
    return one_line(" / ".join(t for t in (names.get("en"), names.get("zh")) if t))


def change_lines(changes: Iterable[Change], controls: Mapping[str, Any], paint: Palette) -> list[str]:
    lines = []
    for change in changes:
        was = f"was {paint.status(one_line(change.before))}" if change.before else "not evaluated before"
        status = paint.status(one_line(change.status))
        lines.append(f"  {one_line(change.host)} {one_line(change.control)}: {status} ({was})")
        if name := title(controls, change.control):
            lines.append(f"    {name}")
        if change.reason:
            lines.append(f"    {shorten(one_line(change.reason))}")
    return lines


def diff_text(diff: RunDiff, controls: Mapping[str, Any], paint: Palette = PLAIN) -> str:
    """The diff for a terminal; control titles (English / 中文) come from the newer run's `controls`."""
    lines = ["score:", score_line(diff.score_change), *(score_line(c) for c in diff.framework_changes)]
    lines.append(paint.count(f"new failures: {len(diff.new_failures)}", "fail", len(diff.new_failures)))
    lines += change_lines(diff.new_failures, controls, paint)
    resolved = f"resolved (fixed, waived or no longer applicable): {len(diff.fixed)}"
    lines.append(paint.count(resolved, "pass", len(diff.fixed)))
    lines += change_lines(diff.fixed, controls, paint)
    lines.append(f"hosts added: {len(diff.hosts_added)}")
    lines += [f"  {one_line(h.name)}: {paint.count(f'{h.failing} failing', 'fail', h.failing)}"
              for h in diff.hosts_added]
    lines.append(f"hosts no longer audited: {len(diff.hosts_removed)}")
    for host in diff.hosts_removed:
        why = f": {one_line(host.reason)}" if host.reason else ""
        status = paint.status(one_line(host.status))
        lines.append(f"  {one_line(host.name)}: {status}{why} (had {host.failing} failing)")
    return "\n".join(lines)


def run_label(run: RunInfo) -> str:
    return f"run {run.id} of {one_line(run.site)} at {run.started_at:%Y-%m-%d %H:%M:%S} UTC"


def runs_table(runs: Sequence[RunInfo], paint: Palette = PLAIN) -> str:
    """One line per run: when, where, how many hosts were audited (painted when not all were), and the scores."""
    header = ("id", "started (UTC)", "site", "transport", "hosts", "overall", *FRAMEWORK_LABELS.values())
    rows = [
        (
            str(run.id),
            f"{run.started_at:%Y-%m-%d %H:%M:%S}",
            one_line(run.site),
            one_line(run.transport),
            f"{run.hosts_audited}/{run.hosts_total}",
            percent(run.score),
            *(percent(run.framework_scores.get(name)) for name in FRAMEWORK_LABELS),
        )
        for run in runs
    ]
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]
    # Text columns (started, site, transport) read left to right; numbers line up on the right.
    left = {1, 2, 3}
    hosts_column = header.index("hosts")
    incomplete = [False, *(run.hosts_audited < run.hosts_total for run in runs)]
    lines = []
    for row, short in zip((header, *rows), incomplete, strict=True):
        cells = [cell.ljust(w) if i in left else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths,
                                                                                                   strict=True))]
        if short:  # painted after padding, so the escape codes do not count towards the width
            text = row[hosts_column]
            cells[hosts_column] = cells[hosts_column].replace(text, paint.status(text, "unreachable"))
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def run_record(run: RunInfo) -> dict[str, Any]:
    """A recorded run for JSON (`medinfra history --format json` and the runs a diff compares)."""
    return {**asdict(run), "started_at": run.started_at.strftime(STARTED_FORMAT)}


def drill_record(drill: DrillInfo) -> dict[str, Any]:
    """A recorded drill for JSON (`medinfra history --drills --format json`)."""
    return {**asdict(drill), "started_at": drill.started_at.strftime(STARTED_FORMAT),
            "finished_at": drill.finished_at.strftime(STARTED_FORMAT), "seconds": drill.seconds}


def drills_table(drills: Sequence[DrillInfo], paint: Palette = PLAIN) -> str:
    """One line per drill: when, where, what kind, whether it passed (painted), how long it took, its evidence."""
    header = ("id", "started (UTC)", "site", "kind", "name", "result", "seconds", "evidence")
    rows = [
        (str(d.id), f"{d.started_at:%Y-%m-%d %H:%M:%S}", one_line(d.site), d.kind, one_line(d.name),
         "pass" if d.passed else "fail", f"{d.seconds:.0f}", one_line(d.evidence))
        for d in drills
    ]
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]
    result = header.index("result")
    lines = []
    for index, row in enumerate((header, *rows)):
        cells = [cell.rjust(w) if i in (0, 6) else cell.ljust(w) for i, (cell, w) in enumerate(zip(row, widths,
                                                                                                   strict=True))]
        if index:  # painted after padding, so the escape codes do not count towards the width
            cells[result] = cells[result].replace(row[result], paint.status(row[result]))
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def score_record(change: ScoreChange) -> dict[str, Any]:
    delta = change.delta
    return {**asdict(change), "delta": None if delta is None else round(delta, 4)}


def diff_record(diff: RunDiff) -> dict[str, Any]:
    """A RunDiff for JSON: the same parts diff_text shows, control titles left to the findings documents."""
    return {
        "score": score_record(diff.score_change),
        "frameworks": [score_record(change) for change in diff.framework_changes],
        "new_failures": [asdict(change) for change in diff.new_failures],
        "fixed": [asdict(change) for change in diff.fixed],
        "hosts_added": [asdict(host) for host in diff.hosts_added],
        "hosts_removed": [asdict(host) for host in diff.hosts_removed],
    }
