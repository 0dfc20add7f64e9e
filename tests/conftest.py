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


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--shard", default=None, metavar="K/N",
        help="run only every N-th collected test, starting at the K-th (0-based): `make test-unit` runs N at once",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    shard = config.getoption("--shard")
    if shard is None:
        return
    index, _, count = str(shard).partition("/")
    if not (index.isdigit() and count.isdigit() and int(index) < int(count)):
        raise pytest.UsageError(f"--shard {shard}: must be K/N with 0 <= K < N")
    # Round robin, so that each shard gets a share of every module's tests (and of the slow ones).
    ours = [position % int(count) == int(index) for position in range(len(items))]
    config.hook.pytest_deselected(items=[item for item, keep in zip(items, ours, strict=True) if not keep])
    items[:] = [item for item, keep in zip(items, ours, strict=True) if keep]
