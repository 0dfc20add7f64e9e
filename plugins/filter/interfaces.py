"""Filters for the interface probe (logic in medinfra.monitoring.interfaces): the probe exporter's configuration
and the Prometheus targets of the job `interfaces`.

Documented by the sidecar files interface_probe_config.yml and interface_targets.yml
(ansible-doc -t filter medinfra.hospital.<name>).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ansible.errors import AnsibleFilterError
from ansible_collections.medinfra.hospital.plugins.plugin_utils.medinfra_package import require_medinfra

try:
    from medinfra.monitoring import interfaces
    from medinfra.topology.load import topology_host
except ImportError as exc:
    MEDINFRA_IMPORT_ERROR: ImportError | None = exc
else:
    MEDINFRA_IMPORT_ERROR = None


def interface_probe_config(
    topology: Mapping[str, Any], server: str, ca_file: str, timeout_seconds: float = 5
) -> dict[str, Any]:
    require_medinfra("medinfra.hospital.interface_probe_config", MEDINFRA_IMPORT_ERROR)
    try:
        model, host = topology_host(topology, server)
        return interfaces.probe_config(model, host, str(ca_file), float(timeout_seconds))
    except ValueError as exc:
        raise AnsibleFilterError(f"medinfra.hospital.interface_probe_config: {exc}") from None


def interface_targets(topology: Mapping[str, Any], server: str) -> dict[str, list[Any]]:
    require_medinfra("medinfra.hospital.interface_targets", MEDINFRA_IMPORT_ERROR)
    try:
        model, host = topology_host(topology, server)
    except ValueError as exc:
        raise AnsibleFilterError(f"medinfra.hospital.interface_targets: {exc}") from None
    targets, skipped = interfaces.interface_targets(model, host)
    return {"targets": targets, "skipped": skipped}


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"interface_probe_config": interface_probe_config, "interface_targets": interface_targets}
