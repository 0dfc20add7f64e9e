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
options:
  paths:
    description:
      - The host's C(medinfra_paths) (the hospital inventory plugin sets it; a site overrides it as a whole map),
        where the collector reads the site PKI, medinfra's state and the backup configuration and state.
      - Keys C(pki), C(state), C(backup_config), C(backup_state), each a plain absolute path.
      - When not given, the site default the inventory plugin publishes (C(pki=/etc/medinfra/pki), ...).
    type: dict
attributes:
  check_mode:
    support: full
    description: Reads only, so it runs the same under C(--check).
  diff_mode:
    support: none
    description: Changes nothing, so there is no diff.
  platform:
    support: full
    platforms: debian
    description: Debian 12 hosts as the medinfra roles configure them.
author: medinfra maintainers (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Collect evidence
  medinfra.hospital.evidence:
    paths: "{{ medinfra_paths }}"
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
from ansible_collections.medinfra.hospital.plugins.module_utils.collector import HOST_PATHS, collect  # noqa: E402


def main() -> None:
    module = AnsibleModule(argument_spec={"paths": {"type": "dict"}}, supports_check_mode=True)
    paths = module.params["paths"]
    try:
        evidence = collect(dict(HOST_PATHS) if paths is None else paths)
    except ValueError as exc:  # an unusable medinfra_paths, named with what is wrong
        module.fail_json(msg=str(exc))
    module.exit_json(changed=False, evidence=evidence)


if __name__ == "__main__":
    main()
