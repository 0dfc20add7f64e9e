"""medinfra evidence collector: reads a Linux host's running state and returns one JSON document.

Runs ON the audited host with python3 and the standard library only, and changes nothing there.
Two transports carry it, each handing it the host's `medinfra_paths` (paths.py): the Ansible module
`medinfra.hospital.evidence` imports `collect()`, and `medinfra audit` pipes the package, bundled into one program
(`medinfra.collector.collector_program`), to `python3 -` over pyinfra.

Conventions of the document (see compliance/README.md):
- `facts.<section>` holds what was read. A fact that could not be read is the object
  `{"unavailable": "<reason>"}`, at any depth; the collector itself never fails.
- Timestamps are ISO 8601 UTC strings; the evaluator turns them into ages, so evidence stays a
  record of what was seen, not of when it was judged.
- Secrets are never read into the document: of a password hash only its state and scheme.
"""

from __future__ import annotations

from .collect import collect
from .paths import HOST_PATHS

__all__ = ["HOST_PATHS", "collect"]
