"""The drill's executor over SSH: each step is plugins/module_utils/drill_step.py run as root on its host through
the audit's transport (pyinfra, the inventory's connection settings, sudo with the password on stdin).

Import medinfra.audit.pyinfra_transport (which this module does) before anything opens sockets.
"""

from __future__ import annotations

import ipaddress
import json
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from medinfra.audit.pyinfra_transport import collect_all
from medinfra.audit.targets import Target
from medinfra.drill.plan import Break, Expect, ExpectAlerts
from medinfra.drill.runner import StepFailed
from medinfra.package_data import hostside_module, hostside_source
from medinfra.topology.model import Topology

SSH_PORT = 22
# The role monitoring_server's default; Alertmanager listens on the server's own address (its medinfra_address).
ALERTMANAGER_PORT = 9093
# Beyond a step's own waiting: connecting, sending the program, systemctl's own time.
MARGIN_SECONDS = 60.0
MONITORING_SERVICE = "monitoring_server"


def management_sources(topology: Topology) -> list[str]:
    """The CIDRs of the management zones: where administrators (and the monitoring server) come from."""
    return sorted(str(zone.network) for zone in topology.zones if zone.purpose == "mgmt")


def controller_address(hostname: str, port: int) -> str | None:
    """The address this machine reaches `hostname` from (what the host sees as SSH's source): a UDP socket's
    connect picks the route and sends nothing."""
    try:
        with socket.socket(socket.AF_INET6 if ":" in hostname else socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.connect((hostname, port))
            return str(probe.getsockname()[0])
    except OSError:
        return None


def monitoring_server(topology: Topology) -> str | None:
    return next((host.name for host in topology.hosts if MONITORING_SERVICE in host.services), None)


@dataclass
class SshExecutor:
    targets: Mapping[str, Target]
    topology: Topology
    connect_timeout: float = 10

    def _run(self, host: str, params: dict[str, Any], waits: float = 0) -> str:
        target = self.targets[host]
        if target.ssh is None:
            raise StepFailed(f"{host}: cannot reach it over SSH: {target.problem}")
        text = json.dumps(params, sort_keys=True)
        source = f"{hostside_source('drill_step.py')}\n\nmain(json.loads({text!r}))\n"
        (result,) = collect_all([target], source, connect_timeout=self.connect_timeout,
                                command_timeout=waits + MARGIN_SECONDS, parallel=1)
        outcome = result.evidence
        if outcome is None or not isinstance(outcome.get("ok"), bool):
            raise StepFailed(f"{host}: {result.status}: {result.reason or 'no answer'}")
        detail = f"{host}: {outcome.get('detail', '')}"
        if not outcome["ok"]:
            raise StepFailed(detail)
        return detail

    def _isolation_sources(self, host: str) -> list[str]:
        target = self.targets[host]
        sources = management_sources(self.topology)
        if target.ssh is not None:
            mine = controller_address(target.ssh.hostname, target.ssh.port or SSH_PORT)
            if mine and not any(ipaddress.ip_address(mine) in ipaddress.ip_network(cidr) for cidr in sources):
                sources.append(mine)
        return sources

    def apply(self, step: Break) -> str:
        if step.action == "isolate":
            ssh = self.targets[step.host].ssh
            port = ssh.port if ssh is not None and ssh.port else SSH_PORT
            return self._run(step.host, {"action": "isolate", "sources": self._isolation_sources(step.host),
                                         "ssh_port": port, "max_seconds": step.max_seconds})
        if step.action == "command":
            return self._run(step.host, {"action": "command", "command": step.command})
        return self._run(step.host, {"action": step.action, "unit": step.unit})

    def undo(self, step: Break) -> str:
        if step.action == "isolate":
            return self._run(step.host, {"action": "unisolate"})
        if step.action == "command":
            if step.undo is None:
                return f"{step.host}: nothing to undo (the break declares no undo command)"
            return self._run(step.host, {"action": "command", "command": step.undo})
        # A restarted unit is started too: it must be running when the drill ends.
        return self._run(step.host, {"action": "start_unit", "unit": step.unit})

    def expect(self, step: Expect) -> str:
        return self._run(step.host, {"action": "expect", "command": step.command, "within": step.within,
                                     "every": step.every}, waits=step.within)

    def expect_alerts(self, step: ExpectAlerts) -> str:
        server = step.monitoring_server or monitoring_server(self.topology)
        if server is None or server not in self.targets:
            raise StepFailed(f"no monitoring server to ask (no host with service {MONITORING_SERVICE})")
        target = self.targets[server]
        paths = hostside_module("collector.paths").HOST_PATHS | dict(target.inventory.get("paths") or {})
        params = {
            "action": "alerts", "alerts": list(step.alerts), "labels": step.labels, "any": step.any,
            "within": step.within, "address": f"{self.topology.host(server).address}:{ALERTMANAGER_PORT}",
            "ca_file": f"{paths['pki']}/ca.crt",
            "password_file": hostside_module("collector.monitoring").PROMETHEUS_PASSWORD_FILE,
        }
        return self._run(server, params, waits=step.within)
