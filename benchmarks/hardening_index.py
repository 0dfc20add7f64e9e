"""Lynis hardening index of a stock lab host and of hardened ones, with converge times.

One run brings up a three-host lab from the lab image (one zone, no router): `stock` stays as the
image made it; `ssh` is hardened over SSH with pipelining (how operators run playbooks);
`podman` is hardened over the podman connection (how the comparable collections were measured).
Each hardened host is converged twice (the second run must change nothing) and audited with
`lynis audit system --quick`. Prints the figures side by side; asserts nothing.
Usage: `make hardening-bench` (root, podman; about five minutes).
"""

from __future__ import annotations

import re
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from medinfra.lab.plan import container_name
from medinfra.lab.podman import podman
from medinfra.toolenv import run_tool

ROOT = Path(__file__).resolve().parent.parent
SITE = "hbench"
TOPOLOGY = {
    "site": {"name": SITE, "title": "hardening benchmark"},
    "sla_classes": {"std": {"rpo_minutes": 60, "rto_minutes": 60}},
    "zones": [{"name": "his", "cidr": "10.239.1.0/24", "trust": "high", "purpose": "his"}],
    "hosts": [
        {
            "name": name,
            "zone": "his",
            "address": f"10.239.1.{10 + i}",
            "services": ["his_app"],
            "sla": "std",
            "data_classification": "phi",
            "data_paths": ["/srv/his"],
        }
        for i, name in enumerate(("stock", "ssh", "podman"))
    ],
    "flows": [],
}


@dataclass(frozen=True)
class Converge:
    seconds: float
    changed: int


def converge(inventory: Path, host: str, *connection: str) -> Converge:
    started = time.monotonic()
    result = run_tool(
        ROOT,
        "ansible-playbook",
        "-i",
        str(inventory),
        "-l",
        host,
        *connection,
        str(ROOT / "benchmarks" / "hardening_converge.yml"),
    )
    seconds = time.monotonic() - started
    if result.returncode != 0:
        raise RuntimeError(f"converge of {host} failed:\n{result.stdout[-4000:]}")
    match = re.search(r"^\S+\s*:.*\bchanged=(\d+)", result.stdout.split("PLAY RECAP", 1)[1], re.MULTILINE)
    return Converge(seconds, int(match.group(1)) if match else -1)


def lynis_index(host: str) -> int:
    name = container_name(SITE, host)
    podman("exec", name, "lynis", "audit", "system", "--quick", "--no-colors", check=False)
    report = podman("exec", name, "cat", "/var/log/lynis-report.dat").stdout
    match = re.search(r"^hardening_index=(\d+)$", report, re.MULTILINE)
    if match is None:
        raise RuntimeError(f"no hardening_index in {host}'s Lynis report")
    return int(match.group(1))


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="medinfra-hbench-") as work:
        inventory = Path(work)
        (inventory / "hospital.yml").write_text(yaml.safe_dump(TOPOLOGY, sort_keys=False))
        up = run_tool(ROOT, "medinfra", "lab", "up", "-i", str(inventory))
        if up.returncode != 0:
            print(up.stdout, up.stderr, file=sys.stderr)
            return 1
        try:
            stock = lynis_index("stock")
            over_ssh = [converge(inventory, "ssh") for _ in range(2)]
            podman_args = ("-c", "containers.podman.podman", "-e", f"ansible_host={container_name(SITE, 'podman')}")
            over_podman = [converge(inventory, "podman", *podman_args) for _ in range(2)]
            hardened_ssh = lynis_index("ssh")
            hardened_podman = lynis_index("podman")
        finally:
            run_tool(ROOT, "medinfra", "lab", "down", "-i", str(inventory))
    print("Lynis 3.0.8 `lynis audit system --quick` on fresh containers of the lab image")
    print(f"{'':30}{'stock':>8}{'hardened (ssh)':>18}{'hardened (podman)':>20}")
    print(f"{'Lynis hardening index':30}{stock:>8}{hardened_ssh:>18}{hardened_podman:>20}")
    for label, index in (("first converge", 0), ("second converge", 1)):
        print(f"{label:30}{'-':>8}{over_ssh[index].seconds:>16.1f} s{over_podman[index].seconds:>18.1f} s")
    print(f"{'changes in second converge':30}{'-':>8}{over_ssh[1].changed:>18}{over_podman[1].changed:>20}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
