"""The collector's CPU time on one lab host: this checkout's bundled program beside the one of an earlier revision.

Runs each collector on the host as `medinfra audit` ran it then and runs it now (the baseline as `python3 -` with the
program on stdin; this checkout's through the bootstrap, with the program compiled on the controller), as root,
several times in alternation, and prints the median CPU seconds (user + system, of the collector and every program
it starts: sshd -T, nft, dpkg...) and wall seconds of each, then the change. Asserts nothing.

The baseline is the collector at `--baseline REV` (default a827416, the last revision before the effective-state
audit, when the collector was one file, plugins/module_utils/medinfra_collector.py).

Usage: `make collector-bench` or `.venv/bin/python benchmarks/collector_cpu.py [--host NAME] [--runs N]` with the
lab up and converged (root, podman; about a minute). The collector changes nothing on the host.
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import subprocess
import sys
from pathlib import Path

from medinfra.audit.targets import SshSettings, collector_command
from medinfra.collector import collector_program, default_paths
from medinfra.lab.plan import container_name
from medinfra.lab.podman import podman_env

ROOT = Path(__file__).resolve().parent.parent
BASELINE = "a827416"
SINGLE_FILE = "plugins/module_utils/medinfra_collector.py"
# Runs a command (the JSON list on stdin's first line) with the rest of stdin as its input and prints the child's
# CPU seconds and wall seconds.
MEASURE = (
    "import json, resource, subprocess, sys, time\n"
    "argv, _, stdin = sys.stdin.buffer.read().partition(b'\\n')\n"
    "started = time.monotonic()\n"
    "subprocess.run(json.loads(argv), input=stdin, stdout=subprocess.DEVNULL, check=True)\n"
    "usage = resource.getrusage(resource.RUSAGE_CHILDREN)\n"
    "print(usage.ru_utime + usage.ru_stime, time.monotonic() - started)\n"
)


def baseline_source(revision: str) -> str:
    """The collector program as it was sent to hosts at `revision` (one file then, or the package bundled)."""
    listed = subprocess.run(
        ["git", "-C", str(ROOT), "ls-tree", "--name-only", revision, SINGLE_FILE],
        capture_output=True, text=True, check=True,
    ).stdout.strip()
    if not listed:
        raise SystemExit(f"{revision}: no {SINGLE_FILE}; give a revision from before the collector was split")
    return subprocess.run(
        ["git", "-C", str(ROOT), "show", f"{revision}:{SINGLE_FILE}"], capture_output=True, text=True, check=True
    ).stdout


def measure(container: str, argv: list[str], stdin: bytes) -> tuple[float, float]:
    done = subprocess.run(
        ["podman", "exec", "-i", container, "python3", "-c", MEASURE], input=json.dumps(argv).encode() + b"\n" + stdin,
        capture_output=True, env=podman_env(), check=True,
    )
    cpu, wall = done.stdout.split()
    return float(cpu), float(wall)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="his-app", help="lab host (default: his-app, a hardened PHI host)")
    parser.add_argument("--lab", default="lab", help="lab name (default: lab)")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--baseline", default=BASELINE, help=f"git revision (default: {BASELINE})")
    args = parser.parse_args()
    container = container_name(args.lab, args.host)
    command, stdin = collector_command(SshSettings(hostname=args.host), collector_program(default_paths()))
    programs = {
        f"baseline {args.baseline}": (["python3", "-"], baseline_source(args.baseline).encode()),
        "this checkout": (shlex.split(command), stdin),
    }
    samples: dict[str, list[tuple[float, float]]] = {name: [] for name in programs}
    for _ in range(args.runs):
        for name, program in programs.items():
            samples[name].append(measure(container, *program))
    medians = {}
    print(f"collector on {args.host}, {args.runs} runs each (median): CPU s (user+system, with its commands), wall s")
    for name, runs in samples.items():
        cpu, wall = statistics.median(c for c, _ in runs), statistics.median(w for _, w in runs)
        medians[name] = cpu
        print(f"  {name:<24} {cpu:6.3f} CPU s {wall:6.3f} s   stdin {len(programs[name][1]) // 1024} KiB")
    before, after = medians.values()
    print(f"CPU time change: {100 * (after - before) / before:+.0f}%")
    return 0


if __name__ == "__main__":
    sys.exit(main())
