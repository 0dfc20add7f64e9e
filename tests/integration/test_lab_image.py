"""The lab image cache: images of earlier recipes are pruned, the current one and used ones stay."""

from __future__ import annotations

import pytest

from medinfra.lab.image import IMAGE_REPOSITORY, ensure_image, prune_old_images
from medinfra.lab.podman import podman

pytestmark = pytest.mark.integration


def test_images_of_earlier_recipes_are_pruned() -> None:
    current = ensure_image(print)
    stale = f"{IMAGE_REPOSITORY}:stale-recipe"
    podman("tag", current, stale)
    said: list[str] = []
    prune_old_images(current, said.append)
    assert podman("image", "exists", stale, check=False).returncode == 1  # podman's "no such image"
    assert podman("image", "exists", current, check=False).returncode == 0
    assert f"removed the lab image of an earlier recipe: {stale}" in said
