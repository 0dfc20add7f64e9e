"""The lab's Debian 12 systemd image: debootstrap + customize + `podman import`, cached by recipe."""

from __future__ import annotations

import hashlib
import os
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from medinfra.collection import collection_directory
from medinfra.lab.podman import LabError, podman

IMAGE_DIR = Path(__file__).with_name("image")
IMAGE_REPOSITORY = "localhost/medinfra-lab"
SUITE = "bookworm"
DEFAULT_MIRROR = "http://deb.debian.org/debian"


def telnet_client_stub_control() -> Path:
    """coturn's telnet dependency, satisfied without a telnet client: the rtc_relay role installs this stub, and so
    does the image, from the collection."""
    return collection_directory() / "roles" / "rtc_relay" / "files" / "telnet-client-stub.control"


def image_packages(list_name: str = "packages.txt") -> list[str]:
    """A package list of the image: ``packages.txt`` (debootstrap's base) or ``role-packages.txt`` (apt-get)."""
    lines = (IMAGE_DIR / list_name).read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def recipe_digest() -> str:
    """Hash of everything that shapes the image: a change here means a new tag and a rebuild."""
    digest = hashlib.sha256()
    digest.update(SUITE.encode())
    for name in ("packages.txt", "role-packages.txt", "customize.sh"):
        digest.update((IMAGE_DIR / name).read_bytes())
    digest.update(telnet_client_stub_control().read_bytes())
    return digest.hexdigest()[:12]


def image_tag() -> str:
    return f"{IMAGE_REPOSITORY}:{recipe_digest()}"


def _run(command: list[str]) -> None:
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        tail = "\n".join((result.stderr or result.stdout).strip().splitlines()[-15:])
        raise LabError(f"{command[0]} failed (exit {result.returncode}):\n{tail}")


def build_image(tag: str, say: Callable[[str], None]) -> None:
    mirror = os.environ.get("MEDINFRA_DEBIAN_MIRROR", DEFAULT_MIRROR)
    cache = Path(os.environ.get("MEDINFRA_CACHE", Path.home() / ".cache" / "medinfra")) / "debootstrap"
    cache.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="medinfra-image-", dir="/var/tmp") as work:
        root = Path(work) / "rootfs"
        say(f"building lab image {tag} with debootstrap from {mirror} (about a minute)")
        _run(
            [
                "debootstrap",
                "--variant=minbase",
                f"--include={','.join(image_packages())}",
                f"--cache-dir={cache}",
                SUITE,
                str(root),
                mirror,
            ]
        )
        _run(["sh", str(IMAGE_DIR / "customize.sh"), str(root), str(telnet_client_stub_control()),
              *image_packages("role-packages.txt")])
        archive = Path(work) / "rootfs.tar"
        _run(["tar", "-C", str(root), "--numeric-owner", "-cf", str(archive), "."])
        podman(
            "import",
            "--change",
            'CMD ["/sbin/init"]',
            "--change",
            f"LABEL io.medinfra.recipe={recipe_digest()}",
            str(archive),
            tag,
        )
    say(f"lab image {tag} built in {time.monotonic() - started:.0f} s")


def prune_old_images(current: str, say: Callable[[str], None]) -> None:
    """Remove lab images of earlier recipes (about 500 MB each); ones still used by a container stay."""
    names = podman("images", "--format", "{{.Repository}}:{{.Tag}}", IMAGE_REPOSITORY).stdout.split()
    for name in sorted(set(names) - {current}):
        if podman("rmi", name, check=False).returncode == 0:
            say(f"removed the lab image of an earlier recipe: {name}")


def ensure_image(say: Callable[[str], None]) -> str:
    """Return the tag of the current recipe's image, building it only if it does not exist yet."""
    tag = image_tag()
    if podman("image", "exists", tag, check=False).returncode != 0:
        build_image(tag, say)
        prune_old_images(tag, say)
    return tag
