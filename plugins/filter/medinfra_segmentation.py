"""Filter `medinfra_nftables`: a host's nftables table from the site topology (logic in medinfra.segmentation)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from ipaddress import IPv4Network
from typing import Any

from ansible.errors import AnsibleFilterError

from medinfra.collector import collector_module
from medinfra.segmentation.rules import host_ruleset, parse_egress, parse_openings
from medinfra.topology.load import topology_host

DOCUMENTATION = r"""
name: medinfra_nftables
short_description: nftables ruleset of one host from the medinfra topology
description:
  - Renders C(table inet medinfra) for the host, replaced atomically by C(nft -f)
  - Input policy drop; SSH from the management zones and O(management); the topology's flows to the host;
    O(openings) declared by other roles. The zone firewall also gets a forward chain with exactly the flows.
  - O(egress) limits service users' new traffic into internal networks (an output chain matching their uid): the
    topology's zones and the private, loopback, link-local and other special ranges the audit calls internal.
positional: host, openings, management, egress, users
options:
  _input: {description: medinfra_topology (the inventory plugin's plain data), type: dict, required: true}
  host: {description: inventory name of the host, type: str, required: true}
  openings: {description: "list of {proto, ports, from, comment}", type: list, default: []}
  management: {description: extra addresses or networks allowed to SSH, type: list, default: []}
  egress: {description: "list of {user, allow: [zones, hosts or IPv4 networks], comment}", type: list, default: []}
  users: {description: "the host's passwd database as the getent module returns it ({name: [x, uid, ...]})",
          type: dict, default: {}}
"""


def medinfra_nftables(
    topology: Mapping[str, Any],
    host: str,
    openings: Sequence[Mapping[str, Any]] = (),
    management: Sequence[str] = (),
    egress: Sequence[Mapping[str, Any]] = (),
    users: Mapping[str, Sequence[str]] | None = None,
) -> str:
    try:
        model, target = topology_host(topology, host)
        declared = parse_openings(model, openings, "network_segmentation_openings")
        networks = [IPv4Network(str(item), strict=False) for item in management]
        uids = {name: int(entry[1]) for name, entry in (users or {}).items()}
        limits = parse_egress(model, egress, uids, "network_segmentation_egress")
    except ValueError as exc:
        raise AnsibleFilterError(f"medinfra_nftables: {exc}") from None
    return host_ruleset(model, target, declared, networks, limits, collector_module().TURN_INTERNAL_NETWORKS)


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"medinfra_nftables": medinfra_nftables}
