"""Audit speed: 10, 50 and 100 lab hosts through `medinfra audit` (pyinfra) and `playbooks/audit.yml`.

Brings up a throw-away lab of 100 stock hosts in one zone (10.233.0.0/24), audits growing subsets
through both transports, prints wall times side by side with their ratio, and removes the lab.
Prints figures; asserts nothing about speed. Usage: `make audit-bench` (root, podman; ~3 minutes).
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import yaml

from medinfra.toolenv import run_tool

ROOT = Path(__file__).resolve().parent.parent
SIZES = (10, 50, 100)


def bench_topology(hosts: int, site: str = "auditbench", network: str = "10.233.0") -> dict[str, object]:
    """One zone ``network``.0/24 of ``hosts`` stock workstations; the first is the time server."""
    return {
        "site": {
            "name": site,
            "title": "audit benchmark",
            "domain": "bench.medinfra.test",
            "timezone": "UTC",
            "time_servers": [f"{network}.10"],
        },
        "sla_classes": {
            "standard": {
                "description": "benchmark hosts",
                "rpo_minutes": 60,
                "rto_minutes": 60,
                "support_hours": "24x7",
            }
        },
        "zones": [
            {
                "name": "bench",
                "cidr": f"{network}.0/24",
                "gateway": f"{network}.254",
                "trust": "medium",
                "purpose": "clinical",
                "description": "benchmark hosts",
            }
        ],
        "hosts": [
            {
                "name": f"bench-{index:03d}",
                "zone": "bench",
                "address": f"{network}.{9 + index}",
                "services": ["workstation"],
                "sla": "standard",
                "data_classification": "internal",
            }
            for index in range(1, hosts + 1)
        ],
        "flows": [],
    }


def timed(*args: str) -> tuple[float, int, str]:
    started = time.monotonic()
    done = run_tool(ROOT, *args)
    return time.monotonic() - started, done.returncode, done.stdout + done.stderr


def audited_hosts(findings: Path) -> int:
    document = json.loads(findings.read_text(encoding="utf-8"))
    return sum(1 for host in document["hosts"] if host["status"] == "audited")


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="medinfra-auditbench-") as scratch:
        inventory = Path(scratch) / "inventory"
        inventory.mkdir()
        (inventory / "hospital.yml").write_text("---\n" + yaml.safe_dump(bench_topology(max(SIZES)), sort_keys=False))
        seconds, code, output = timed("medinfra", "lab", "up", "-i", str(inventory))
        print(f"lab up ({max(SIZES)} hosts): {seconds:.1f} s", flush=True)
        if code != 0:
            print(output, file=sys.stderr)
            return 1
        try:
            print(f"{'hosts':>5} {'pyinfra s':>10} {'ansible s':>10} {'ratio':>6}  audited (pyinfra/ansible)")
            for size in SIZES:
                limit = ",".join(f"bench-{index:03d}" for index in range(1, size + 1))
                out_py, out_ans = Path(scratch) / f"py-{size}", Path(scratch) / f"ans-{size}"
                py_s, _py_code, py_out = timed(
                    "medinfra", "audit", "-i", str(inventory), "-l", limit, "-o", str(out_py), "-q"
                )
                ans_s, _ans_code, ans_out = timed(
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
                    print(py_out[-2000:], ans_out[-2000:], file=sys.stderr)
                    return 1
                print(
                    f"{size:>5} {py_s:>10.1f} {ans_s:>10.1f} {ans_s / py_s:>5.1f}x  "
                    f"{audited_hosts(out_py / 'findings.json')}/{audited_hosts(out_ans / 'findings.json')}",
                    flush=True,
                )
        finally:
            seconds, _, _ = timed("medinfra", "lab", "down", "-i", str(inventory))
            print(f"lab down: {seconds:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
