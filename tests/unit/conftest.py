"""Unit tests run Ansible's own linear strategy: Mitogen's bootstrap (ansible.cfg's default strategy) costs each short
local run about two seconds, 16 s of the suite. The lab's integration tests converge over Mitogen; Molecule stays
linear too."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def linear_strategy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANSIBLE_STRATEGY", "linear")
