"""The evidence collector as the controller sees it: one program (sent to hosts) and its code (reused).

The collector is a package in plugins/module_utils (installed with medinfra as `medinfra.hostside.collector`),
one module per area, so that Ansible modules import it (AnsiballZ bundles the package). pyinfra pipes one file
to `python3 -`, so the controller bundles the modules into one program here: in dependency order, without the
package's own imports; `collector_program` ends it with a call of `main()` given the host's paths. The
controller loads that same program, so Debian version ordering, the evidence constants and the default host
paths exist in one place only.
"""

from __future__ import annotations
import __future__

import ast
import json
import re
from collections.abc import Mapping
from functools import cache
from types import ModuleType

from medinfra.package_data import COLLECTOR_PACKAGE, collector_sources, hostside_module, package_directory

RELATIVE_IMPORT = re.compile(r"^from \.(\w+) import (\([^)]*\)|[^\n]*)\n", re.M)
FUTURE_IMPORT = "from __future__ import annotations\n"


def package_modules() -> dict[str, str]:
    """Every module of the package but `__init__`, by name."""
    return {name: text for name, text in sorted(collector_sources().items()) if name != "__init__"}


def dependency_order(modules: dict[str, str]) -> list[str]:
    """Modules after the modules they import from (a topological order, ties by name)."""
    needs = {name: {match.group(1) for match in RELATIVE_IMPORT.finditer(text)} for name, text in modules.items()}
    ordered: list[str] = []
    while len(ordered) < len(modules):
        ready = sorted(name for name in modules if name not in ordered and needs[name] <= set(ordered))
        if not ready:
            raise ImportError(f"import cycle among collector modules: {sorted(set(modules) - set(ordered))}")
        ordered.append(ready[0])
    return ordered


def _blank(match: re.Match[str]) -> str:
    return "\n" * match.group(0).count("\n")


def bundled_text(text: str) -> str:
    """A module as the bundle holds it: its package imports and its `__future__` import blanked, every other line
    where it was, so that a line of the bundle's part is the same line of the module's file."""
    return RELATIVE_IMPORT.sub(_blank, text).replace(FUTURE_IMPORT, "\n")


def bundle(modules: dict[str, str]) -> str:
    """One standard-library program from the package's modules, each under a comment naming it (definitions only)."""
    parts = [FUTURE_IMPORT]
    for name in dependency_order(modules):
        parts.append(f"\n# ---------------------------------------------------------------- {name}\n"
                     f"{bundled_text(modules[name])}")
    return "".join(parts)


@cache
def collector_source() -> str:
    source = bundle(package_modules())
    ast.parse(source)  # a bundling mistake fails here, on the controller, not on a hundred hosts
    return source


def collector_program(paths: Mapping[str, str]) -> str:
    """The program a host runs: the collector, then `main` called with the host's `medinfra_paths`.

    The map travels inside the program text (stdin), never on a command line, as the Python literal of its JSON
    text: no value can be read as code. The collector checks the map before it reads anything.
    """
    text = json.dumps({str(key): str(value) for key, value in paths.items()}, sort_keys=True)
    return f"{collector_source()}\n\nmain(json.loads({text!r}))\n"


def default_paths() -> dict[str, str]:
    """The site default of `medinfra_paths` (the collector package's HOST_PATHS), imported as the installed
    package, not through the bundled program: the inventory plugin needs it on every parse."""
    return dict(hostside_module("collector.paths").HOST_PATHS)


@cache
def collector_module() -> ModuleType:
    """The bundled program as a module: every area's functions in one namespace, as on the host, the bundle's parts
    run in its order. Each part is compiled under its module's file (their lines are the same), so that tracebacks
    and coverage name the file and line of plugins/module_utils/collector a function came from."""
    collector_source()  # the bundle parses, as on a host
    modules = package_modules()
    folder = package_directory(COLLECTOR_PACKAGE)
    module = ModuleType("medinfra_collector")
    for name in dependency_order(modules):
        code = compile(bundled_text(modules[name]), str(folder / f"{name}.py"), "exec",
                       flags=__future__.annotations.compiler_flag, dont_inherit=True)
        exec(code, module.__dict__)
    return module


def compare_debian_versions(left: str, right: str) -> int:
    result: int = collector_module().compare_debian_versions(left, right)
    return result
