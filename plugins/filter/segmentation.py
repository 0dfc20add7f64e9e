"""Filter `medinfra.hospital.nftables`: a host's nftables table from the site topology (logic in
medinfra.segmentation). Documented by the sidecar file nftables.yml."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from ipaddress import IPv4Network
from typing import Any

from ansible.errors import AnsibleFilterError
from ansible_collections.medinfra.hospital.plugins.plugin_utils.medinfra_package import require_medinfra

try:
    from medinfra.collector import collector_module
    from medinfra.segmentation.rules import host_ruleset, parse_egress, parse_openings
    from medinfra.topology.load import topology_host
except ImportError as exc:
    MEDINFRA_IMPORT_ERROR: ImportError | None = exc
else:
    MEDINFRA_IMPORT_ERROR = None


def nftables(
    topology: Mapping[str, Any],
    host: str,
    openings: Sequence[Mapping[str, Any]] = (),
    management: Sequence[str] = (),
    egress: Sequence[Mapping[str, Any]] = (),
    users: Mapping[str, Sequence[str]] | None = None,
) -> str:
    require_medinfra("medinfra.hospital.nftables", MEDINFRA_IMPORT_ERROR)
    try:
        model, target = topology_host(topology, host)
        declared = parse_openings(model, openings, "network_segmentation_openings")
        networks = [IPv4Network(str(item), strict=False) for item in management]
        uids = {name: int(entry[1]) for name, entry in (users or {}).items()}
        limits = parse_egress(model, egress, uids, "network_segmentation_egress")
    except ValueError as exc:
        raise AnsibleFilterError(f"medinfra.hospital.nftables: {exc}") from None
    return host_ruleset(model, target, declared, networks, limits, collector_module().TURN_INTERNAL_NETWORKS)


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"nftables": nftables}
