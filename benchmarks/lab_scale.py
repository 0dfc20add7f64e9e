"""Scale run: bring up the 59-host example tertiary hospital, reach every host, tear it down.

Prints figures (time to ready, time for Ansible to reach every host, host memory per container);
asserts nothing about speed. Usage: `make scale-bench` (root, podman; about two minutes).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from medinfra.toolenv import run_tool
from medinfra.topology import load_topology

ROOT = Path(__file__).resolve().parent.parent
INVENTORY = ROOT / "inventories" / "example-tertiary"


def available_memory_kib() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1])
    raise RuntimeError("no MemAvailable in /proc/meminfo")


def main() -> int:
    memory_before = available_memory_kib()
    started = time.monotonic()
    up = run_tool(ROOT, "medinfra", "lab", "up", "-i", str(INVENTORY))
    print(up.stdout.strip())
    if up.returncode != 0:
        print(up.stderr, file=sys.stderr)
        return 1
    print(f"lab up (including image check): {time.monotonic() - started:.1f} s")
    try:
        hosts = len(load_topology(INVENTORY / "hospital.yml").hosts)
        memory_used = (memory_before - available_memory_kib()) / 1024
        print(f"host memory used by {hosts} containers: {memory_used:.0f} MiB ({memory_used / hosts:.1f} MiB each)")
        started = time.monotonic()
        ping = run_tool(ROOT, "ansible", "-i", str(INVENTORY), "all", "-m", "ansible.builtin.ping", "-o")
        reached = ping.stdout.count("SUCCESS")
        print(f"ansible ping: {reached}/{hosts} hosts in {time.monotonic() - started:.1f} s")
        return 0 if reached == hosts else 1
    finally:
        down = run_tool(ROOT, "medinfra", "lab", "down", "-i", str(INVENTORY))
        print(down.stdout.strip())


if __name__ == "__main__":
    sys.exit(main())
