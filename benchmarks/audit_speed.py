"""Audit speed: 10, 50 and 100 lab hosts through `medinfra audit` (pyinfra) and `playbooks/audit.yml`.

Brings up a throw-away lab of 100 stock hosts in one zone (10.233.0.0/24), audits growing subsets
through both transports, prints wall times side by side with their ratio, and removes the lab. Per host, it also
prints what an audit costs in CPU (user + system):
- collector: the collector's own process on the host (program load included) and the commands it ran, as the
  collector measures and reports it in its evidence (`collection_cpu_seconds`), pyinfra's run;
- host: everything the audit cost the host's container, read from its cgroup's CPU account: sshd, sudo, the
  collector, its commands and what they asked of systemd (pyinfra's run; the host's idle activity included);
- controller: the `medinfra audit` process (pyinfra), or ansible-playbook and its workers (Ansible), from
  getrusage(RUSAGE_CHILDREN) around it.
It checks that both transports gave every control on every host the same status. The machine's other work
shares its cores: compare runs, not single figures. Prints figures; asserts nothing about speed.
Usage: `make audit-bench` (root, podman; ~5 minutes), or `python benchmarks/audit_speed.py --inventory DIR` to
audit a lab of this topology that is already up (and leave it up), e.g. for repeated runs.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.synthetic import synthetic_topology  # noqa: E402
from benchmarks.timing import timed  # noqa: E402
from medinfra.lab.plan import container_name  # noqa: E402
from medinfra.lab.podman import podman  # noqa: E402

SIZES = (10, 50, 100)
SITE, NETWORK = "auditbench", "10.233.0.0/24"


def cgroup_usage_files(hosts: list[str]) -> list[Path]:
    """The file holding each host container's CPU use: cgroup v2's cpu.stat, or v1's cpuacct.usage."""
    names = [container_name(SITE, host) for host in hosts]
    paths = podman("inspect", "--format", "{{.State.CgroupPath}}", *names).stdout.split()
    files = []
    for path in paths:
        v2, v1 = Path(f"/sys/fs/cgroup{path}/cpu.stat"), Path(f"/sys/fs/cgroup/cpuacct{path}/cpuacct.usage")
        files.append(v2 if v2.exists() else v1)
    return files


def containers_cpu(files: list[Path]) -> float | None:
    """CPU seconds the containers have used, or None when this cgroup layout has no account of it."""
    total = 0.0
    for file in files:
        if not file.exists():
            return None
        text = file.read_text(encoding="utf-8")
        if file.name == "cpu.stat":
            total += int(text.split("usage_usec", 1)[1].split()[0]) / 1e6
        else:
            total += int(text) / 1e9
    return total


def audited_hosts(findings: Path) -> int:
    document = json.loads(findings.read_text(encoding="utf-8"))
    return sum(1 for host in document["hosts"] if host["status"] == "audited")


def statuses(findings: Path) -> dict[tuple[str, str], str]:
    document = json.loads(findings.read_text(encoding="utf-8"))
    return {(f["host"], f["control"]): f["status"] for f in document["findings"]}


def collector_cpu(out: Path) -> float | None:
    """Mean CPU seconds the collector reported for itself in the evidence it wrote (None if none said)."""
    figures = [json.loads(path.read_text(encoding="utf-8")).get("collection_cpu_seconds")
               for path in sorted((out / "evidence").glob("*.json"))]
    numbers = [f for f in figures if isinstance(f, int | float)]
    return statistics.mean(numbers) if numbers else None


def ms(seconds: float | None, hosts: int = 1) -> str:
    return "n/a" if seconds is None else f"{seconds / hosts * 1000:.0f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inventory", type=Path, help="a lab of this topology already up (not brought down)")
    args = parser.parse_args()
    if args.inventory is not None:
        return compare(args.inventory)
    with tempfile.TemporaryDirectory(prefix="medinfra-auditbench-") as scratch:
        inventory = Path(scratch) / "inventory"
        inventory.mkdir()
        document = synthetic_topology(SITE, NETWORK, max(SIZES))
        (inventory / "hospital.yml").write_text("---\n" + yaml.safe_dump(document, sort_keys=False))
        up = timed("medinfra", "lab", "up", "-i", str(inventory))
        print(f"lab up ({max(SIZES)} hosts): {up.seconds:.1f} s", flush=True)
        if up.code != 0:
            print(up.output, file=sys.stderr)
            return 1
        try:
            return compare(inventory)
        finally:
            down = timed("medinfra", "lab", "down", "-i", str(inventory))
            print(f"lab down: {down.seconds:.1f} s")


def compare(inventory: Path) -> int:
    """Audit each size of the lab through both transports and print the figures."""
    with tempfile.TemporaryDirectory(prefix="medinfra-auditbench-out-") as scratch:
        print("CPU ms per host (user + system): collector = its process and commands on the host (its own "
              "figure); host = the host's whole container (sshd, sudo, collector, systemd); ctl = controller")
        print(f"{'hosts':>5} {'pyinfra s':>10} {'ansible s':>10} {'ratio':>6} {'collector':>9} {'host':>5} "
              f"{'ctl py':>6} {'ctl ans':>7}  audited (pyinfra/ansible), same statuses")
        for size in SIZES:
            hosts = [f"bench-{index:03d}" for index in range(1, size + 1)]
            limit = ",".join(hosts)
            out_py, out_ans = Path(scratch) / f"py-{size}", Path(scratch) / f"ans-{size}"
            usage_files = cgroup_usage_files(hosts)
            before = containers_cpu(usage_files)
            py = timed("medinfra", "audit", "-i", str(inventory), "-l", limit, "-o", str(out_py), "-q")
            after = containers_cpu(usage_files)
            host_cpu = None if before is None or after is None else after - before
            ans = timed(
                "ansible-playbook",
                "-i",
                str(inventory),
                "playbooks/audit.yml",
                "-l",
                limit,
                "-e",
                f"medinfra_audit_out={out_ans}",
            )
            if not (out_py / "findings.json").exists() or not (out_ans / "findings.json").exists():
                print(py.output[-2000:], ans.output[-2000:], file=sys.stderr)
                return 1
            same = "yes" if statuses(out_py / "findings.json") == statuses(out_ans / "findings.json") else "NO"
            print(
                f"{size:>5} {py.seconds:>10.1f} {ans.seconds:>10.1f} {ans.seconds / py.seconds:>5.1f}x "
                f"{ms(collector_cpu(out_py)):>9} {ms(host_cpu, size):>5} {ms(py.controller_cpu, size):>6} "
                f"{ms(ans.controller_cpu, size):>7}  "
                f"{audited_hosts(out_py / 'findings.json')}/{audited_hosts(out_ans / 'findings.json')}, {same}",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
