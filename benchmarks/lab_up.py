"""`medinfra lab up` of 100 hosts: cold, again (all running), and `lab down`, with the time of each phase.

Brings up a throw-away lab of N stock hosts in one zone (10.234.0.0/24, site labbench), prints wall time, the CPU time
of `medinfra` and the podman, nsenter and ssh-keygen processes it waits for (podman's conmon and the containers' own
boot are not counted), and the phases `lab up` reports; then removes the lab, also on failure. Prints figures; asserts
nothing about speed. Usage: `make lab-bench` (root, podman; about two minutes), or
`python benchmarks/lab_up.py [HOSTS] [--repeat N]`.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # `python benchmarks/lab_up.py` finds the benchmarks package

from benchmarks.synthetic import synthetic_topology  # noqa: E402
from benchmarks.timing import Timed, timed  # noqa: E402

SITE = "labbench"
NETWORK = "10.234.0.0/24"


def phases(output: str) -> str:
    """The phases line `lab up` prints last, or nothing for a `lab up` that does not print one."""
    lines = [line for line in output.splitlines() if line.startswith("phases: ")]
    return lines[-1].removeprefix("phases: ") if lines else ""


def report(what: str, done: Timed) -> bool:
    print(f"{what:<22} {done.seconds:7.1f} s wall {done.controller_cpu:6.1f} s CPU   {phases(done.stdout)}", flush=True)
    if done.code != 0:
        print(done.stdout[-3000:], done.stderr[-3000:], file=sys.stderr)
    return done.code == 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("hosts", nargs="?", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=1, help="runs of up, up again and down (timings are noisy)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="medinfra-labbench-") as scratch:
        inventory = Path(scratch)
        topology = synthetic_topology(SITE, NETWORK, args.hosts)
        (inventory / "hospital.yml").write_text("---\n" + yaml.safe_dump(topology, sort_keys=False))
        print(f"lab of {args.hosts} hosts, one zone ({NETWORK}); {args.repeat} run(s)")
        ok = True

        def lab(*command: str) -> Timed:
            return timed("medinfra", "lab", *command, "-i", str(inventory), timeout=900)

        for _ in range(args.repeat):
            try:
                ok = report("lab up (cold)", lab("up")) and ok
                ok = report("lab up (all running)", lab("up")) and ok
            finally:
                ok = report("lab down", lab("down")) and ok
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
