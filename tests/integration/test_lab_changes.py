"""`lab up` follows changes to the topology: a zone's CIDR, a removed host."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from medinfra.toolenv import run_tool
from tests.conftest import ROOT, write_yaml

pytestmark = pytest.mark.integration


SMALL: dict[str, Any] = {
    "site": {"name": "labchg", "title": "lab change test"},
    "sla_classes": {"std": {"rpo_minutes": 60, "rto_minutes": 60}},
    "zones": [
        {"name": "core", "cidr": "10.233.1.0/24", "gateway": "10.233.1.254", "trust": "high", "purpose": "his"},
        {"name": "edge", "cidr": "10.233.2.0/24", "gateway": "10.233.2.254", "trust": "low", "purpose": "dmz"},
    ],
    "hosts": [
        {
            "name": "gw",
            "zone": "core",
            "address": "10.233.1.254",
            "services": ["zone_firewall"],
            "sla": "std",
            "data_classification": "internal",
        },
        {
            "name": "db",
            "zone": "core",
            "address": "10.233.1.10",
            "services": ["his_db"],
            "sla": "std",
            "data_classification": "phi",
        },
        {
            "name": "web",
            "zone": "edge",
            "address": "10.233.2.10",
            "services": ["web_portal"],
            "sla": "std",
            "data_classification": "public",
        },
    ],
    "flows": [{"from": "edge", "to": "db", "proto": "tcp", "ports": [5432], "purpose": "test"}],
}


def medinfra(*args: str) -> subprocess.CompletedProcess[str]:
    return run_tool(ROOT, "medinfra", *args)


@pytest.fixture
def small_lab(tmp_path: Path) -> Iterator[Path]:
    write_yaml(tmp_path / "hospital.yml", SMALL)
    try:
        yield tmp_path
    finally:
        medinfra("lab", "down", "-i", str(tmp_path))


def test_up_follows_cidr_changes_and_removed_hosts(small_lab: Path) -> None:
    first = medinfra("lab", "up", "-i", str(small_lab))
    assert first.returncode == 0, first.stderr
    assert "3 hosts ready" in first.stdout

    changed = {**SMALL, "zones": [dict(SMALL["zones"][0]), SMALL["zones"][1]]}
    changed["zones"][0]["cidr"] = "10.233.0.0/23"  # same addresses, wider zone
    changed["hosts"] = SMALL["hosts"][:2]  # web is gone
    write_yaml(small_lab / "hospital.yml", changed)
    second = medinfra("lab", "up", "-i", str(small_lab))
    assert second.returncode == 0, second.stderr
    assert "removing leftover container labchg-web (no longer in the topology)" in second.stdout
    assert "recreating network medinfra-labchg-core (subnet changed)" in second.stdout
    assert "2 hosts ready" in second.stdout

    status = medinfra("lab", "status", "-i", str(small_lab))
    assert status.returncode == 0, status.stdout
    assert "2/2 hosts reachable over SSH" in status.stdout
