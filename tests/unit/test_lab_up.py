"""What `lab up` does without podman: entering a container only when the PID is the container's, the phases it
reports, and the synthetic topology its benchmark brings up."""

from __future__ import annotations

import os
import subprocess
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

import pytest

from benchmarks.synthetic import synthetic_topology
from medinfra.lab import lab
from medinfra.lab.lab import Running, _boot_state, _Phases, in_container
from medinfra.lab.plan import plan_lab
from medinfra.topology import load_topology
from tests.conftest import write_yaml


@pytest.fixture
def no_nsenter(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError(f"ran {args[0]!r}: a process that is not the container's must never be entered")

    monkeypatch.setattr(lab.subprocess, "run", refuse)


@pytest.mark.usefixtures("no_nsenter")
@pytest.mark.parametrize(
    ("pid", "why"),
    [
        (None, "is not in its cgroup"),  # our own process (its PID differs between test workers)
        (0, "No such file or directory"),
        (2**22 + 1, "No such file or directory"),  # beyond pid_max
    ],
    ids=["ours", "zero", "no-such-pid"],
)
def test_a_pid_that_is_not_the_containers_is_never_entered(pid: int | None, why: str) -> None:
    pid = os.getpid() if pid is None else pid
    why = f"process {pid} {why}" if pid == os.getpid() else f"process {pid}: {why}"
    result = in_container(Running("0123abcd" * 8, pid), ("true",))
    assert (result.returncode, result.stderr) == (255, f"container not running ({why})")


@pytest.mark.usefixtures("no_nsenter")
def test_boot_state_of_a_container_not_running_is_no_answer() -> None:
    state = _boot_state(Running("0123abcd" * 8, os.getpid()), 1.0)
    assert state == f"no answer (container not running (process {os.getpid()} is not in its cgroup))"


def test_in_container_enters_the_namespaces_of_the_checked_pid(monkeypatch: pytest.MonkeyPatch) -> None:
    """Our own process stands in for a container's init: its cgroup is made to name the container."""
    container_id = "0123abcd" * 8
    real_open = open

    def cgroup_naming_the_container(path: Any, *args: Any, **kwargs: Any) -> Any:
        if path == f"/proc/{os.getpid()}/cgroup":
            return _Text(f"8:pids:/libpod_parent/libpod-{container_id}\n")
        return real_open(path, *args, **kwargs)

    ran: list[list[str]] = []

    def fake_run(command: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        ran.append(command)
        assert len(kwargs["pass_fds"]) == len(lab.NAMESPACES)
        return subprocess.CompletedProcess(command, 0, "running\n", "")

    monkeypatch.setattr(lab, "open", cgroup_naming_the_container, raising=False)
    monkeypatch.setattr(lab.subprocess, "run", fake_run)
    result = in_container(Running(container_id, os.getpid()), ("systemctl", "is-system-running"))
    assert result.stdout == "running\n"
    (command,) = ran
    assert command[0] == "nsenter" and command[-3:] == ["--", "systemctl", "is-system-running"]
    assert [flag.split("=")[0] for flag in command[1:-3]] == ["--mount", "--uts", "--ipc", "--net", "--pid"]


class _Text:
    def __init__(self, text: str) -> None:
        self.text = text

    def __enter__(self) -> _Text:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def read(self, size: int) -> str:
        return self.text[:size]


def test_phases_are_reported_in_order_with_their_seconds() -> None:
    phases = _Phases()
    phases.done("image")
    phases.done("create")
    assert [name for name, _ in phases.times] == ["image", "create"]
    assert str(phases).startswith("image 0.0 s, create ")


def test_synthetic_topology_plans_one_zone_of_hosts_from_the_tenth_address(tmp_path: Path) -> None:
    document = synthetic_topology("labbench", "10.234.0.0/24", 100)
    topology = load_topology(write_yaml(tmp_path / "hospital.yml", document))
    plan = plan_lab(topology)
    assert [n.name for n in plan.networks] == ["medinfra-labbench-bench"]
    assert len(plan.containers) == 100
    assert plan.containers[0].address == IPv4Address("10.234.0.10")
    assert plan.containers[-1].address == IPv4Address("10.234.0.109")
    assert not any(c.routes or c.forwards for c in plan.containers)


def test_synthetic_topology_refuses_more_hosts_than_its_zone_holds() -> None:
    with pytest.raises(ValueError, match="room for 244 benchmark hosts, not 245"):
        synthetic_topology("labbench", "10.234.0.0/24", 245)
