#!/usr/bin/env python3
"""`make seeded-bugs`: each bug a reviewer once seeded unnoticed, applied alone to a copy of the checkout, must make
the tests named for it fail there.

The copy holds the checkout's tracked files as they are in the work tree (uncommitted edits included); the checkout
itself is never written. Prints `caught` or `SURVIVED` per bug; exits 1 if any survived, 2 if a bug's text is no
longer in its file (the code moved on: update the bug here) or the tests fail without any bug.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

CHECKOUT = Path(__file__).resolve().parent.parent
BOUNDARIES = "tests/unit/test_boundaries.py"


@dataclass(frozen=True)
class SeededBug:
    name: str
    file: str  # relative to the checkout
    old: str  # exact text, once in the file
    new: str
    tests: tuple[str, ...] = (BOUNDARIES,)


BUGS = (
    SeededBug(
        "applies_when that errors is taken as applicable",
        "src/medinfra/compliance/evaluate.py",
        '        if applies.status == "error":\n'
        "            return Finding(host.host, control.id, Status.ERROR, applies.reason, applies.excerpt)\n",
        "",
    ),
    SeededBug(
        "network and broadcast addresses accepted as hosts",
        "src/medinfra/topology/checks.py",
        "    return address not in (network.network_address, network.broadcast_address)\n",
        "    return True\n",
    ),
    SeededBug(
        "malformed manifest lines ignored by verify",
        "src/medinfra/signing.py",
        "        if match is None or (match[1] and _ESCAPED_NAME.fullmatch(match[3]) is None):\n"
        "            malformed.append(number)\n",
        "        if match is None or (match[1] and _ESCAPED_NAME.fullmatch(match[3]) is None):\n",
    ),
    SeededBug(
        "+ dropped from the CSV formula guard",
        "src/medinfra/report/csv_export.py",
        'FORMULA_STARTS = ("=", "+", "-", "@", "\\t", "\\r")\n',
        'FORMULA_STARTS = ("=", "-", "@", "\\t", "\\r")\n',
    ),
    SeededBug(
        "an audit with only errors exits 0",
        "src/medinfra/audit/results.py",
        "    if any(f.status in (Status.FAIL, Status.ERROR) for f in run.findings):\n",
        "    if any(f.status is Status.FAIL for f in run.findings):\n",
    ),
    SeededBug(
        "a waiver expiring today counted as expired",
        "src/medinfra/compliance/model.py",
        "        return self.expires < today\n",
        "        return self.expires <= today\n",
    ),
    SeededBug(
        "only the first port of a rule rendered",
        "src/medinfra/segmentation/rules.py",
        '    items = ", ".join(str(p) for p in ports)\n',
        '    items = ", ".join(str(p) for p in ports[:1])\n',
    ),
    SeededBug(
        "at_most compares with < instead of <=",
        "src/medinfra/compliance/checks.py",
        'lambda v, limit: v <= limit, "at most")',
        'lambda v, limit: v < limit, "at most")',
    ),
)


def copy_checkout(target: Path) -> None:
    """The tracked files as they are in the work tree, and the collection link tests/conftest.py needs."""
    listed = subprocess.run(
        ["git", "ls-files", "-z"], cwd=CHECKOUT, capture_output=True, check=True
    ).stdout.decode().split("\0")
    for name in filter(None, listed):
        source = CHECKOUT / name
        if source.is_file():  # a tracked file deleted in the work tree is not copied
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name, follow_symlinks=False)
    link = target / ".cache/collections/ansible_collections/medinfra/hospital"
    link.parent.mkdir(parents=True)
    link.symlink_to(target)


def apply(bug: SeededBug, copy: Path) -> str:
    """The file's original text, after writing the bugged one; raises LookupError if the old text is not once there."""
    path = copy / bug.file
    text = path.read_text(encoding="utf-8")
    if text.count(bug.old) != 1:
        raise LookupError(f"{bug.file}: the text to replace occurs {text.count(bug.old)} times, not once")
    path.write_text(text.replace(bug.old, bug.new), encoding="utf-8")
    return text


def failing_tests(tests: tuple[str, ...], copy: Path) -> list[str]:
    """The tests that fail in the copy, run with its own src/ first (not the checkout's, nor an installed one)."""
    done = subprocess.run(
        [sys.executable, "-m", "pytest", *tests, "-q", "-rf", "-p", "no:cacheprovider"],
        cwd=copy,
        env={**os.environ, "PYTHONPATH": str(copy / "src")},
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode not in (0, 1):  # 2-5: interrupted, internal error, usage error, nothing collected
        raise RuntimeError(f"pytest exited {done.returncode}:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    failed = [line.split()[1] for line in done.stdout.splitlines() if line.startswith("FAILED ")]
    if done.returncode == 1 and not failed:
        raise RuntimeError(f"pytest failed without naming a failed test:\n{done.stdout[-2000:]}")
    return failed


def main() -> int:
    survived = moved = 0
    with tempfile.TemporaryDirectory(prefix="seeded-bugs-") as temporary:
        copy = Path(temporary)
        copy_checkout(copy)
        if failing_tests((BOUNDARIES,), copy):  # else every bug would look caught
            print(f"{BOUNDARIES} fails on the code as it is: fix that first", file=sys.stderr)
            return 2
        for bug in BUGS:
            started = time.monotonic()
            try:
                original = apply(bug, copy)
            except LookupError as exc:
                print(f"MOVED     {bug.name}: {exc}")
                moved += 1
                continue
            try:
                failed = failing_tests(bug.tests, copy)
            finally:
                (copy / bug.file).write_text(original, encoding="utf-8")
            survived += not failed
            verdict = "caught  " if failed else "SURVIVED"
            print(f"{verdict}  {bug.name} ({bug.file}; {time.monotonic() - started:.0f} s)")
            for test in failed:
                print(f"            by {test}")
    print(f"{len(BUGS) - survived - moved} caught, {survived} survived, {moved} no longer apply")
    return 1 if survived else 2 if moved else 0


if __name__ == "__main__":
    sys.exit(main())
