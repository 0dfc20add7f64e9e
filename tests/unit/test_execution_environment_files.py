"""The execution environment's definition files agree with the project's own pins and collection metadata."""

from __future__ import annotations

import tomllib

import yaml
from packaging.requirements import Requirement

from tests.conftest import ROOT


def requirements(text: str) -> dict[str, Requirement]:
    lines = (line.strip() for line in text.splitlines())
    parsed = (Requirement(line) for line in lines if line and not line.startswith("#"))
    return {requirement.name: requirement for requirement in parsed}


def test_the_ansible_pin_is_the_one_of_pyproject_everywhere() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    pinned = requirements("\n".join(project["dependencies"]))["ansible"].specifier
    collection = requirements((ROOT / "requirements.txt").read_text(encoding="utf-8"))
    assert collection["ansible"].specifier == pinned
    definition = yaml.safe_load((ROOT / "execution-environment.yml").read_text(encoding="utf-8"))
    core = Requirement(definition["dependencies"]["ansible_core"]["package_pip"])
    assert (core.name, core.specifier) == ("ansible", pinned)
    assert "medinfra" in collection  # the collection's plugins import it


def test_the_collection_metadata_names_the_files_the_definition_uses() -> None:
    meta = yaml.safe_load((ROOT / "meta" / "execution-environment.yml").read_text(encoding="utf-8"))
    definition = yaml.safe_load((ROOT / "execution-environment.yml").read_text(encoding="utf-8"))
    for kind in ("python", "system"):
        assert meta["dependencies"][kind] == definition["dependencies"][kind]
        assert (ROOT / meta["dependencies"][kind]).is_file()
