"""Filters for the monitoring roles (logic in medinfra.monitoring): scrape targets and exporter credentials."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ansible.errors import AnsibleFilterError

from medinfra.monitoring.credentials import bcrypt_hash
from medinfra.monitoring.targets import parse_probes, scrape_targets
from medinfra.topology.load import topology_host

DOCUMENTATION = r"""
name: medinfra_scrape_targets
short_description: Prometheus file_sd targets of one monitoring server from the medinfra topology
description:
  - Returns C({node: [...], blackbox: [...], skipped: [...]}), the node exporter targets of every host that is not
    legacy and the blackbox probes of every service the probe table covers and a topology flow lets the server reach.
positional: server, probes, node_port
options:
  _input: {description: medinfra_topology (the inventory plugin's plain data), type: dict, required: true}
  server: {description: inventory name of the monitoring server, type: str, required: true}
  probes: {description: "probe table {service: [{module: https|tcp_tls|tcp, port, path}]}", type: dict}
  node_port: {description: port of the node exporters, type: int, default: 9100}
"""


def medinfra_scrape_targets(
    topology: Mapping[str, Any], server: str, probes: Mapping[str, Sequence[Mapping[str, Any]]], node_port: int = 9100
) -> dict[str, list[Any]]:
    try:
        model, host = topology_host(topology, server)
        targets = scrape_targets(model, host, parse_probes(probes, "monitoring_server_service_probes"), node_port)
    except ValueError as exc:
        raise AnsibleFilterError(f"medinfra_scrape_targets: {exc}") from None
    return {"node": targets.node, "blackbox": targets.blackbox, "skipped": targets.skipped}


def medinfra_bcrypt(password: str, seed: str, cost: int = 12) -> str:
    """bcrypt hash with a salt derived from the password and ``seed`` (the host): reruns change nothing."""
    try:
        return bcrypt_hash(str(password), str(seed), int(cost))
    except ValueError as exc:
        raise AnsibleFilterError(f"medinfra_bcrypt: {exc}") from None


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"medinfra_scrape_targets": medinfra_scrape_targets, "medinfra_bcrypt": medinfra_bcrypt}
