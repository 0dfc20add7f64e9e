"""The wheel lists its packages by name: a new subpackage of src/medinfra that is not listed is missing from every
installed medinfra (the checkout's editable install finds it all the same)."""

from __future__ import annotations

import tomllib

from tests.conftest import ROOT


def test_every_subpackage_of_medinfra_is_in_the_wheel() -> None:
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]["packages"])
    source = ROOT / "src"
    found = {".".join(init.parent.relative_to(source).parts) for init in source.glob("medinfra/**/__init__.py")}
    assert found - listed == set()
