"""The evidence collector as the controller sees it: its source (sent to hosts) and its code (reused).

The collector lives in plugins/module_utils so Ansible modules can import it; the controller loads
the same file, so Debian version ordering and the evidence constants exist in one place only.
"""

from __future__ import annotations

import importlib.util
from functools import cache
from types import ModuleType

from medinfra.paths import COLLECTOR_PATH


@cache
def collector_source() -> str:
    return COLLECTOR_PATH.read_text(encoding="utf-8")


@cache
def collector_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("medinfra_collector", COLLECTOR_PATH)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load the collector from {COLLECTOR_PATH}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def compare_debian_versions(left: str, right: str) -> int:
    result: int = collector_module().compare_debian_versions(left, right)
    return result
