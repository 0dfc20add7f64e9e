from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
LAB_TOPOLOGY = ROOT / "inventories" / "lab" / "hospital.yml"
TERTIARY_TOPOLOGY = ROOT / "inventories" / "example-tertiary" / "hospital.yml"


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
