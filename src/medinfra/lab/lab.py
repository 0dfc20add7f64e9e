"""`medinfra lab up|down|status|ssh`: bring a topology up as podman containers and back down."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable, Iterable, Sequence
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
# podman serialises most of a container's creation on its own locks: 8 or 16 at a time created 100 containers no
# sooner than 4 (measured); the work inside containers (nsenter) is cheap and waits on their boot, so more go at once.
PARALLEL = 4
PARALLEL_INSIDE = 16
# What `podman exec` would enter; the user and cgroup namespaces are the host's in a rootful container.
NAMESPACES = (("mnt", "--mount"), ("uts", "--uts"), ("ipc", "--ipc"), ("net", "--net"), ("pid", "--pid"))
NETWORK_ONLY = (("net", "--net"),)
# /proc/PID/cgroup of a container's process: a dozen lines.
CGROUP_READ_MAX = 64 * 1024
# What in_container answers when the PID it was given is not (or no longer) the container's init.
NOT_ENTERED = "container not running"


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


def _parallel(function: Callable[[Any], Any], items: Iterable[Any], workers: int = PARALLEL) -> list[Any]:
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(function, items))


@dataclass(frozen=True)
class Running:
    """A container's init process as the host sees it: what running a command inside the container needs."""

    container_id: str
    pid: int  # 0 when the container is not running


def _running(containers: Iterable[dict[str, Any]]) -> dict[str, Running]:
    """The init process of each container of a `podman ps --format json` listing, by container name."""
    return {c["Names"][0]: Running(c["Id"], int(c.get("Pid") or 0)) for c in containers}


def init_process(name: str) -> Running:
    result = podman("container", "inspect", "--format", "{{.Id}} {{.State.Pid}}", name, check=False)
    container_id, _, pid = result.stdout.strip().partition(" ")
    return Running(container_id, int(pid) if pid.isdigit() else 0)


def in_container(
    target: Running,
    command: Sequence[str],
    timeout: float | None = None,
    namespaces: Sequence[tuple[str, str]] = NAMESPACES,
) -> subprocess.CompletedProcess[str]:
    """Run ``command`` as root inside a running container's namespaces, as `podman exec` would, through nsenter: no
    podman, conmon and runc process each time, a tenth of the time and CPU of `podman exec` (lab up runs one or two per
    host). Unlike `podman exec` the command keeps root's full capabilities and the controller's cgroup: only medinfra's
    own short commands run this way.

    The namespaces are opened before the PID is checked to be the container's (its cgroup names the container's ID),
    so a PID reused by another process after the container stopped is refused, never entered. ``namespaces`` can be
    fewer: NETWORK_ONLY runs a controller program (one the image lacks) on the container's network stack.
    """
    opened: list[int] = []
    try:
        try:
            for namespace, _ in namespaces:
                opened.append(os.open(f"/proc/{target.pid}/ns/{namespace}", os.O_RDONLY | os.O_CLOEXEC))
            with open(f"/proc/{target.pid}/cgroup", encoding="utf-8", errors="replace") as cgroup:
                ours = target.pid > 0 and f"libpod-{target.container_id}" in cgroup.read(CGROUP_READ_MAX)
            why = "" if ours else f"process {target.pid} is not in its cgroup"
        except OSError as error:
            ours, why = False, f"process {target.pid}: {error.strerror}"
        if not ours:
            return subprocess.CompletedProcess(command, 255, "", f"{NOT_ENTERED} ({why})")
        flags = [f"{flag}=/proc/self/fd/{fd}" for (_, flag), fd in zip(namespaces, opened, strict=True)]
        try:
            return subprocess.run(
                ["nsenter", *flags, "--", *command],
                capture_output=True, text=True, check=False, timeout=timeout, pass_fds=opened,
            )  # fmt: skip
        except subprocess.TimeoutExpired:
            return subprocess.CompletedProcess(command, 124, "", f"no answer within {timeout:.0f} s")
    finally:
        for fd in opened:
            os.close(fd)


def _own_containers(lab: Lab) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = podman_json("ps", "--all", "--filter", f"label={lab.label}", "--format", "json")
    return found


def _own_networks(lab: Lab) -> dict[str, dict[str, Any]]:
    networks = podman_json("network", "ls", "--filter", f"label={lab.label}", "--format", "json")
    return {n["name"]: n for n in networks}


def _remove_containers(names: Sequence[str]) -> None:
    """Remove containers at once, in one podman call (it removes them in parallel itself).

    --time 0: lab hosts hold nothing worth a clean shutdown; and with a grace time podman 4.3 can fail a removal when
    the container stops by itself just as the grace time ends ("container state improper"). On a loaded machine a
    killed container can outlast podman's wait for it ("given PIDs did not die within timeout"): a second try removes
    what is left (--ignore: those removed already), and only its failure is an error.
    """
    if names and podman("rm", "--force", "--volumes", "--time", "0", *names, check=False).returncode != 0:
        podman("rm", "--force", "--volumes", "--time", "0", "--ignore", *names)


def _reconcile_containers(lab: Lab, image: str, say: Say) -> dict[str, Running]:
    """Remove our containers that are stopped, stale or no longer planned; return those kept, by name."""
    wanted = {c.name: c.spec_digest(image) for c in lab.plan.containers}
    kept = []
    leftovers = []
    for container in _own_containers(lab):
        name = container["Names"][0]
        labels = container.get("Labels") or {}
        if wanted.get(name) == labels.get(SPEC_LABEL) and container["State"] == "running":
            kept.append(container)
            continue
        if name not in wanted:
            reason = "no longer in the topology"
        elif container["State"] != "running":
            reason = container["State"]
        else:
            reason = "out of date"
        say(f"removing leftover container {name} ({reason})")
        leftovers.append(name)
    _remove_containers(leftovers)
    return _running(kept)


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


def _check_names_free(containers: Iterable[LabContainer]) -> None:
    """Refuse, before creating any, to take the name of a container this lab did not make (one podman call)."""
    taken = set(podman("ps", "--all", "--format", "{{.Names}}").stdout.split())
    for container in containers:
        if container.name in taken:
            raise LabError(f"a container named {container.name} exists but was not made by this lab; remove it")


def _run_container(lab: Lab, container: LabContainer, image: str) -> None:
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


# Waits inside the container for the boot to end (or "$1" seconds), then prints the state; one process per wait, where
# polling `systemctl is-system-running` would take one every half second.
BOOT_STATE_SCRIPT = 'timeout "$1" systemctl is-system-running --wait >/dev/null 2>&1; systemctl is-system-running'


def _boot_state(target: Running, wait_s: float) -> str:
    """systemd's state in the container once its boot has ended, or after ``wait_s`` seconds if it has not."""
    wait = f"{max(wait_s, 0.1):.1f}"
    result = in_container(target, ("sh", "-c", BOOT_STATE_SCRIPT, "boot-state", wait), timeout=wait_s + 30)
    # is-system-running prints the state even when it exits non-zero ("starting"); nothing means we never got in.
    lines = result.stdout.strip().splitlines()
    return lines[-1] if lines else f"no answer ({result.stderr.strip() or 'nsenter failed'})"


def _boot_blockers(container: LabContainer) -> str:
    """What a container that has not finished booting is waiting on: systemd's queued jobs, or why it is down."""
    status = podman("container", "inspect", "--format", "{{.State.Status}}", container.name, check=False)
    if status.stdout.strip() != "running":
        logs = podman("logs", "--tail", "15", container.name, check=False)
        return f"container {status.stdout.strip() or 'missing'}; last output:\n{logs.stdout}{logs.stderr}".rstrip()
    jobs = podman("exec", container.name, "systemctl", "list-jobs", "--no-pager", "--no-legend", check=False)
    return "jobs still queued:\n" + "\n".join(jobs.stdout.strip().splitlines()[:15])


def _wait_booted(name: str, target: Running, deadline: float) -> tuple[str, Running]:
    """systemd's state in container ``name`` once booted (or at ``deadline``), and its init process as last known."""
    state = "unknown"
    while (left := deadline - time.monotonic()) > 0:
        state = _boot_state(target, left)
        if state in READY_STATES:
            break
        if NOT_ENTERED in state:
            # The PID we were given may not be the container's init any more (or never was: a CI run once kept a
            # fresh lab's 12 PIDs from `podman ps` unenterable for 180 s, while podman said running): ask again.
            target = init_process(name)
        time.sleep(0.5)  # systemd not answering yet (very early in the boot), or the container is down
    return state, target


def wait_ready(
    container: LabContainer, started: float, say: Say, timeout: float = READY_TIMEOUT_S, target: Running | None = None
) -> Running:
    """Wait for systemd in the container to finish booting; a boot that hangs gets one restart, then an error.

    Returns the container's init process (a new one after a restart); ``target`` is it if the caller knows it already.
    """
    state, target = _wait_booted(container.name, target or init_process(container.name), started + timeout)
    if state in READY_STATES:
        return target
    say(
        f"{container.name} had not finished booting after {timeout:.0f} s (state: {state}); "
        f"{_boot_blockers(container)}\nrestarting it once"
    )
    if podman("restart", container.name, check=False).returncode != 0:
        podman("start", container.name)  # runc can fail a restart's start ("a container that has stopped"): again
    state, target = _wait_booted(container.name, init_process(container.name), time.monotonic() + timeout)
    if state in READY_STATES:
        return target
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


def _provision(container: LabContainer, target: Running, public_key: str) -> str:
    """Install the lab key and the routes to other zones; return the container's SSH host key."""
    routes = [str(part) for route in container.routes for part in route]
    script = PROVISION_SCRIPT.format(user=LAB_USER)
    result = in_container(target, ("sh", "-c", script, "provision", public_key, *routes))
    if result.returncode != 0:
        raise LabError(f"provisioning {container.name} failed: {result.stderr.strip() or result.stdout.strip()}")
    key_type, key_body, *_ = result.stdout.split()
    return f"{key_type} {key_body}"


def _ready_host_key(container: LabContainer, target: Running | None, booting: float, public_key: str, say: Say) -> str:
    """Wait for one container's boot, then provision it: each host is provisioned as soon as it is up."""
    return _provision(container, wait_ready(container, booting, say, target=target), public_key)


class _Phases:
    """Wall time of each phase of `lab up`, for its last line (benchmarks/lab_up.py reads it)."""

    def __init__(self) -> None:
        self.times: list[tuple[str, float]] = []
        self.last = time.monotonic()

    def done(self, phase: str) -> None:
        now = time.monotonic()
        self.times.append((phase, now - self.last))
        self.last = now

    def __str__(self) -> str:
        return ", ".join(f"{phase} {seconds:.1f} s" for phase, seconds in self.times)


def up(topology_file: Path, say: Say) -> Lab:
    phases = _Phases()
    check_lab_prerequisites()
    lab = Lab.load(topology_file)
    for change in raise_inotify_limits():
        say(change)
    phases.done("load")
    image = ensure_image(say)
    phases.done("image")
    public_key = lab.state.ensure_key(lab.plan.site)
    lab.state.ensure_secrets(c.host for c in lab.plan.containers)
    phases.done("key and secrets")
    kept = _reconcile_containers(lab, image, say)
    recreated = _reconcile_networks(lab, say)
    for container in lab.plan.containers:
        if any(n in recreated for n, _ in container.attachments):
            kept.pop(container.name, None)  # removed with its network
    todo = [c for c in lab.plan.containers if c.name not in kept]
    _check_names_free(todo)
    phases.done("reconcile")
    started = time.monotonic()
    _parallel(lambda c: _run_container(lab, c, image), todo)
    created = time.monotonic() - started
    phases.done("create")
    targets = _running(_own_containers(lab)) if todo else kept
    booting = time.monotonic()
    host_keys = dict(
        zip(
            (c.host for c in lab.plan.containers),
            _parallel(
                lambda c: _ready_host_key(c, targets.get(c.name), booting, public_key, say),
                lab.plan.containers,
                PARALLEL_INSIDE,
            ),
            strict=True,
        )
    )
    ready = time.monotonic() - started
    phases.done("boot and provision")
    lab.state.write(lab.plan, host_keys)
    phases.done("files")
    say(
        f"lab {lab.plan.site!r}: {len(lab.plan.containers)} hosts ready in {ready:.1f} s "
        f"({len(todo)} created in {created:.1f} s, {len(kept)} already running); "
        f"inventory: {topology_file.parent}; vault password: {lab.state.vault_password_file}"
    )
    say(f"phases: {phases}")
    return lab


def down(topology_file: Path, say: Say) -> None:
    check_lab_prerequisites()
    lab = Lab.load(topology_file)
    containers = _own_containers(lab)
    _remove_containers([c["Names"][0] for c in containers])
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
