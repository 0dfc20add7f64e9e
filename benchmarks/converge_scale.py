"""Converge scale: controller CPU per host of site.yml (first run and idempotent re-run) and of `medinfra audit`.

For each size N (10, 25, 50; or the sizes given as arguments, e.g. `3` for a smoke run) brings up a throw-away lab
of N stock workstations in one zone (site "scalebench", 10.235.0.0/24), converges `playbooks/site.yml`, converges it
again (idempotent: the recap's changed count is printed), audits it with `medinfra audit`, prints wall seconds and
controller CPU seconds (user+sys of every child process waited for) per run and per host, and removes the lab. Then
projects, from the largest size's re-converge and audit CPU per host, the nightly wall time for 500 and 2,000 hosts
from one controller and the AWX/AAP execution nodes (job slicing) a one-hour window needs.
Prints figures; asserts nothing about speed. Usage: `make converge-bench` (root, podman; the lead's sizes take long).
"""

from __future__ import annotations

import argparse
import math
import os
import re
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.audit_speed import audited_hosts  # noqa: E402
from benchmarks.synthetic import synthetic_topology  # noqa: E402
from benchmarks.timing import Timed, timed  # noqa: E402

SIZES = (10, 25, 50)
SITE, NETWORK = "scalebench", "10.235.0.0/24"
PLAYBOOK = "playbooks/site.yml"
PROJECTED_HOSTS = (500, 2000)
WINDOW_SECONDS = 3600.0
# The lab's own group vars the converge needs: without them AllowGroups locks the lab's account out of SSH.
LAB_GROUP_VARS = ROOT / "inventories" / "lab" / "group_vars" / "all" / "hardening.yml"
RECAP_CHANGED = re.compile(r"\bchanged=(\d+)")
ASSUMPTIONS = (
    "controller CPU is the bottleneck (CPU-bound): wall = hosts x controller CPU per host / cores; the managed hosts"
    " work in parallel with it and are not the limit",
    "the cost per host is linear in hosts, taken from the largest size measured (its fixed costs spread thinnest)",
    "the nightly run is an idempotent re-converge of site.yml plus `medinfra audit`, not a first converge",
    "controller CPU = user+sys of the children waited for (RUSAGE_CHILDREN): ansible-playbook with its forks, the"
    " audit; ssh ControlPersist masters detach and are not counted, so the figures are a lower bound",
    "execution nodes have as many cores as this controller; job slicing splits hosts evenly, no per-job overhead",
)


@dataclass(frozen=True)
class Projection:
    hosts: int
    converge_seconds: float
    audit_seconds: float
    total_seconds: float
    nodes: int


def project(
    hosts: int,
    converge_cpu_per_host: float,
    audit_cpu_per_host: float,
    cores: int,
    window_seconds: float = WINDOW_SECONDS,
) -> Projection:
    """Nightly re-converge + audit of ``hosts`` from one controller of ``cores`` (CPU-bound), and the execution
    nodes of the same size that job slicing needs to fit ``window_seconds``."""
    if hosts <= 0 or cores <= 0:
        raise ValueError(f"hosts and cores must be positive, got {hosts} hosts and {cores} cores")
    if converge_cpu_per_host <= 0 or audit_cpu_per_host <= 0 or window_seconds <= 0:
        raise ValueError("CPU seconds per host and the window must be positive")
    converge = hosts * converge_cpu_per_host / cores
    audit = hosts * audit_cpu_per_host / cores
    total = converge + audit
    return Projection(hosts, converge, audit, total, math.ceil(total / window_seconds))


def changed_tasks(output: str) -> int:
    """The sum of the PLAY RECAP's changed= counts."""
    return sum(int(count) for count in RECAP_CHANGED.findall(output))


def report(label: str, hosts: int, result: Timed, note: str = "") -> None:
    print(
        f"{hosts:>5} {label:<13} {result.seconds:>8.1f} {result.controller_cpu:>8.1f}"
        f" {result.controller_cpu / hosts:>10.2f}  {note}",
        flush=True,
    )


def measure(size: int, scratch: Path) -> tuple[float, float] | None:
    """Converge, re-converge and audit a lab of ``size`` hosts; (re-converge, audit) CPU per host, None on failure."""
    inventory = scratch / f"inventory-{size}"
    (inventory / "group_vars" / "all").mkdir(parents=True)
    shutil.copy(LAB_GROUP_VARS, inventory / "group_vars" / "all" / LAB_GROUP_VARS.name)
    (inventory / "hospital.yml").write_text(
        "---\n" + yaml.safe_dump(synthetic_topology(SITE, NETWORK, size), sort_keys=False), encoding="utf-8"
    )
    up = timed("medinfra", "lab", "up", "-i", str(inventory))
    report("lab up", size, up)
    try:
        if up.code != 0:
            print(up.output[-3000:], file=sys.stderr)
            return None
        converge = (
            "ansible-playbook",
            "-i",
            str(inventory),
            "--vault-password-file",
            str(inventory / ".lab" / "vault-password"),
            PLAYBOOK,
        )
        first = timed(*converge)
        report("converge", size, first, f"changed={changed_tasks(first.output)} rc={first.code}")
        if first.code != 0:
            print(first.output[-5000:], file=sys.stderr)
            return None
        again = timed(*converge)
        report("re-converge", size, again, f"changed={changed_tasks(again.output)} rc={again.code}")
        if again.code != 0:
            print(again.output[-5000:], file=sys.stderr)
            return None
        findings = scratch / f"audit-{size}"
        audit = timed("medinfra", "audit", "-i", str(inventory), "-o", str(findings), "-q")
        if not (findings / "findings.json").exists():
            print(audit.output[-3000:], file=sys.stderr)
            return None
        report("audit", size, audit, f"audited={audited_hosts(findings / 'findings.json')} rc={audit.code}")
        return again.controller_cpu / size, audit.controller_cpu / size
    finally:
        down = timed("medinfra", "lab", "down", "-i", str(inventory))
        report("lab down", size, down)


def print_projection(converge_cpu_per_host: float, audit_cpu_per_host: float, cores: int) -> None:
    print(
        f"\nprojection from {converge_cpu_per_host:.2f} s re-converge + {audit_cpu_per_host:.2f} s audit"
        f" controller CPU per host, {cores} cores, a {WINDOW_SECONDS:.0f} s nightly window; assumptions:"
    )
    for assumption in ASSUMPTIONS:
        print(f"  - {assumption}")
    print(" hosts  converge s  audit s  total s  total h  nodes  per node s")
    for hosts in PROJECTED_HOSTS:
        p = project(hosts, converge_cpu_per_host, audit_cpu_per_host, cores)
        print(
            f"{p.hosts:>6} {p.converge_seconds:>11.0f} {p.audit_seconds:>8.0f} {p.total_seconds:>8.0f}"
            f" {p.total_seconds / 3600:>8.2f} {p.nodes:>6} {p.total_seconds / p.nodes:>11.0f}"
        )


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("sizes", nargs="*", type=int, help=f"lab sizes in hosts (default {SIZES})")
    sizes = tuple(parser.parse_args(argv).sizes) or SIZES
    if any(size < 1 or size > 240 for size in sizes):
        print("sizes are 1 to 240 hosts (one /24 zone)", file=sys.stderr)
        return 2
    cores = os.cpu_count() or 1
    print(f"playbook: {PLAYBOOK} (then {PLAYBOOK} again, then medinfra audit); controller cores: {cores}")
    print(f"{'hosts':>5} {'run':<13} {'wall s':>8} {'cpu s':>8} {'cpu s/host':>10}")
    per_host: dict[int, tuple[float, float]] = {}
    with tempfile.TemporaryDirectory(prefix="medinfra-convergebench-") as scratch:
        for size in sizes:
            measured = measure(size, Path(scratch))
            if measured is None:
                return 1
            per_host[size] = measured
    converge_cpu, audit_cpu = per_host[max(per_host)]
    print_projection(converge_cpu, audit_cpu, cores)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
