"""The wheel and the collection installed where the checkout is not (tests/integration/packaging.py), run from a
directory without ansible.cfg: the catalog, the roles, the inventory plugin and the version all come from the
installed artefacts. What needs the lab (an audit, a playbook by FQCN) is in test_lab.py."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
import yaml

from medinfra.compliance.catalog import load_catalog
from medinfra.roledoc import BEGIN, END
from tests.conftest import ROOT, TERTIARY_TOPOLOGY
from tests.integration.packaging import Installed, installed  # noqa: F401 (a session fixture, shared with test_lab)

pytestmark = pytest.mark.integration

ROLES = sorted(p.parent.parent.name for p in (ROOT / "roles").glob("*/meta/argument_specs.yml"))


def installed_collection(site: Installed) -> Path:
    return site.collections / "ansible_collections" / "medinfra" / "hospital"


def test_fresh_install_is_quick_and_holds_no_checkout(installed: Installed) -> None:  # noqa: F811
    print(f"built the wheel and the collection in {installed.build_seconds:.1f} s, "
          f"installed both into a fresh venv in {installed.install_seconds:.1f} s")
    assert installed.install_seconds < 300
    site = next((installed.venv / "lib").glob("python3*/site-packages"))
    assert (site / "medinfra" / "control_catalog" / "controls").is_dir()
    assert (site / "medinfra" / "hostside" / "collector" / "collect.py").is_file()
    assert not [path for path in site.glob("*.pth") if str(ROOT) in path.read_text(encoding="utf-8")]
    # Test tools and the PostgreSQL driver are extras, not what a site installs to audit.
    assert not list(site.glob("testinfra")) and not list(site.glob("psycopg"))


def test_version_is_galaxy_ymls(installed: Installed) -> None:  # noqa: F811
    version = yaml.safe_load((ROOT / "galaxy.yml").read_text(encoding="utf-8"))["version"]
    result = installed.run("medinfra", "--version")
    assert (result.returncode, result.stdout) == (0, f"medinfra {version}\n"), result.stderr
    manifest = installed_collection(installed) / "MANIFEST.json"
    assert yaml.safe_load(manifest.read_text(encoding="utf-8"))["collection_info"]["version"] == version


def test_topology_validate_on_a_copy_of_the_tertiary_site(installed: Installed) -> None:  # noqa: F811
    shutil.copytree(TERTIARY_TOPOLOGY.parent, installed.workdir / "tertiary")
    result = installed.run("medinfra", "topology", "validate", "tertiary")
    assert result.returncode == 0, result.stderr
    counts = "11 zones, 59 hosts, 97 flows, 11 interfaces"
    assert result.stdout == f"tertiary/hospital.yml: valid: site 'tertiary', {counts}\n"


def test_roles_doc_documents_the_installed_collections_roles(installed: Installed) -> None:  # noqa: F811
    roles = installed_collection(installed) / "roles"
    assert sorted(p.parent.parent.name for p in roles.glob("*/meta/argument_specs.yml")) == ROLES
    for readme in roles.glob("*/README.md"):  # each variable table emptied: stale
        text = readme.read_text(encoding="utf-8")
        readme.write_text(text[: text.index(BEGIN) + len(BEGIN)] + text[text.index(END) :], encoding="utf-8")
    result = installed.run("medinfra", "roles", "doc")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [f"updated {roles / role / 'README.md'}" for role in ROLES]
    for role in ROLES:
        assert (roles / role / "README.md").read_text(encoding="utf-8") == (ROOT / "roles" / role / "README.md")\
            .read_text(encoding="utf-8")


def test_audit_loads_the_installed_catalog_and_reads_the_inventory_with_ansibles_defaults(
    installed: Installed,  # noqa: F811
) -> None:
    """Every control of the packaged catalog, the inventory read through the collection's plugin by Ansible's `auto`
    plugin (no ansible.cfg here); the one host refuses on the loopback, so nothing leaves this machine."""
    site = installed.workdir / "loopback"
    shutil.copytree(TERTIARY_TOPOLOGY.parent, site)
    topology = yaml.safe_load((site / "hospital.yml").read_text(encoding="utf-8"))
    assert topology["plugin"] == "medinfra.hospital.hospital"
    (site / "host_vars" / "bastion-01").mkdir(parents=True)
    (site / "host_vars" / "bastion-01" / "loopback.yml").write_text("ansible_host: 127.0.0.1\nansible_port: 9\n")
    result = installed.run("medinfra", "audit", "-i", "loopback", "-l", "bastion-01", "-o", "out", "--no-history")
    assert result.returncode == 3, result.stdout + result.stderr  # every host unreachable
    controls = len(load_catalog().controls)
    assert f"audit of loopback via pyinfra: 1 host(s), {controls} controls" in result.stdout
    assert re.search(r"^  bastion-01: UNREACHABLE: SSH: .* port 9 on 127\.0\.0\.1\)$", result.stdout, re.MULTILINE)


def test_a_postgresql_history_without_the_extra_says_which_to_install(installed: Installed) -> None:  # noqa: F811
    result = installed.run("medinfra", "history", "--history", "postgresql://audit@127.0.0.1:9/medinfra")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "pip install 'medinfra[postgres]'" in result.stderr
