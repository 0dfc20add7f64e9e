from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from ansible.plugins.loader import init_plugin_loader

ROOT = Path(__file__).resolve().parent.parent
LAB_TOPOLOGY = ROOT / "inventories" / "lab" / "hospital.yml"
TERTIARY_TOPOLOGY = ROOT / "inventories" / "example-tertiary" / "hospital.yml"
# The checkout as the collection medinfra.hospital (ansible.cfg's collections_path); `make venv` makes the link.
COLLECTIONS = ROOT / ".cache" / "collections"
if not (COLLECTIONS / "ansible_collections" / "medinfra" / "hospital" / "galaxy.yml").is_file():
    raise pytest.UsageError(f"{COLLECTIONS}/ansible_collections/medinfra/hospital: no link to the checkout; "
                            "run `make venv`")
# Tests import plugins as Ansible does, through its collection finder (ansible_collections.medinfra.hospital...).
init_plugin_loader([str(COLLECTIONS)])


@pytest.fixture(scope="session")
def lab_data() -> dict[str, Any]:
    return yaml.safe_load(LAB_TOPOLOGY.read_text(encoding="utf-8"))


@pytest.fixture
def topology_data(lab_data: dict[str, Any]) -> dict[str, Any]:
    """A fresh, mutable copy of the lab topology for a test to break."""
    return copy.deepcopy(lab_data)


def write_yaml(path: Path, data: Any) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return path
