"""Topology -> Ansible inventory (groups and variables). Pure; the inventory plugin only copies it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from medinfra.collector import default_paths
from medinfra.segmentation.rules import Allow, forward_rules
from medinfra.topology.groups import (
    DATABASE_HA_GROUP,
    LEGACY_GROUP,
    MANAGED_GROUP,
    PHI_GROUP,
    SLA_PREFIX,
    ZONE_PREFIX,
    group_name,
)
from medinfra.topology.interfaces import served_interfaces
from medinfra.topology.model import Host, Topology
from medinfra.topology.redundancy import database_pairs, pair_of, pair_vars


@dataclass(frozen=True)
class InventoryData:
    groups: dict[str, tuple[str, ...]]
    host_vars: dict[str, dict[str, Any]]
    all_vars: dict[str, Any]


def allow_dict(rule: Allow) -> dict[str, Any]:
    return {
        "sources": [str(net) for net in rule.sources],
        "destinations": [str(net) for net in rule.destinations],
        "proto": rule.proto,
        "ports": [str(p) for p in rule.ports],
        "purpose": rule.comment,
    }


def host_vars(topology: Topology, host: Host) -> dict[str, Any]:
    zone = topology.zone(host.zone)
    sla = topology.sla_classes[host.sla]
    pair = pair_of(topology, host.name)
    return {
        "ansible_host": str(host.address),
        # The topology's address stays here when an inventory points ansible_host elsewhere (a jump name).
        "medinfra_address": str(host.address),
        "medinfra_zone": zone.name,
        "medinfra_zone_cidr": str(zone.network),
        "medinfra_zone_gateway": str(zone.gateway) if zone.gateway else None,
        "medinfra_trust": zone.trust,
        "medinfra_services": list(host.services),
        "medinfra_sla": {"name": sla.name, "rpo_minutes": sla.rpo_minutes, "rto_minutes": sla.rto_minutes},
        "medinfra_data_classification": host.data_classification,
        "medinfra_data_paths": list(host.data_paths),
        "medinfra_legacy": host.legacy,
        "medinfra_flows_in": [f.to_dict() for f in topology.flows_to(host)],
        "medinfra_flows_out": [f.to_dict() for f in topology.flows_from(host)],
        "medinfra_interfaces_in": served_interfaces(topology, host),
        # The database pair this host is a member of or proxies for (the database_ha role), else None.
        "medinfra_database_pair": pair_vars(topology, pair) if pair else None,
        # What a zone firewall must route (and nothing else), the reference its audit probes the live ruleset with.
        "medinfra_forwarded_flows": [allow_dict(rule) for rule in forward_rules(topology)]
        if "zone_firewall" in host.services
        else [],
    }


def build_inventory(topology: Topology) -> InventoryData:
    groups: dict[str, list[str]] = {}
    for host in topology.hosts:
        names = [group_name(ZONE_PREFIX, host.zone), group_name(SLA_PREFIX, host.sla), *host.services]
        if host.data_classification == "phi":
            names.append(PHI_GROUP)
        names.append(LEGACY_GROUP if host.legacy else MANAGED_GROUP)
        for name in names:
            groups.setdefault(name, []).append(host.name)
    for zone in topology.zones:
        groups.setdefault(group_name(ZONE_PREFIX, zone.name), [])
    groups[DATABASE_HA_GROUP] = [name for pair in database_pairs(topology) for name in pair.quorum]
    return InventoryData(
        groups={name: tuple(members) for name, members in groups.items()},
        host_vars={host.name: host_vars(topology, host) for host in topology.hosts},
        all_vars={
            "medinfra_site": topology.site.name,
            "medinfra_topology": topology.to_dict(),
            # On `all`, where a site's group_vars (and host_vars) override it: inventory group variables rank lowest.
            "medinfra_paths": default_paths(),
            # The zones alone, small enough for every host's audit view (the firewall probes come from them).
            "medinfra_zones": [{"name": z.name, "cidr": str(z.network), "purpose": z.purpose} for z in topology.zones],
        },
    )
