"""Lynis hardening index of a stock lab-image container and of one after baseline_hardening.

One run, two fresh containers from the same image: the stock one is audited as it is; the other is
converged twice (first and second converge timed, second-run changes counted) and then audited.
Prints the figures side by side; asserts nothing. Usage: `make hardening-bench` (root, podman).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from medinfra.lab.plan import RUN_OPTIONS
from medinfra.lab.podman import podman, podman_env

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
STOCK = "medinfra-bench-stock"
HARDENED = "medinfra-bench-hardened"


@dataclass(frozen=True)
class Converge:
    seconds: float
    changed: int


def lab_image() -> str:
    result = subprocess.run([str(BIN / "medinfra"), "lab", "image"], capture_output=True, text=True, check=True)
    return result.stdout.strip()


def start(name: str, image: str) -> None:
    podman("rm", "--force", "--time", "1", name, check=False)
    podman("run", "--detach", "--name", name, "--hostname", name, *RUN_OPTIONS, image, "/sbin/init")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        state = podman("exec", name, "systemctl", "is-system-running", check=False).stdout.strip()
        if state in ("running", "degraded"):
            return
        time.sleep(0.5)
    raise RuntimeError(f"{name} did not boot")


def lynis_index(name: str) -> int:
    podman("exec", name, "lynis", "audit", "system", "--quick", "--no-colors", check=False)
    report = podman("exec", name, "cat", "/var/log/lynis-report.dat").stdout
    match = re.search(r"^hardening_index=(\d+)$", report, re.MULTILINE)
    if match is None:
        raise RuntimeError(f"no hardening_index in {name}'s Lynis report")
    return int(match.group(1))


def converge(name: str) -> Converge:
    playbook = ROOT / "benchmarks" / "hardening_converge.yml"
    env = {
        **podman_env(),
        "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
        "PATH": f"{BIN}:{os.environ['PATH']}",
        "ANSIBLE_FORCE_COLOR": "0",
    }
    started = time.monotonic()
    result = subprocess.run(
        [str(BIN / "ansible-playbook"), "-i", f"{name},", "-c", "containers.podman.podman", str(playbook)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        check=False,
    )
    seconds = time.monotonic() - started
    if result.returncode != 0:
        raise RuntimeError(f"converge of {name} failed:\n{result.stdout[-4000:]}")
    match = re.search(rf"^{re.escape(name)}\s*:.*\bchanged=(\d+)", result.stdout, re.MULTILINE)
    return Converge(seconds, int(match.group(1)) if match else -1)


def main() -> int:
    image = lab_image()
    try:
        start(STOCK, image)
        start(HARDENED, image)
        stock = lynis_index(STOCK)
        first = converge(HARDENED)
        second = converge(HARDENED)
        hardened = lynis_index(HARDENED)
    finally:
        podman("rm", "--force", "--time", "1", STOCK, HARDENED, check=False)
    print(f"image: {image} (Lynis 3.0.8, `lynis audit system --quick`, podman connection)")
    print(f"{'':28}{'stock':>10}{'baseline_hardening':>22}")
    print(f"{'Lynis hardening index':28}{stock:>10}{hardened:>22}")
    print(f"{'first converge':28}{'-':>10}{first.seconds:>20.1f} s")
    print(f"{'second converge':28}{'-':>10}{second.seconds:>20.1f} s")
    print(f"{'changes in second converge':28}{'-':>10}{second.changed:>22}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
