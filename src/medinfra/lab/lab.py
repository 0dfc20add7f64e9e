"""`medinfra lab up|down|status|ssh`: bring a topology up as podman containers and back down."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medinfra.lab.image import ensure_image
from medinfra.lab.plan import HOST_LABEL, LABEL, RUN_OPTIONS, SPEC_LABEL, LabContainer, LabPlan, mac_address, plan_lab
from medinfra.lab.podman import LabError, podman, podman_json
from medinfra.lab.prereq import check_lab_prerequisites, raise_inotify_limits
from medinfra.lab.state import LAB_USER, LabState
from medinfra.topology.load import load_topology

Say = Callable[[str], None]
READY_STATES = ("running", "degraded")
# The 12-host lab boots in 15-30 s on 2 cores; a boot still going after this has hung.
READY_TIMEOUT_S = 180.0
PARALLEL = 4


@dataclass(frozen=True)
class Lab:
    topology_file: Path
    plan: LabPlan
    state: LabState

    @classmethod
    def load(cls, topology_file: Path) -> Lab:
        topology = load_topology(topology_file)
        return cls(topology_file, plan_lab(topology), LabState(topology_file.parent))

    @property
    def label(self) -> str:
        return f"{LABEL}={self.plan.site}"


def _parallel(function: Callable[[Any], Any], items: Iterable[Any]) -> list[Any]:
    with ThreadPoolExecutor(max_workers=PARALLEL) as pool:
        return list(pool.map(function, items))


def _own_containers(lab: Lab) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = podman_json("ps", "--all", "--filter", f"label={lab.label}", "--format", "json")
    return found


def _own_networks(lab: Lab) -> dict[str, dict[str, Any]]:
    networks = podman_json("network", "ls", "--filter", f"label={lab.label}", "--format", "json")
    return {n["name"]: n for n in networks}


def _reconcile_containers(lab: Lab, image: str, say: Say) -> set[str]:
    """Remove our containers that are stopped, stale or no longer planned; return those kept."""
    wanted = {c.name: c.spec_digest(image) for c in lab.plan.containers}
    kept = set()
    for container in _own_containers(lab):
        name = container["Names"][0]
        labels = container.get("Labels") or {}
        if wanted.get(name) == labels.get(SPEC_LABEL) and container["State"] == "running":
            kept.add(name)
            continue
        if name not in wanted:
            reason = "no longer in the topology"
        elif container["State"] != "running":
            reason = container["State"]
        else:
            reason = "out of date"
        say(f"removing leftover container {name} ({reason})")
        podman("rm", "--force", "--volumes", "--time", "1", name)
    return kept


def _reconcile_networks(lab: Lab, say: Say) -> set[str]:
    """Create missing networks, recreate changed ones, remove unplanned ones; return those recreated."""
    existing = _own_networks(lab)
    recreated = set()
    for network in lab.plan.networks:
        current = existing.pop(network.name, None)
        subnets = [s["subnet"] for s in (current or {}).get("subnets", [])]
        if current is not None and subnets == [str(network.subnet)]:
            continue
        if current is not None:
            say(f"recreating network {network.name} (subnet changed)")
            podman("network", "rm", "--force", network.name)  # also removes containers attached to it
            recreated.add(network.name)
        elif podman("network", "exists", network.name, check=False).returncode == 0:
            raise LabError(f"a podman network named {network.name} exists but was not made by medinfra; remove it")
        podman(
            "network",
            "create",
            "--internal",
            "--label",
            lab.label,
            "--subnet",
            str(network.subnet),
            "--gateway",
            str(network.controller_address),
            network.name,
        )
    for name in existing:
        say(f"removing network {name} (zone no longer in the topology)")
        podman("network", "rm", "--force", name)
    return recreated


def _run_container(lab: Lab, container: LabContainer, image: str) -> None:
    if podman("container", "exists", container.name, check=False).returncode == 0:
        raise LabError(f"a container named {container.name} exists but was not made by this lab; remove it")
    args = [
        "run",
        "--detach",
        "--name",
        container.name,
        "--hostname",
        container.host,
        "--label",
        lab.label,
        "--label",
        f"{HOST_LABEL}={container.host}",
        "--label",
        f"{SPEC_LABEL}={container.spec_digest(image)}",
        *RUN_OPTIONS,
    ]
    for network, address in container.attachments:
        args += ["--network", f"{network}:ip={address},mac={mac_address(address)}"]
    if container.forwards:
        args += ["--sysctl", "net.ipv4.ip_forward=1"]
    podman(*args, image, "/sbin/init")


def _boot_state(container: LabContainer) -> str:
    result = podman("exec", container.name, "systemctl", "is-system-running", check=False)
    # is-system-running prints the state even when it exits non-zero ("starting"); nothing means exec itself failed.
    return result.stdout.strip() or f"no answer ({result.stderr.strip() or 'podman exec failed'})"


def _boot_blockers(container: LabContainer) -> str:
    """What a container that has not finished booting is waiting on: systemd's queued jobs, or why it is down."""
    status = podman("container", "inspect", "--format", "{{.State.Status}}", container.name, check=False)
    if status.stdout.strip() != "running":
        logs = podman("logs", "--tail", "15", container.name, check=False)
        return f"container {status.stdout.strip() or 'missing'}; last output:\n{logs.stdout}{logs.stderr}".rstrip()
    jobs = podman("exec", container.name, "systemctl", "list-jobs", "--no-pager", "--no-legend", check=False)
    return "jobs still queued:\n" + "\n".join(jobs.stdout.strip().splitlines()[:15])


def _wait_booted(container: LabContainer, deadline: float) -> str:
    state = "unknown"
    while time.monotonic() < deadline:
        state = _boot_state(container)
        if state in READY_STATES:
            break
        time.sleep(0.5)
    return state


def wait_ready(container: LabContainer, started: float, say: Say, timeout: float = READY_TIMEOUT_S) -> None:
    """Wait for systemd in the container to finish booting; a boot that hangs gets one restart, then an error."""
    state = _wait_booted(container, started + timeout)
    if state in READY_STATES:
        return
    say(
        f"{container.name} had not finished booting after {timeout:.0f} s (state: {state}); "
        f"{_boot_blockers(container)}\nrestarting it once"
    )
    podman("restart", container.name)
    state = _wait_booted(container, time.monotonic() + timeout)
    if state not in READY_STATES:
        raise LabError(
            f"{container.name} did not finish booting within {timeout:.0f} s, twice (state: {state}); "
            f"{_boot_blockers(container)}"
        )


PROVISION_SCRIPT = """set -eu
home=/home/{user}
install -d -m 0700 -o {user} -g {user} "$home/.ssh"
printf '%s\\n' "$1" > "$home/.ssh/authorized_keys"
chown {user}:{user} "$home/.ssh/authorized_keys"
chmod 0600 "$home/.ssh/authorized_keys"
shift
while [ "$#" -ge 2 ]; do ip route replace "$1" via "$2"; shift 2; done
cat /etc/ssh/ssh_host_ed25519_key.pub
"""


def _provision(container: LabContainer, public_key: str) -> str:
    """Install the lab key and the routes to other zones; return the container's SSH host key."""
    routes = [str(part) for route in container.routes for part in route]
    script = PROVISION_SCRIPT.format(user=LAB_USER)
    result = podman("exec", container.name, "sh", "-c", script, "provision", public_key, *routes)
    key_type, key_body, *_ = result.stdout.split()
    return f"{key_type} {key_body}"


def up(topology_file: Path, say: Say) -> Lab:
    check_lab_prerequisites()
    lab = Lab.load(topology_file)
    for change in raise_inotify_limits():
        say(change)
    image = ensure_image(say)
    public_key = lab.state.ensure_key(lab.plan.site)
    lab.state.ensure_secrets(c.host for c in lab.plan.containers)
    kept = _reconcile_containers(lab, image, say)
    recreated = _reconcile_networks(lab, say)
    kept -= {c.name for c in lab.plan.containers if any(n in recreated for n, _ in c.attachments)}
    todo = [c for c in lab.plan.containers if c.name not in kept]
    started = time.monotonic()
    _parallel(lambda c: _run_container(lab, c, image), todo)
    created = time.monotonic() - started
    booting = time.monotonic()
    _parallel(lambda c: wait_ready(c, booting, say), lab.plan.containers)
    ready = time.monotonic() - started
    host_keys = dict(
        zip(
            (c.host for c in lab.plan.containers),
            _parallel(lambda c: _provision(c, public_key), lab.plan.containers),
            strict=True,
        )
    )
    lab.state.write(lab.plan, host_keys)
    say(
        f"lab {lab.plan.site!r}: {len(lab.plan.containers)} hosts ready in {ready:.1f} s "
        f"({len(todo)} created in {created:.1f} s, {len(kept)} already running); "
        f"inventory: {topology_file.parent}; vault password: {lab.state.vault_password_file}"
    )
    return lab


def down(topology_file: Path, say: Say) -> None:
    check_lab_prerequisites()
    lab = Lab.load(topology_file)
    containers = _own_containers(lab)
    # --time 1: lab hosts hold nothing worth a clean shutdown, and 59 of them at 5 s each add up.
    _parallel(lambda c: podman("rm", "--force", "--volumes", "--time", "1", c["Names"][0]), containers)
    networks = _own_networks(lab)
    for name in networks:
        podman("network", "rm", "--force", name)
    lab.state.remove()
    say(f"lab {lab.plan.site!r}: removed {len(containers)} containers and {len(networks)} networks")


@dataclass(frozen=True)
class HostStatus:
    container: LabContainer
    state: str
    ssh_ok: bool


def _ssh_probe(lab: Lab, container: LabContainer) -> bool:
    if not lab.state.ssh_config.exists():
        return False
    try:
        result = subprocess.run(
            ["ssh", "-F", str(lab.state.ssh_config), container.host, "true"],
            capture_output=True,
            timeout=30,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return False
    return result.returncode == 0


def status(topology_file: Path) -> list[HostStatus]:
    check_lab_prerequisites()
    lab = Lab.load(topology_file)
    states = {c["Names"][0]: c["State"] for c in _own_containers(lab)}

    def one(container: LabContainer) -> HostStatus:
        state = states.get(container.name, "absent")
        return HostStatus(container, state, state == "running" and _ssh_probe(lab, container))

    return _parallel(one, lab.plan.containers)


def ssh(topology_file: Path, host: str, command: list[str]) -> None:
    lab = Lab.load(topology_file)
    if host not in {c.host for c in lab.plan.containers}:
        raise LabError(f"no host {host!r} in {topology_file}; hosts: {', '.join(c.host for c in lab.plan.containers)}")
    if not lab.state.ssh_config.exists():
        raise LabError(f"lab {lab.plan.site!r} is not up: run `medinfra lab up -i {topology_file.parent}` first")
    os.execvp("ssh", ["ssh", "-F", str(lab.state.ssh_config), host, *command])
