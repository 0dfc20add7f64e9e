"""Debian 12 images built without a registry: debootstrap + customize + `podman import`, cached by recipe.

Three recipes: the lab's systemd host image; the plain image, the lab's base without what the roles install (a stock
Debian 12 host, on which a test converges the roles every host gets); and the base of medinfra's execution
environment (ansible-builder builds on it; no registry is reachable for a ubi or python base).
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
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


@dataclass(frozen=True)
class ImageRecipe:
    """Everything that shapes one image; all of it is hashed into the image's tag."""

    title: str
    repository: str
    # Files in IMAGE_DIR: debootstrap's --include list, the customize script, and an optional list that the
    # script installs with apt-get (debootstrap's own dependency resolution is too weak for large sets).
    packages: str
    customize: str
    apt_packages: str | None
    # Files the customize script reads, passed to it after the root; hashed too. Found when needed, not at import.
    inputs: Callable[[], tuple[Path, ...]]
    # `podman import --change` instructions.
    changes: tuple[str, ...]


LAB_IMAGE = ImageRecipe(
    title="lab",
    repository=IMAGE_REPOSITORY,
    packages="packages.txt",
    customize="customize.sh",
    apt_packages="role-packages.txt",
    inputs=lambda: (telnet_client_stub_control(),),
    changes=('CMD ["/sbin/init"]',),
)

PLAIN_IMAGE = ImageRecipe(
    title="plain",
    repository="localhost/medinfra-plain",
    packages="packages.txt",
    customize="customize.sh",
    apt_packages=None,
    inputs=tuple,
    changes=('CMD ["/sbin/init"]',),
)

EE_BASE_IMAGE = ImageRecipe(
    title="execution environment base",
    repository="localhost/medinfra-ee-base",
    packages="ee-base-packages.txt",
    customize="ee-base-customize.sh",
    apt_packages=None,
    inputs=tuple,
    # An imported tree has no environment; ansible-builder's RUN steps and ansible-runner need these.
    changes=(
        "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "ENV LANG=C.UTF-8",
        'CMD ["/bin/bash"]',
    ),
)


def image_packages(list_name: str = "packages.txt") -> list[str]:
    """A package list of an image, one package a line, ``#`` comments."""
    lines = (IMAGE_DIR / list_name).read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def recipe_digest(recipe: ImageRecipe = LAB_IMAGE) -> str:
    """Hash of everything that shapes the image: a change here means a new tag and a rebuild."""
    digest = hashlib.sha256()
    digest.update(SUITE.encode())
    names = [recipe.packages, *([recipe.apt_packages] if recipe.apt_packages else []), recipe.customize]
    for name in names:
        digest.update((IMAGE_DIR / name).read_bytes())
    for path in recipe.inputs():
        digest.update(path.read_bytes())
    digest.update("\n".join(recipe.changes).encode())
    return digest.hexdigest()[:12]


def image_tag(recipe: ImageRecipe = LAB_IMAGE) -> str:
    return f"{recipe.repository}:{recipe_digest(recipe)}"


def _run(command: list[str]) -> None:
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        tail = "\n".join((result.stderr or result.stdout).strip().splitlines()[-15:])
        raise LabError(f"{command[0]} failed (exit {result.returncode}):\n{tail}")


def cache_directory() -> Path:
    return Path(os.environ.get("MEDINFRA_CACHE", Path.home() / ".cache" / "medinfra"))


def build_image(tag: str, say: Callable[[str], None], recipe: ImageRecipe = LAB_IMAGE) -> None:
    mirror = os.environ.get("MEDINFRA_DEBIAN_MIRROR", DEFAULT_MIRROR)
    cache = cache_directory() / "debootstrap"
    cache.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="medinfra-image-", dir="/var/tmp") as work:
        root = Path(work) / "rootfs"
        say(f"building {recipe.title} image {tag} with debootstrap from {mirror} (about a minute)")
        _run(
            [
                "debootstrap",
                "--variant=minbase",
                f"--include={','.join(image_packages(recipe.packages))}",
                f"--cache-dir={cache}",
                SUITE,
                str(root),
                mirror,
            ]
        )
        apt_packages = image_packages(recipe.apt_packages) if recipe.apt_packages else []
        _run(["sh", str(IMAGE_DIR / recipe.customize), str(root), *map(str, recipe.inputs()), *apt_packages])
        archive = Path(work) / "rootfs.tar"
        _run(["tar", "-C", str(root), "--numeric-owner", "-cf", str(archive), "."])
        changes = [*recipe.changes, f"LABEL io.medinfra.recipe={recipe_digest(recipe)}"]
        podman("import", *(arg for change in changes for arg in ("--change", change)), str(archive), tag)
    say(f"{recipe.title} image {tag} built in {time.monotonic() - started:.0f} s")


def prune_old_images(current: str, say: Callable[[str], None], recipe: ImageRecipe = LAB_IMAGE) -> None:
    """Remove images of the recipe's earlier versions (up to 500 MB each); ones still used by a container stay."""
    names = podman("images", "--format", "{{.Repository}}:{{.Tag}}", recipe.repository).stdout.split()
    for name in sorted(set(names) - {current}):
        if podman("rmi", name, check=False).returncode == 0:
            say(f"removed the {recipe.title} image of an earlier recipe: {name}")


def ensure_image(say: Callable[[str], None], recipe: ImageRecipe = LAB_IMAGE) -> str:
    """Return the tag of the recipe's current image, building it only if it does not exist yet."""
    tag = image_tag(recipe)
    cache = cache_directory()
    cache.mkdir(parents=True, exist_ok=True)
    # One build per recipe at a time: a second caller (`make test` runs Molecule beside the lab) waits for the first
    # and then finds the image, instead of building it again beside it.
    lock = os.open(cache / f"image-{recipe.repository.rsplit('/', 1)[-1]}.lock",
                   os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if podman("image", "exists", tag, check=False).returncode != 0:
            build_image(tag, say, recipe)
            prune_old_images(tag, say, recipe)
    finally:
        os.close(lock)
    return tag
