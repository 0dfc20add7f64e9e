"""The command line as a user meets it: exit codes and messages, never tracebacks."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from medinfra.cli import main
from tests.conftest import LAB_TOPOLOGY, ROOT, TERTIARY_TOPOLOGY, write_yaml

MEDINFRA = Path(sys.executable).with_name("medinfra")


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(MEDINFRA), *args], capture_output=True, text=True, check=False)


def test_validate_good_topologies() -> None:
    result = run("topology", "validate", str(LAB_TOPOLOGY.parent), str(TERTIARY_TOPOLOGY))
    assert result.returncode == 0, result.stderr
    assert "valid: site 'lab', 7 zones, 13 hosts" in result.stdout
    assert "valid: site 'tertiary', 11 zones, 59 hosts" in result.stdout


def test_validate_bad_topology_exits_2_with_every_problem(tmp_path: Path, topology_data: dict[str, Any]) -> None:
    topology_data["hosts"][4]["zone"] = "icu"
    topology_data["flows"][1]["ports"] = ["70000-80000"]
    path = write_yaml(tmp_path / "hospital.yml", topology_data)
    result = run("topology", "validate", str(path))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert f"{path}:" in result.stderr
    assert "hosts[4].zone: unknown zone 'icu'" in result.stderr
    assert "flows[1].ports[0]: bad port range '70000-80000'" in result.stderr
    assert "2 problem(s)" in result.stderr


def test_lab_commands_with_a_bad_topology_change_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "hospital.yml").write_text("site: {name: x}\n")
    # `lab status` loads the topology before touching podman: a user error comes first, exit 2.
    code = main(["lab", "ssh", "-i", str(tmp_path), "his-db"])
    assert code == 2
    err = capsys.readouterr().err
    assert "'title' is a required property" in err
    assert not (tmp_path / ".lab").exists()


def test_ssh_to_an_unknown_host_names_the_hosts(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["lab", "ssh", "-i", str(LAB_TOPOLOGY.parent), "nosuch"]) == 1
    err = capsys.readouterr().err
    assert "no host 'nosuch'" in err and "his-db" in err


def test_missing_prerequisite_names_the_install_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    code = main(["lab", "status", "-i", str(LAB_TOPOLOGY.parent)])
    assert code == 1
    err = capsys.readouterr().err
    assert "apt-get install -y" in err and "podman" in err and "debootstrap" in err


def test_lab_refuses_to_run_without_root(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr("os.geteuid", lambda: 1000)
    assert main(["lab", "up", "-i", str(LAB_TOPOLOGY.parent)]) == 1
    assert "the lab needs root" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["audit", "--forks", "-3"], "argument --forks: -3 is less than 1"),  # once a gevent ValueError traceback
        (["audit", "--forks", "0"], "argument --forks: 0 is less than 1"),
        (["audit", "--forks", "9" * 5000], "argument --forks: '9999"),  # past int()'s 4,300 digits
        (["audit", "--timeout", "nan"], "argument --timeout: nan is not more than 0 and at most 3600 seconds"),
        (["audit", "--timeout", "-1"], "argument --timeout: -1 is not more than 0"),
        (["audit", "--timeout", "inf"], "argument --timeout: inf is not more than 0"),
        (["audit", "--timeout", "soon"], "argument --timeout: 'soon' is not a number of seconds"),
        (["segmentation", "verify", "--timeout", "0"], "argument --timeout: 0 is not more than 0"),
        (["history", "--limit", "-1"], "argument --limit: -1 is less than 1"),
        (["diff", "0"], "argument RUN_A: 0 is less than 1"),
    ],
)
def test_numeric_options_out_of_range_exit_2_before_anything_runs(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(args)
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


@pytest.mark.parametrize("roles_dir", ["/nonexistent-roles", "/dev/zero"])
def test_roles_doc_on_a_missing_roles_directory_is_a_located_error(
    roles_dir: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["roles", "doc", "--roles-dir", roles_dir]) == 2
    assert capsys.readouterr().err == f"{roles_dir}: (top level): is not a directory of roles\n"


def test_roles_doc_without_the_collection_names_where_ansible_looked(tmp_path: Path) -> None:
    """Roles are the collection's: outside a checkout and with no collection installed, the error says where Ansible
    searched (its own configuration: no ansible.cfg here, the collections path from the environment)."""
    empty = tmp_path / "collections"
    empty.mkdir()
    environment = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "ANSIBLE_COLLECTIONS_PATH": str(empty)}
    result = subprocess.run([str(MEDINFRA), "roles", "doc"], capture_output=True, text=True, check=False,
                            cwd=tmp_path, env=environment)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.startswith("medinfra: the Ansible collection medinfra.hospital is not installed in")
    assert f"collections paths ({empty})" in result.stderr


def test_version_is_the_collections(capsys: pytest.CaptureFixture[str]) -> None:
    """galaxy.yml holds the one version; the installed package reports it."""
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out == f"medinfra {yaml.safe_load((ROOT / 'galaxy.yml').read_text())['version']}\n"


@pytest.mark.parametrize("prefix", ["keys/", "keys/.", "keys/.."])
def test_keys_generate_needs_a_file_name_prefix(
    prefix: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["keys", "generate", "--out", prefix]) == 2
    assert "needs a file name after the directory" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.rglob("*")) == []  # once wrote keys.key and keys.pub beside keys/
