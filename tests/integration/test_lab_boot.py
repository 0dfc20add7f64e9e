"""`lab up` waits for systemd in each container; a boot that hangs is restarted once, then reported with its cause."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from ipaddress import IPv4Address
from pathlib import Path

import pytest

from medinfra.lab.image import ensure_image
from medinfra.lab.lab import Running, init_process, wait_ready
from medinfra.lab.plan import RUN_OPTIONS, LabContainer
from medinfra.lab.podman import LabError, podman

pytestmark = pytest.mark.integration

# A boot job that never finishes keeps `systemctl is-system-running` at "starting", as a hung unit would.
HANGING_UNIT = """[Unit]
Description=A boot job that hangs{condition}
Before=multi-user.target
[Service]
Type=oneshot
ExecStart=/bin/sh -c 'touch /var/tmp/booted-once; exec sleep infinity'
TimeoutStartSec=infinity
"""
FINISHING_UNIT = "[Unit]\nDescription=A boot job that finishes\n[Service]\nType=oneshot\nExecStart=/bin/true\n"
WANTED_AT_BOOT = "[Unit]\nWants=boot-hang.service\n"
# Only the first boot hangs: after a restart the unit's condition skips it.
FIRST_BOOT_ONLY = "\nConditionPathExists=!/var/tmp/booted-once"
TIMEOUT_S = 15.0


def lab_container(name: str) -> LabContainer:
    """What wait_ready needs of a lab host: its container's name (these test containers have no network)."""
    return LabContainer(name, name, "none", IPv4Address("127.0.0.1"), (), (), False)


def boot(name: str, unit_text: str, directory: Path) -> LabContainer:
    unit = directory / "boot-hang.service"
    unit.write_text(unit_text)
    wants = directory / "boot-hang.conf"
    wants.write_text(WANTED_AT_BOOT)
    podman(
        "run", "--detach", "--name", name, *RUN_OPTIONS, "--network", "none",
        "--volume", f"{unit}:/etc/systemd/system/boot-hang.service:ro",
        "--volume", f"{wants}:/etc/systemd/system/multi-user.target.d/boot-hang.conf:ro",
        ensure_image(print), "/sbin/init",
    )  # fmt: skip
    return lab_container(name)


@pytest.fixture
def container_name(request: pytest.FixtureRequest) -> Iterator[str]:
    name = f"medinfra-boot-test-{request.node.name.replace('_', '-')[:40]}"
    podman("rm", "--force", name, check=False)
    yield name
    podman("rm", "--force", "--time", "0", name, check=False)


def test_a_boot_that_hangs_once_is_restarted_and_comes_up(container_name: str, tmp_path: Path) -> None:
    container = boot(container_name, HANGING_UNIT.format(condition=FIRST_BOOT_ONLY), tmp_path)
    said: list[str] = []
    wait_ready(container, time.monotonic(), said.append, timeout=TIMEOUT_S)
    assert len(said) == 1, said
    assert "had not finished booting after 15 s (state: starting)" in said[0]
    assert "boot-hang.service" in said[0] and "restarting it once" in said[0]
    result = podman("exec", container_name, "systemctl", "is-system-running", check=False)
    assert result.stdout.strip() in ("running", "degraded")


def test_a_boot_that_always_hangs_is_an_error_naming_the_job(container_name: str, tmp_path: Path) -> None:
    container = boot(container_name, HANGING_UNIT.format(condition=""), tmp_path)
    with pytest.raises(LabError) as error:
        wait_ready(container, time.monotonic(), lambda _: None, timeout=TIMEOUT_S)
    message = str(error.value)
    assert message.startswith(f"{container_name} did not finish booting within 15 s, twice (state: starting)")
    assert "boot-hang.service" in message


def test_a_container_that_exits_is_an_error_with_its_last_output(container_name: str) -> None:
    init = "echo 'Failed to mount cgroup at /sys/fs/cgroup/systemd: Operation not permitted'; exit 1"
    podman("run", "--detach", "--name", container_name, "--network", "none", ensure_image(print), "sh", "-c", init)
    container = lab_container(container_name)
    said: list[str] = []
    with pytest.raises(LabError) as error:
        wait_ready(container, time.monotonic(), said.append, timeout=5)
    assert "(state: no answer (" in said[0] and "container exited; last output:" in said[0]
    message = str(error.value)
    assert "twice (state: no answer (" in message
    assert "Failed to mount cgroup at /sys/fs/cgroup/systemd" in message


def test_a_stale_pid_is_read_again_from_podman(container_name: str, tmp_path: Path) -> None:
    """Given a PID that is not the container's (ours), wait_ready asks podman again and needs no restart."""
    container = boot(container_name, FINISHING_UNIT, tmp_path)
    real = init_process(container_name)
    said: list[str] = []
    ready = wait_ready(container, time.monotonic(), said.append, TIMEOUT_S, Running(real.container_id, os.getpid()))
    assert said == []
    assert ready == real
