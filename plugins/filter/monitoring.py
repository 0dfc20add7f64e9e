"""Filters for the monitoring roles (logic in medinfra.monitoring): scrape targets and exporter credentials.

Documented by the sidecar files scrape_targets.yml and bcrypt.yml (ansible-doc -t filter medinfra.hospital.<name>).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ansible.errors import AnsibleFilterError
from ansible_collections.medinfra.hospital.plugins.plugin_utils.medinfra_package import require_medinfra

try:
    from medinfra.monitoring.credentials import bcrypt_hash
    from medinfra.monitoring.targets import parse_probes
    from medinfra.monitoring.targets import scrape_targets as topology_scrape_targets
    from medinfra.topology.load import topology_host
except ImportError as exc:
    MEDINFRA_IMPORT_ERROR: ImportError | None = exc
else:
    MEDINFRA_IMPORT_ERROR = None


def scrape_targets(
    topology: Mapping[str, Any], server: str, probes: Mapping[str, Sequence[Mapping[str, Any]]], node_port: int = 9100
) -> dict[str, list[Any]]:
    require_medinfra("medinfra.hospital.scrape_targets", MEDINFRA_IMPORT_ERROR)
    try:
        model, host = topology_host(topology, server)
        targets = topology_scrape_targets(
            model, host, parse_probes(probes, "monitoring_server_service_probes"), node_port
        )
    except ValueError as exc:
        raise AnsibleFilterError(f"medinfra.hospital.scrape_targets: {exc}") from None
    return {"node": targets.node, "blackbox": targets.blackbox, "skipped": targets.skipped}


def bcrypt(password: str, seed: str, cost: int = 12) -> str:
    """bcrypt hash with a salt derived from the password and ``seed`` (the host): reruns change nothing."""
    require_medinfra("medinfra.hospital.bcrypt", MEDINFRA_IMPORT_ERROR)
    try:
        return bcrypt_hash(str(password), str(seed), int(cost))
    except ValueError as exc:
        raise AnsibleFilterError(f"medinfra.hospital.bcrypt: {exc}") from None


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"scrape_targets": scrape_targets, "bcrypt": bcrypt}
