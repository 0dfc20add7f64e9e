#!/usr/bin/env python3
"""`make mutation`: mutmut over the pure core, one module at a time, each against its own unit test files.

Each module runs in a scratch directory of its own (.cache/mutation/NAME) with a generated [tool.mutmut] table, so
runs do not share mutmut's state and the checkout's pyproject.toml carries no per-module settings. mutmut runs the
tests with the scratch copy `mutants/` as the working directory, so the wrapper links every other part of the checkout
into it (inventories, roles, the collection link): tests/conftest.py finds the repository root there.
A surviving mutant listed in tests/mutation/equivalent/MODULE.yml (by function and changed lines, so it survives
line shifts) counts as equivalent, or, with `kind: import-time`, as code that runs only when the module is imported:
mutmut forks its workers from a process that has imported it already, so no test can see such a mutant. Every other
survivor is printed with its diff. The score is killed plus equivalent over the mutants mutmut can run (all but the
import-time ones). A benchmark figure: the exit status is 0 whatever the scores.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
SCRATCH = ROOT / ".cache" / "mutation"
# One file per module (tests/mutation/equivalent/NAME.yml), so that work on one module's survivors touches only its own.
EQUIVALENT_DIR = ROOT / "tests" / "mutation" / "equivalent"
# Parts of the checkout that are not linked into mutants/: mutmut copies src/ and tests/ there itself (the copies are
# what it mutates and runs), the generated pyproject.toml replaces the checkout's, and the rest is state or caches.
NOT_LINKED = {"src", "tests", "pyproject.toml", ".cache", ".git", ".venv", "mutants"}
# Tests that time the code against a budget: mutmut's trampolines slow every call, so on a busy machine they fail with
# no mutant in place (and mutmut then refuses to run). What they prove is speed, which no mutant here is about.
TIMED_TESTS = (
    "tests/unit/test_checks.py::test_the_worst_catalog_pattern_on_the_longest_matched_text_is_quick",
    "tests/unit/test_topology_validation.py::test_zone_checks_are_near_linear",
)
# mutmut's exit codes per mutant (mutmut.stats.status_by_exit_code), folded into what the table counts.
KILLED_CODES = {1, 3, 37}
SURVIVED_CODES = {0}
TIMEOUT_CODES = {36, -24, 24, 152, 255}
NO_TESTS_CODES = {5, 33}


@dataclass(frozen=True)
class Target:
    """One module of the pure core, the unit test files that exercise it, optionally which of its functions
    (mutmut's mangled names, globbed) are in scope when the rest of the module is not pure core, and tests of those
    files left out for this module (node ids: slow tests that prove another module's behaviour)."""

    name: str
    source: str
    tests: tuple[str, ...]
    functions: tuple[str, ...] = ()
    deselect: tuple[str, ...] = ()

    @property
    def module(self) -> str:
        return self.source.removeprefix("src/").removesuffix(".py").replace("/", ".")

    def mutant_globs(self) -> list[str]:
        """mutmut's names of the mutants in scope, as globs (`xǁTallyǁ*` is every method of Tally); none: all."""
        return [f"{self.module}.{function}__mutmut_*" for function in self.functions]

    def test_files(self) -> list[str]:
        """The listed test files, then tests/unit/test_mutants_NAME.py if it exists (the tests written to kill
        this module's mutants)."""
        own = f"tests/unit/test_mutants_{self.name.replace('.', '_')}.py"
        return [path for path in (*self.tests, own) if (ROOT / path).is_file()]


TARGETS = (
    # Not tests/unit/compliance/test_controls.py: its 729 catalog cases run every check (42 s for each mutant of
    # the evaluator's core) and prove the catalog, not the language.
    Target("checks", "src/medinfra/compliance/checks.py", ("tests/unit/test_checks.py",)),
    Target("evaluate", "src/medinfra/compliance/evaluate.py",
           ("tests/unit/test_checks.py", "tests/unit/test_audit.py", "tests/unit/test_monitoring_controls.py",
            "tests/unit/test_topology_interfaces.py")),
    # The audit's exit status: the constants are in medinfra.exits (no function, nothing to mutate), the decision
    # is audit.results.exit_code; the rest of results.py is report formatting. test_boundaries.py holds the README's
    # exit table. Not test_cli_habits.py: one of its tests runs `medinfra audit` in process, which imports the
    # transport and so patches mutmut's own process for gevent (its timeout thread becomes a greenlet).
    Target("audit_exit", "src/medinfra/audit/results.py",
           ("tests/unit/test_audit.py", "tests/unit/test_boundaries.py"), ("x_exit_code", "x_tally", "xǁTallyǁ*")),
    Target("csv_export", "src/medinfra/report/csv_export.py", ("tests/unit/test_report_formats.py",)),
    Target("safe_text", "src/medinfra/safe_text.py",
           ("tests/unit/test_safe_text.py", "tests/unit/test_report_formats.py")),
    Target("signing", "src/medinfra/signing.py", ("tests/unit/test_signing.py",)),
    Target("segmentation_rules", "src/medinfra/segmentation/rules.py",
           ("tests/unit/test_segmentation_rules.py", "tests/unit/test_segmentation_egress.py",
            "tests/unit/test_segmentation_verify.py")),
    # Not test_to_dict_and_from_dict_lose_nothing: 150 generated documents through load_topology (15 s, half the
    # file's time, for every mutant of check_topology's callees) prove Topology.to_dict/from_dict; nor
    # tests/unit/test_topology_interfaces.py, whose audit evaluations take seconds each: test_mutants_topology_checks.py
    # checks the interfaces' findings directly.
    Target("topology_checks", "src/medinfra/topology/checks.py",
           ("tests/unit/test_topology_validation.py", "tests/unit/test_topology_pairs.py"),
           deselect=("tests/unit/test_topology_validation.py::test_to_dict_and_from_dict_lose_nothing",)),
    Target("history_diff", "src/medinfra/history/diff.py", ("tests/unit/test_history.py",)),
    Target("waivers", "src/medinfra/compliance/model.py",
           ("tests/unit/test_checks.py", "tests/unit/test_audit.py")),
)


@dataclass(frozen=True)
class Mutant:
    name: str
    function: str
    removed: tuple[str, ...]
    added: tuple[str, ...]
    diff: str


@dataclass
class Outcome:
    target: Target
    seconds: float
    counts: Counter[str] = field(default_factory=Counter)
    survivors: list[Mutant] = field(default_factory=list)
    equivalent: list[tuple[Mutant, str]] = field(default_factory=list)
    import_time: list[tuple[Mutant, str]] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def score(self) -> float | None:
        runnable = self.total - len(self.import_time) - self.counts["not run"]
        if not runnable:
            return None
        return 100.0 * (self.counts["killed"] + len(self.equivalent)) / runnable


def function_of(mutant_name: str) -> str:
    """`medinfra.x.y.xǁClassǁmethod__mutmut_3` -> `Class.method`; `...x_function__mutmut_3` -> `function`."""
    mangled = mutant_name.partition("__mutmut_")[0].rpartition(".")[2]
    if mangled.startswith("xǁ"):
        return mangled.removeprefix("xǁ").replace("ǁ", ".")
    return mangled.removeprefix("x_")


def changed_lines(diff: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    body = [line for line in diff.splitlines() if not line.startswith(("---", "+++", "@@"))]
    return (tuple(line[1:].strip() for line in body if line.startswith("-")),
            tuple(line[1:].strip() for line in body if line.startswith("+")))


def load_equivalents(target: Target) -> list[dict[str, Any]]:
    path = EQUIVALENT_DIR / f"{target.name}.yml"
    if not path.is_file():
        return []
    entries = yaml.safe_load(path.read_text(encoding="utf-8")) or []
    if not isinstance(entries, list):
        raise SystemExit(f"{path}: a list of entries is expected")
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise SystemExit(f"{path}: entry {index}: a mapping is expected")
        missing = {"function", "before", "after", "reason"} - set(entry)
        if missing or not str(entry["reason"]).strip():
            raise SystemExit(f"{path}: entry {index}: needs function, before, after and a reason")
        if entry.get("kind", "equivalent") not in ("equivalent", "import-time"):
            raise SystemExit(f"{path}: entry {index}: kind is equivalent (the default) or import-time")
    return entries


def as_lines(value: Any) -> tuple[str, ...]:
    if isinstance(value, list):
        return tuple(str(line).strip() for line in value)
    return tuple(line.strip() for line in str(value).splitlines())


def listed(mutant: Mutant, entries: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    """The entry of the module's equivalent file that lists this mutant, if any."""
    for entry in entries:
        if (entry["function"] == mutant.function
                and as_lines(entry["before"]) == mutant.removed and as_lines(entry["after"]) == mutant.added):
            return entry
    return None


def pyproject_for(target: Target) -> str:
    """The checkout's pyproject.toml (pytest's settings) and a [tool.mutmut] table for this target."""
    settings = {
        "source_paths": ["src"],
        "only_mutate": [target.source],
        "pytest_add_cli_args_test_selection": target.test_files(),
        "pytest_add_cli_args": ["-p", "no:cacheprovider", "-q",
                                *(f"--deselect={test}" for test in (*TIMED_TESTS, *target.deselect))],
        "use_git_change_detection": False,
    }
    table = "\n".join(f"{key} = {json.dumps(value)}" for key, value in settings.items())
    return (ROOT / "pyproject.toml").read_text(encoding="utf-8") + f"\n[tool.mutmut]\n{table}\n"


# mutmut copies the tests following links: the recorded host roots hold links to sockets, pipes and /dev/null (a
# host's open files and masked units) that are no files to copy, and none of the pure core's tests reads them.
NOT_COPIED_TESTS = frozenset({Path("fixtures/hostroots")})


def link_entries(source: Path, destination: Path, skipped: frozenset[Path], below: Path = Path()) -> None:
    """``destination`` as a directory of links to ``source``'s entries, leaving out ``skipped`` (paths relative to
    ``source``): a directory holding a skipped path becomes a directory of links in turn."""
    destination.mkdir(parents=True)
    for entry in sorted(source.iterdir()):
        relative = below / entry.name
        if relative in skipped:
            continue
        if any(relative in path.parents for path in skipped):
            link_entries(entry, destination / entry.name, skipped, relative)
        else:
            (destination / entry.name).symlink_to(entry)


def prepare(target: Target, scratch: Path) -> Path:
    """A fresh scratch directory for the target, with the links mutmut's copy of the checkout needs."""
    work = scratch / target.name
    shutil.rmtree(work, ignore_errors=True)
    (work / "mutants" / ".cache").mkdir(parents=True)
    (work / "src").symlink_to(ROOT / "src")
    link_entries(ROOT / "tests", work / "tests", skipped=NOT_COPIED_TESTS)
    (work / "pyproject.toml").write_text(pyproject_for(target), encoding="utf-8")
    for entry in ROOT.iterdir():
        if entry.name not in NOT_LINKED and not entry.name.startswith("."):
            (work / "mutants" / entry.name).symlink_to(entry)
    (work / "mutants" / ".cache" / "collections").symlink_to(ROOT / ".cache" / "collections")
    return work


def mutmut(work: Path, *arguments: str, log: Path) -> subprocess.CompletedProcess[str]:
    # PYTHONPATH empty: mutmut puts its mutated copy first on the path; another src/ before it would hide it.
    environment = {**os.environ, "PYTHONPATH": "", "PYTHONDONTWRITEBYTECODE": "1"}
    command = [sys.executable, "-m", "mutmut", *arguments]
    with log.open("w", encoding="utf-8") as output:
        return subprocess.run(command, cwd=work, env=environment, stdout=output, stderr=subprocess.STDOUT,
                              text=True, check=False)


def mutant_diffs(work: Path, source: str, names: Sequence[str]) -> dict[str, str]:
    """`mutmut show` of each mutant, in this process (one start-up instead of one per mutant): mutmut reads its
    configuration and the mutants from the working directory."""
    from mutmut.configuration import reset_config
    from mutmut.mutation.diff_apply import get_diff_for_mutant

    previous = Path.cwd()
    os.chdir(work)
    reset_config()
    try:
        return {name: get_diff_for_mutant(name, path=source) for name in names}
    finally:
        os.chdir(previous)
        reset_config()


def run_target(target: Target, cores: int, scratch: Path, rerun: bool) -> Outcome:
    """Run mutmut on the target (unless `rerun` is false: then read the results of the last run) and sort its
    mutants."""
    work = scratch / target.name
    log = work / "mutmut.log"
    started = time.monotonic()
    if rerun:
        prepare(target, scratch)
        completed = mutmut(work, "run", "--max-children", str(cores), *target.mutant_globs(), log=log)
        if completed.returncode != 0:
            raise SystemExit(f"mutmut failed on {target.name} (exit {completed.returncode}); see {log}")
    outcome = Outcome(target, time.monotonic() - started)
    entries = load_equivalents(target)
    meta = work / "mutants" / (target.source + ".meta")
    if not meta.is_file():
        raise SystemExit(f"no mutmut results for {target.name} in {work}; see {log}")
    exit_codes: dict[str, int | None] = json.loads(meta.read_text(encoding="utf-8"))["exit_code_by_key"]
    globs = target.mutant_globs()
    in_scope = {name: code for name, code in exit_codes.items()
                if not globs or any(fnmatchcase(name, glob) for glob in globs)}
    diffs = mutant_diffs(work, target.source, [name for name, code in in_scope.items()
                                               if code in SURVIVED_CODES or code in NO_TESTS_CODES])
    for name, code in sorted(in_scope.items()):
        if code in KILLED_CODES or code in TIMEOUT_CODES:
            outcome.counts["killed"] += 1  # a mutant that never ends is caught: the suite does not pass
        elif code in SURVIVED_CODES or code in NO_TESTS_CODES:
            diff = diffs[name]
            removed, added = changed_lines(diff)
            mutant = Mutant(name, function_of(name), removed, added, diff)
            entry = listed(mutant, entries)
            if entry is None:
                outcome.counts["survived" if code in SURVIVED_CODES else "no tests"] += 1
                outcome.survivors.append(mutant)
            elif entry.get("kind") == "import-time":
                outcome.counts["import-time"] += 1
                outcome.import_time.append((mutant, str(entry["reason"]).strip()))
            else:
                outcome.counts["equivalent"] += 1
                outcome.equivalent.append((mutant, str(entry["reason"]).strip()))
        elif code is None:
            outcome.counts["not run"] += 1  # a run stopped before it got there: --results-only on a partial run
        else:
            outcome.counts[f"other({code})"] += 1
    return outcome


def table(outcomes: Sequence[Outcome]) -> str:
    header = ("module", "mutants", "killed", "survived", "no tests", "equivalent", "import-time", "not run", "score",
              "time")
    rows = [header]
    for outcome in outcomes:
        score = "-" if outcome.score is None else f"{outcome.score:.1f}%"
        rows.append((outcome.target.name, str(outcome.total), str(outcome.counts["killed"]),
                     str(outcome.counts["survived"]), str(outcome.counts["no tests"]),
                     str(outcome.counts["equivalent"]), str(outcome.counts["import-time"]),
                     str(outcome.counts["not run"]), score,
                     f"{outcome.seconds:.0f}s"))
    widths = [max(len(row[column]) for row in rows) for column in range(len(header))]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
                     for row in rows)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("modules", nargs="*", metavar="MODULE",
                        help=f"modules to run (default: all): {', '.join(target.name for target in TARGETS)}")
    parser.add_argument("--cores", type=int, default=os.cpu_count() or 2, help="mutants run at once")
    parser.add_argument("--scratch", type=Path, default=SCRATCH,
                        help="where the per-module mutmut directories go (two runs at once need two)")
    parser.add_argument("--results-only", action="store_true",
                        help="do not run mutmut: sort the last run's results again (after editing an equivalent file)")
    parser.add_argument("--quiet", action="store_true", help="do not print the surviving mutants' diffs")
    options = parser.parse_args(argv)
    by_name = {target.name: target for target in TARGETS}
    unknown = [name for name in options.modules if name not in by_name]
    if unknown:
        parser.error(f"unknown module(s) {', '.join(unknown)}; known: {', '.join(by_name)}")
    outcomes = []
    for name in options.modules or list(by_name):
        print(f"== {name}: mutmut over {by_name[name].source}", flush=True)
        outcome = run_target(by_name[name], options.cores, options.scratch.resolve(),
                             rerun=not options.results_only)
        outcomes.append(outcome)
        if not options.quiet:
            for mutant in outcome.survivors:
                print(f"-- survived: {mutant.name}\n{mutant.diff}\n", flush=True)
        print(table([outcome]), flush=True)
    print("\n" + table(outcomes))
    return 0


if __name__ == "__main__":
    sys.exit(main())
