"""The execution environment (execution-environment.yml) built with ansible-builder and podman on this machine.

Its audit of the lab through ansible-navigator is compared with the CLI's in test_lab.py, which owns the lab.
"""

from __future__ import annotations

import pytest
import yaml

from medinfra.lab.podman import podman
from tests.conftest import ROOT
from tests.integration.conftest import build_ee

pytestmark = pytest.mark.integration


def test_a_second_build_with_nothing_changed_takes_seconds(ee_image: str) -> None:
    tag, seconds = build_ee()
    assert tag == ee_image
    assert seconds < 15, seconds


def test_the_image_holds_the_collection_of_this_checkout_and_its_python_package(ee_image: str) -> None:
    version = yaml.safe_load((ROOT / "galaxy.yml").read_text(encoding="utf-8"))["version"]
    listed = podman("run", "--rm", ee_image, "ansible-galaxy", "collection", "list", "--format", "yaml").stdout
    collections = {name: info["version"] for path in yaml.safe_load(listed).values() for name, info in path.items()}
    assert collections["medinfra.hospital"] == version
    # The dependencies galaxy.yml declares, from the `ansible` package (Galaxy is not reachable).
    assert {"community.crypto", "ansible.posix", "ansible.utils"} <= collections.keys()
    shown = podman("run", "--rm", ee_image, "python3", "-m", "pip", "show", "medinfra").stdout
    assert f"Version: {version}" in shown
    # Nothing of the build is left behind: the wheelhouse, its pip configuration, apt's lists.
    leftovers = podman(
        "run", "--rm", ee_image, "sh", "-c", "ls -d /output /etc/pip.conf /var/lib/apt/lists/*deb*", check=False
    )
    assert leftovers.stdout == "", leftovers.stdout
