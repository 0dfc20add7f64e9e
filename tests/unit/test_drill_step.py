"""The drill's host-side step program: the isolation table nft accepts, and alerts matched in Alertmanager's answer
(recorded from a lab Alertmanager 0.25 while backup-01 was isolated)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from plugins.module_utils import drill_step

FIXTURES = Path(__file__).parent / "fixtures" / "alertmanager"


def test_the_isolation_table_is_valid_nft_and_keeps_only_ssh_from_the_sources(tmp_path: Path) -> None:
    rules = drill_step.isolation_rules(["10.231.10.0/24", "10.231.50.1", "fd00::1"], 2222)
    assert "ip saddr { 10.231.10.0/24, 10.231.50.1 } tcp dport 2222 accept" in rules
    assert "ip6 saddr { fd00::1 } tcp dport 2222 accept" in rules
    assert rules.count("policy drop") == 3
    nft = shutil.which("nft")
    if nft is None:
        pytest.fail("nft is missing: scripts/install-deps.sh installs nftables")
    path = tmp_path / "isolate.nft"
    path.write_text(rules, encoding="utf-8")
    checked = subprocess.run([nft, "-c", "-f", str(path)], capture_output=True, text=True, check=False)
    assert checked.returncode == 0, checked.stderr


def test_alerts_are_matched_by_name_and_labels() -> None:
    alerts = json.loads((FIXTURES / "alerts-backup-01-isolated.json").read_text(encoding="utf-8"))
    assert drill_step.matching(alerts, ["ExporterDown"], {"instance": "backup-01"}) == {
        "ExporterDown": ["backup-01"]}
    assert drill_step.matching(alerts, ["ExporterDown"], {"instance": "ws-01"}) == {}
    assert drill_step.matching(alerts, ["HostUnreachable"], {}) == {}


def test_tail_keeps_one_line_and_the_end() -> None:
    assert drill_step.tail("a\nb\tc ") == "a b c"
    assert drill_step.tail("x" * 400 + "END").endswith("END") and len(drill_step.tail("x" * 400)) == 301
