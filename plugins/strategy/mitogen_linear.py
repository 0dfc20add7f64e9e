"""Ansible's linear strategy run over Mitogen: one Python interpreter per host (and per become user) for the whole
play, instead of a new SSH command, sudo and Python start for every task."""

from __future__ import annotations

DOCUMENTATION = r"""
name: mitogen_linear
short_description: The linear strategy over Mitogen's persistent per-host interpreters
description:
  - Runs tasks exactly like C(ansible.builtin.linear) (every host finishes a task before any starts the next), but
    executes modules in a Python interpreter that Mitogen starts once per host and become user and keeps for the
    run, so a task costs a message instead of an SSH command, a C(sudo) and a Python start.
  - Needs the C(mitogen) Python package on the controller (C(pip install mitogen)); hosts need only Python 3.
  - Connections Mitogen does not handle (for example C(medinfra.hospital.podman)) run as with the linear strategy.
  - Runs one Mitogen connection multiplexer per controller core unless C(MITOGEN_CPU_COUNT) says otherwise
    (Mitogen's own default is one).
  - Select it with C(strategy = medinfra.hospital.mitogen_linear) in ansible.cfg (medinfra's does) or
    C(ANSIBLE_STRATEGY); C(ANSIBLE_STRATEGY=linear) turns it off.
author: medinfra maintainers (!UNKNOWN)
"""

import os  # noqa: E402 (Ansible reads DOCUMENTATION above from the source)

# One multiplexer per core, not Mitogen's default of one: the lab's idempotent converge took 120 s with two on 2 cores
# against 135 s with one in one pair of runs, though a later pair showed the opposite (159-169 s against 152 s), so
# this wants measuring again. MITOGEN_CPU_COUNT set by the user wins.
os.environ.setdefault("MITOGEN_CPU_COUNT", str(os.cpu_count() or 1))

try:
    import ansible_mitogen.loaders
    import ansible_mitogen.strategy
except ImportError as exc:
    # ImportError, which Ansible reports with the plugin's name (an AnsibleError raised at import time is not).
    raise ImportError(
        "strategy medinfra.hospital.mitogen_linear needs the mitogen Python package on the controller "
        f"(pip install mitogen), or choose another strategy (ANSIBLE_STRATEGY=linear): {exc}"
    ) from exc

Base = ansible_mitogen.loaders.strategy_loader.get("linear", class_only=True)


class StrategyModule(ansible_mitogen.strategy.StrategyMixin, Base):  # type: ignore[misc,valid-type]
    pass
