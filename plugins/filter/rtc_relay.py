"""Filters for role rtc_relay (logic in plugins/module_utils/turn.py, shared with the relay's probe).

Documented by the sidecar file turn_range.yml (ansible-doc -t filter medinfra.hospital.turn_range).
"""

from __future__ import annotations

from typing import Any

from ansible.errors import AnsibleFilterError
from ansible_collections.medinfra.hospital.plugins.plugin_utils.medinfra_package import require_medinfra

try:
    from medinfra.turn import turn_module
except ImportError as exc:
    MEDINFRA_IMPORT_ERROR: ImportError | None = exc
else:
    MEDINFRA_IMPORT_ERROR = None


def turn_range(network: str) -> str:
    require_medinfra("medinfra.hospital.turn_range", MEDINFRA_IMPORT_ERROR)
    try:
        return str(turn_module().network_range(str(network)))
    except ValueError as exc:
        raise AnsibleFilterError(f"medinfra.hospital.turn_range: {exc}") from None


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"turn_range": turn_range}
