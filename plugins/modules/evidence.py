#!/usr/bin/python
"""Ansible module: collect medinfra evidence of a host's running state (read-only)."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: evidence
short_description: Collect evidence of a host's security state for the medinfra audit
description:
  - Reads the running state (effective sshd config, sysctls, auditd, accounts without hashes, PAM,
    sudo, listening sockets, nftables, services, packages, file modes, mounts, AIDE, chrony,
    unattended-upgrades, TLS endpoints) and returns one evidence document.
  - Changes nothing on the host. The same collector runs under C(medinfra audit) over pyinfra.
  - The controller side is M(medinfra.hospital.findings), which judges what every host returned.
options: {}
attributes:
  check_mode: {support: full, description: Reads only, so it runs the same under C(--check).}
  diff_mode: {support: none, description: Changes nothing, so there is no diff.}
  platform: {platforms: debian, description: Debian 12 hosts as the medinfra roles configure them.}
author: medinfra
"""

EXAMPLES = r"""
- name: Collect evidence
  medinfra.hospital.evidence:
  register: medinfra_audit_result
"""

RETURN = r"""
evidence:
  description: The evidence document (schema medinfra-evidence/1); facts that could not be read
    are objects with an C(unavailable) reason.
  returned: always
  type: dict
"""

from ansible.module_utils.basic import AnsibleModule  # noqa: E402 - after the documentation, as Ansible expects
from ansible_collections.medinfra.hospital.plugins.module_utils.collector import collect  # noqa: E402


def main() -> None:
    module = AnsibleModule(argument_spec={}, supports_check_mode=True)
    module.exit_json(changed=False, evidence=collect())


if __name__ == "__main__":
    main()
