"""Filter for role rtc_probe (logic in medinfra.monitoring.rtc_probe; credentials from the TURN client shared with
the relay's probe, plugins/module_utils/turn.py).

Documented by the sidecar file rtc_probe_config.yml (ansible-doc -t filter medinfra.hospital.rtc_probe_config).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ansible.errors import AnsibleFilterError
from ansible_collections.medinfra.hospital.plugins.plugin_utils.medinfra_package import require_medinfra

try:
    from medinfra.monitoring import rtc_probe
    from medinfra.topology.load import topology_host
    from medinfra.turn import secret_problem, turn_module
except ImportError as exc:
    MEDINFRA_IMPORT_ERROR: ImportError | None = exc
else:
    MEDINFRA_IMPORT_ERROR = None


def rtc_probe_config(
    topology: Mapping[str, Any],
    vantage: str,
    relay_ports: Mapping[str, Mapping[str, Any]],
    secret: str,
    now: float,
    options: Mapping[str, Any],
) -> dict[str, Any]:
    require_medinfra("medinfra.hospital.rtc_probe_config", MEDINFRA_IMPORT_ERROR)
    wrong = secret_problem(str(secret or ""))
    if wrong:  # never repeating the secret
        raise AnsibleFilterError(f"medinfra.hospital.rtc_probe_config: the relay's rtc_relay_auth_secret {wrong}")
    try:
        model, host = topology_host(topology, vantage)
        expiry = rtc_probe.credential_expiry(now, int(options["credential_days"]))
        credentials = turn_module().rest_credentials(
            str(secret), expiry - int(now), f"medinfra-rtc-probe-{host.name}", now
        )
        config, skipped = rtc_probe.probe_config(
            model,
            host,
            {name: rtc_probe.RelayPorts.from_dict(ports) for name, ports in relay_ports.items()},
            credentials,
            ca_file=str(options["ca_file"]),
            echo_port=int(options["echo_port"]),
            seconds=int(options["seconds"]),
            rate=int(options["rate"]),
            size=int(options["size"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise AnsibleFilterError(f"medinfra.hospital.rtc_probe_config: {exc}") from None
    return {"config": config, "skipped": skipped, "expiry": expiry}


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"rtc_probe_config": rtc_probe_config}
