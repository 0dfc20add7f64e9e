#!/usr/bin/python
"""Documentation of the action plugin medinfra.hospital.findings (plugins/action/findings.py), which runs on the
controller and has no module code: a collection documents an action plugin by a module file of the same name."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: findings
short_description: Judge the evidence of every host of the play and write medinfra findings and reports
description:
  - Runs on the controller once per play, after M(medinfra.hospital.evidence) registered each host's evidence.
  - Evaluates the control catalog against that evidence with the same code as C(medinfra audit), records the run
    in the history and writes the findings JSON, the HTML reports (English and Chinese), OSCAL, JUnit and CSV.
  - A host whose evidence is missing, failed or unreachable is reported as such, not dropped.
  - Secrets the inventory gives a host (become and SSH passwords, vault values) are redacted from everything written.
version_added: 0.1.0
options:
  out:
    description: Directory the findings and reports are written to.
    type: path
    default: reports
  catalog:
    description: Directory of the control catalog (controls, frameworks); the one shipped with medinfra by default.
    type: path
  waivers:
    description: YAML file of accepted exceptions (approver, risk acceptance, compensating control, expiry).
    type: path
  evidence_var:
    description: Name of the variable each host registered the result of M(medinfra.hospital.evidence) in.
    type: str
    default: medinfra_audit_result
  inventory:
    description: The inventory the run audited, as recorded in the reports and the history.
    type: str
    default: the play's C(inventory_dir)
  history:
    description:
      - Where the run is recorded, a SQLite file or a C(postgresql://) URL; an empty string keeps the run out of
        the history.
      - Defaults to C(MEDINFRA_HISTORY) or C(~/.local/share/medinfra/history.sqlite).
    type: str
  sign:
    description: Ed25519 private key that signs the report set's manifest (C(medinfra keys generate) makes one).
    type: path
attributes:
  action:
    support: full
    description: Runs on the controller only.
  check_mode:
    support: none
    description: Writes the reports whether or not C(--check) is given.
  diff_mode:
    support: none
    description: Prints no diff.
  platform:
    support: full
    platforms: posix
    description: The controller.
requirements:
  - the medinfra Python package on the controller (pip install medinfra)
author: medinfra maintainers (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Collect evidence of the running state (changes nothing)
  medinfra.hospital.evidence:
  register: medinfra_audit_result
  ignore_unreachable: true
  failed_when: false

- name: Judge the evidence, record the run, write findings and reports
  medinfra.hospital.findings:
    out: reports
    waivers: "{{ inventory_dir }}/waivers.yml"
  run_once: true
  delegate_to: localhost
  become: false
"""

RETURN = r"""
findings:
  description: Path of the findings JSON file.
  returned: success
  type: str
files:
  description: Every file written.
  returned: success
  type: list
  elements: str
exit_code:
  description:
    - What C(medinfra audit) would exit with. 0 no control failed; 1 a control failed or could not be judged;
      3 a host was not audited or the run was not recorded in the history.
  returned: success
  type: int
summary:
  description: The compliance summary, one line per item.
  returned: success
  type: list
  elements: str
history_error:
  description: Why the run was not recorded in the history (the reports are complete).
  returned: when recording failed
  type: str
"""
