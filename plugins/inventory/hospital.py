"""Ansible inventory plugin: a medinfra hospital.yml becomes groups and host variables."""

from __future__ import annotations

DOCUMENTATION = r"""
name: hospital
short_description: medinfra hospital topology (hospital.yml) as an inventory
description:
  - Reads a file named C(hospital.yml) (or C(hospital.yaml)), validates it against medinfra's JSON Schema and
    semantic checks, and yields one group per zone (C(zone_<name>)), per service, per SLA class (C(sla_<name>)),
    plus C(phi), C(legacy) and C(managed).
  - An C(oncall.yml) beside the topology (the on-call rota) is validated too and published on C(all) as
    C(medinfra_oncall), plain data for the monitoring_server role's Alertmanager routing.
  - Host variables carry C(ansible_host), the zone, services, SLA and the flows that concern the host; the group
    C(all) carries C(medinfra_topology), the whole site as plain data.
  - Enable it in C(ansible.cfg) with C(enable_plugins = medinfra.hospital.hospital, ...).
requirements:
  - the medinfra Python package on the controller (pip install medinfra)
options:
  plugin:
    description: The name of this plugin; optional, since the file is recognised by its name.
    type: str
    choices: [medinfra.hospital.hospital]
"""

EXAMPLES = r"""
# inventories/<site>/hospital.yml
plugin: medinfra.hospital.hospital
site: {name: lab, title: Lab hospital}
sla_classes:
  24x7-critical: {rpo_minutes: 15, rto_minutes: 60, support_hours: 24x7}
zones:
  - {name: mgmt, cidr: 10.231.10.0/24, gateway: 10.231.10.254, trust: high, purpose: mgmt}
hosts:
  - {name: bastion-01, zone: mgmt, address: 10.231.10.10, services: [bastion], sla: 24x7-critical}
flows: []
"""

# After the documentation, as Ansible expects.
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

from ansible.errors import AnsibleParserError  # noqa: E402
from ansible.plugins.inventory import BaseInventoryPlugin  # noqa: E402
from ansible_collections.medinfra.hospital.plugins.plugin_utils.medinfra_package import require_medinfra  # noqa: E402

try:
    from medinfra.inventory import build_inventory
    from medinfra.oncall.load import ONCALL_FILE, load_oncall
    from medinfra.problems import UserInputError
    from medinfra.topology import load_topology
except ImportError as exc:
    MEDINFRA_IMPORT_ERROR: ImportError | None = exc
else:
    MEDINFRA_IMPORT_ERROR = None

TOPOLOGY_FILE_NAMES = ("hospital.yml", "hospital.yaml")


class InventoryModule(BaseInventoryPlugin):  # type: ignore[misc]
    NAME = "medinfra.hospital.hospital"

    def verify_file(self, path: str) -> bool:
        return Path(path).name in TOPOLOGY_FILE_NAMES and super().verify_file(path)

    def parse(self, inventory: Any, loader: Any, path: str, cache: bool = True) -> None:
        require_medinfra(self.NAME, MEDINFRA_IMPORT_ERROR)
        super().parse(inventory, loader, path, cache)
        try:
            topology = load_topology(Path(path))
        except UserInputError as exc:
            raise AnsibleParserError(f"invalid hospital topology:\n{exc}") from None
        data = build_inventory(topology)
        rota = Path(path).parent / ONCALL_FILE
        if rota.is_file():
            try:
                self.inventory.set_variable("all", "medinfra_oncall", load_oncall(rota, topology).to_dict())
            except UserInputError as exc:
                raise AnsibleParserError(f"invalid on-call rota:\n{exc}") from None
        for name, value in data.all_vars.items():
            self.inventory.set_variable("all", name, value)
        for group, members in data.groups.items():
            self.inventory.add_group(group)
            for member in members:
                self.inventory.add_host(member, group=group)
        for host, variables in data.host_vars.items():
            self.inventory.add_host(host)
            for name, value in variables.items():
                self.inventory.set_variable(host, name, value)
