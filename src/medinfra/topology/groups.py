"""The inventory groups a topology makes: one home for how zone and SLA names become Ansible group names."""

from __future__ import annotations

import re

ZONE_PREFIX = "zone"
SLA_PREFIX = "sla"
PHI_GROUP = "phi"
LEGACY_GROUP = "legacy"
MANAGED_GROUP = "managed"
# The members of every database pair and the hosts of their service addresses (the database_ha role's hosts).
DATABASE_HA_GROUP = "database_ha"
# Ansible's own groups and the ones the inventory adds besides zone_*, sla_* and the service groups.
FIXED_GROUPS = frozenset({"all", "ungrouped", PHI_GROUP, LEGACY_GROUP, MANAGED_GROUP, DATABASE_HA_GROUP})

_NOT_IDENTIFIER = re.compile(r"[^A-Za-z0-9_]")


def group_name(prefix: str, name: str) -> str:
    """Ansible group names must be identifiers: ``24x7-critical`` -> ``sla_24x7_critical``.

    Distinct names can meet here (``his-x`` and ``his_x``); the topology checks refuse such pairs.
    """
    return f"{prefix}_{_NOT_IDENTIFIER.sub('_', name)}"
