"""Checks that the machine can run the lab, with the command that fixes what is missing."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from medinfra.problems import PrerequisiteError

# program -> Debian package that provides it
LAB_PROGRAMS = {
    "podman": "podman",
    "runc": "runc",
    "debootstrap": "debootstrap",
    "iptables": "iptables",
    "ssh": "openssh-client",
    "ssh-keygen": "openssh-client",
    "nsenter": "util-linux",
    "tar": "tar",
}
NETAVARK = Path("/usr/lib/podman/netavark")

INOTIFY_SETTINGS = {
    # One inotify instance per systemd container and then some: 128 hangs past ~20-40 containers.
    "fs/inotify/max_user_instances": 8192,
    "fs/inotify/max_user_watches": 524288,
}


def check_lab_prerequisites() -> None:
    if os.geteuid() != 0:
        raise PrerequisiteError(
            "the lab needs root (podman with systemd containers, debootstrap, inotify limits): "
            "run it as root, e.g. `sudo make demo`"
        )
    missing = sorted({pkg for prog, pkg in LAB_PROGRAMS.items() if shutil.which(prog) is None})
    if not NETAVARK.exists():
        missing.append("netavark")
    if missing:
        raise PrerequisiteError(
            f"missing programs for the lab: install them with `apt-get install -y {' '.join(missing)}` "
            "(or run `make deps`)"
        )


def raise_inotify_limits(proc_sys: Path = Path("/proc/sys")) -> list[str]:
    """Raise the inotify limits systemd containers need; return a sentence per change made."""
    changes = []
    for key, wanted in INOTIFY_SETTINGS.items():
        path = proc_sys / key
        current = int(path.read_text().strip())
        if current < wanted:
            path.write_text(f"{wanted}\n")
            name = key.replace("/", ".")
            changes.append(f"raised {name} from {current} to {wanted} (systemd containers need it)")
    return changes
