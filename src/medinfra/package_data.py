"""Files installed with medinfra, found through importlib.resources, never by a path from a checkout.

pyproject.toml maps two directories of the repository into the package: compliance/ (the control catalog,
frameworks and schemas) is `medinfra.control_catalog`, and plugins/module_utils (the host-side programs, which
the collection's modules import too) is `medinfra.hostside`. Editable and wheel installs both give them.
"""

from __future__ import annotations

import importlib
from importlib import resources
from pathlib import Path
from types import ModuleType

CATALOG_PACKAGE = "medinfra.control_catalog"
HOSTSIDE_PACKAGE = "medinfra.hostside"
COLLECTOR_PACKAGE = f"{HOSTSIDE_PACKAGE}.collector"


def package_directory(package: str) -> Path:
    """The directory of an installed package: pip installs unpacked, so it is a directory on disk, and problems in
    its files can name that file."""
    return Path(str(resources.files(package)))


# The catalog `medinfra audit` and the findings action use unless given another one.
CATALOG_DIR = package_directory(CATALOG_PACKAGE)


def hostside_source(name: str) -> str:
    """The source of a host-side program (`reachability.py`, `turn.py`, ...), to send to hosts."""
    return resources.files(HOSTSIDE_PACKAGE).joinpath(name).read_text(encoding="utf-8")


def hostside_module(name: str) -> ModuleType:
    """A host-side program imported on the controller (`turn`, `collector.paths`, ...): standard library only, and
    outside mypy's view, since pyproject maps it in from plugins/module_utils."""
    return importlib.import_module(f"{HOSTSIDE_PACKAGE}.{name}")


def collector_sources() -> dict[str, str]:
    """The source of every module of the collector package (its `__init__` included), by module name."""
    files = resources.files(COLLECTOR_PACKAGE).iterdir()
    return {f.name.removesuffix(".py"): f.read_text(encoding="utf-8") for f in files if f.name.endswith(".py")}
