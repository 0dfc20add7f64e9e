"""The collection medinfra.hospital: the real `ansible-doc` parses every plugin's documentation, and the real
`ansible-galaxy collection build` makes an artifact without the checkout's tests, Python sources or lab state."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from ansible_collections.medinfra.hospital.plugins.filter import (
    interfaces,
    monitoring,
    oncall,
    rtc_probe,
    rtc_relay,
    segmentation,
)

from tests.conftest import COLLECTIONS, ROOT

ANSIBLE_DOC = Path(sys.executable).with_name("ansible-doc")
ANSIBLE_GALAXY = Path(sys.executable).with_name("ansible-galaxy")
ANSIBLE_PLAYBOOK = Path(sys.executable).with_name("ansible-playbook")
COLLECTION = "medinfra.hospital"
PLUGINS = ROOT / "plugins"


def stems(directory: str) -> list[str]:
    return sorted(path.stem for path in (PLUGINS / directory).glob("*.py") if path.stem != "__init__")


def filter_names() -> list[str]:
    modules = {path.stem for path in (PLUGINS / "filter").glob("*.py")}
    # Every filter file is imported here, so that a new one is not left out of this test.
    assert modules == {"interfaces", "monitoring", "oncall", "rtc_probe", "rtc_relay", "segmentation"}
    loaded = (interfaces, monitoring, oncall, rtc_probe, rtc_relay, segmentation)
    return sorted(name for module in loaded for name in module.FilterModule().filters())


# What the checkout holds, by plugin type; an action plugin is documented by the module file of its name.
EXPECTED = {
    "module": stems("modules"),
    "filter": filter_names(),
    "connection": stems("connection"),
    "inventory": stems("inventory"),
}


def ansible(tool: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """An Ansible command run from `cwd` (outside the checkout) with the checkout's ansible.cfg."""
    env = {**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1"}
    return subprocess.run([str(tool), *args], capture_output=True, text=True, cwd=cwd, env=env, check=False,
                          timeout=120)


def ansible_doc(plugin_type: str, names: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """One ansible-doc run for all plugins of a type."""
    return ansible(ANSIBLE_DOC, "--json", "-t", plugin_type, *(f"{COLLECTION}.{name}" for name in names), cwd=cwd)


@pytest.fixture(scope="module")
def docs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    cwd = tmp_path_factory.mktemp("elsewhere")
    with ThreadPoolExecutor(len(EXPECTED)) as pool:
        runs = {kind: pool.submit(ansible_doc, kind, names, cwd) for kind, names in EXPECTED.items()}
        results = {kind: run.result() for kind, run in runs.items()}
    parsed = {}
    for kind, result in results.items():
        assert result.returncode == 0 and "[ERROR]" not in result.stderr, f"ansible-doc -t {kind}:\n{result.stderr}"
        parsed[kind] = json.loads(result.stdout)
    return parsed


def test_every_action_plugin_has_a_module_file_for_its_docs() -> None:
    assert stems("action") == ["findings"]
    assert set(stems("action")) <= set(EXPECTED["module"])
    assert "evidence" in EXPECTED["module"] and "hospital" in EXPECTED["inventory"]


@pytest.mark.parametrize("kind", sorted(EXPECTED))
def test_ansible_doc_parses_every_plugin(docs: dict[str, dict[str, Any]], kind: str) -> None:
    found = docs[kind]
    assert sorted(found) == [f"{COLLECTION}.{name}" for name in EXPECTED[kind]]
    for fqcn, entry in found.items():
        doc = entry["doc"]
        short = fqcn.removeprefix(f"{COLLECTION}.")
        assert doc["module" if kind == "module" else "name"] == short, fqcn
        assert doc["short_description"] and doc["description"], fqcn
        if kind != "connection":  # a connection is chosen by a variable, not used in a task: no examples
            assert f"{COLLECTION}." in entry["examples"], fqcn
        if kind == "filter":
            assert "_input" in doc["options"] and entry["return"]["_value"]["description"], fqcn


# Not the collection: the Python package and its catalog (they ship in the wheel), tests (but tests/sanity, which
# ansible-test reads from the installed collection), Molecule scenarios, benchmarks, tooling and what
# `medinfra lab up` writes beside a topology (keys, vault password, secrets).
NOT_SHIPPED = ("tests/unit/", "tests/integration/", "tests/data/", "tests/promtool/", "src/", "benchmarks/",
               "compliance/", "scripts/", "molecule/", ".cache/", ".venv/", "reports/")
LAB_STATE = ("/.lab/", "/.pki/", "lab_connection.yml", "lab_secrets.yml")


def test_the_built_collection_holds_the_collection_and_nothing_else(tmp_path: Path) -> None:
    built = ansible(ANSIBLE_GALAXY, "collection", "build", str(ROOT), "--output-path", str(tmp_path), cwd=tmp_path)
    assert built.returncode == 0, built.stderr
    (artifact,) = tmp_path.glob("medinfra-hospital-*.tar.gz")
    with tarfile.open(artifact) as archive:
        names = [member.name + ("/" if member.isdir() else "") for member in archive.getmembers()]
    assert not [name for name in names if name.startswith(NOT_SHIPPED) or any(part in f"/{name}" for part in LAB_STATE)]
    assert [name for name in names if name.startswith("tests/") and not name.startswith("tests/sanity/")] == ["tests/"]
    assert not [name for name in names if "/molecule/" in name]
    shipped = {"MANIFEST.json", "meta/runtime.yml", "playbooks/site.yml", "plugins/modules/evidence.py",
               "plugins/action/findings.py", "plugins/filter/bcrypt.yml", "roles/pki/meta/argument_specs.yml",
               "tests/sanity/ignore-2.19.txt"}
    assert shipped <= set(names)


def test_a_filter_without_the_medinfra_package_names_what_to_install() -> None:
    """The collection installed without `pip install medinfra`: the filter loads and, used, says what is missing."""
    program = f"""
import sys
sys.modules["medinfra"] = None  # `import medinfra` now fails as if the package were not installed
from ansible.plugins.loader import init_plugin_loader
init_plugin_loader([{str(COLLECTIONS)!r}])
from ansible.errors import AnsibleError
from ansible_collections.medinfra.hospital.plugins.filter import rtc_relay
try:
    rtc_relay.turn_range("10.231.10.0/24")
except AnsibleError as exc:
    print(exc)
"""
    ran = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, check=False, timeout=60)
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.startswith("medinfra.hospital.turn_range needs the medinfra Python package on the controller "
                                 "(pip install medinfra): "), ran.stdout
    assert "Traceback" not in ran.stdout + ran.stderr


PLAYBOOKS = sorted(path.stem for path in (ROOT / "playbooks").glob("*.yml"))


@pytest.mark.parametrize("way", ["file", "fqcn"])
def test_every_playbook_resolves_its_roles_modules_and_imports(tmp_path: Path, way: str) -> None:
    """Run as files of the checkout and by FQCN (as from an installed collection): the syntax check resolves
    roles, modules and imported playbooks, and fails on any it cannot find."""
    names = [str(ROOT / "playbooks" / f"{n}.yml") if way == "file" else f"{COLLECTION}.{n}" for n in PLAYBOOKS]
    checked = ansible(ANSIBLE_PLAYBOOK, "-i", "localhost,", "--syntax-check", *names, cwd=tmp_path)
    assert checked.returncode == 0 and "[ERROR]" not in checked.stderr, checked.stderr
    assert checked.stdout.count("playbook: ") == len(PLAYBOOKS) >= 8
