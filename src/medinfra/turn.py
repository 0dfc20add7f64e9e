"""TURN on the controller: the client shared with the relay's probe, and credentials for applications.

`medinfra turn credentials` mints time-limited TURN REST credentials from the site's `rtc_relay_auth_secret`,
read from the vault the way a playbook would, so the telemedicine application never holds the secret itself.
"""

from __future__ import annotations

import importlib.util
import sys
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

from medinfra.paths import TURN_CLIENT_PATH
from medinfra.problems import Problem, UserInputError

RELAY_GROUP = "turn_relay"
SECRET_VARIABLE = "rtc_relay_auth_secret"
# IANA ports of TURN and TURN over TLS, used in the URLs unless the inventory sets the role's ports.
PORT_VARIABLES = {"rtc_relay_listening_port": 3478, "rtc_relay_tls_listening_port": 5349}
MIN_TTL, MAX_TTL = 60, 86400


@cache
def turn_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("medinfra_turn", TURN_CLIENT_PATH)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load the TURN client from {TURN_CLIENT_PATH}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is being made
    spec.loader.exec_module(module)
    return module


def ice_server(secret: str, address: str, ports: dict[str, int], ttl: int, user: str, now: float) -> dict[str, Any]:
    """One RTCIceServer entry (WebRTC's own shape), valid for `ttl` seconds from `now`."""
    username, credential = turn_module().rest_credentials(secret, ttl, user, now)
    plain, tls = ports["rtc_relay_listening_port"], ports["rtc_relay_tls_listening_port"]
    return {
        "urls": [
            f"turns:{address}:{tls}?transport=tcp",
            f"turn:{address}:{plain}?transport=udp",
            f"turn:{address}:{plain}?transport=tcp",
        ],
        "username": username,
        "credential": credential,
        "expires": datetime.fromtimestamp(int(now) + ttl, UTC).isoformat().replace("+00:00", "Z"),
    }


def relay_credentials(
    inventory: Path, vault_password_file: Path | None, ttl: int, user: str, now: float, relay: str | None = None
) -> list[dict[str, Any]]:
    """Credentials for every relay of the inventory (or the one named), each from its own secret."""
    from medinfra.audit.targets import read_hosts

    if not MIN_TTL <= ttl <= MAX_TTL:
        raise UserInputError([Problem("--ttl", (), f"{ttl} is not between {MIN_TTL} and {MAX_TTL} seconds")])
    if ":" in user:
        raise UserInputError([Problem("--user", (), "the user name cannot contain ':' (it separates the expiry)")])
    keys = (SECRET_VARIABLE, "medinfra_address", "ansible_host", *PORT_VARIABLES)
    relays = read_hosts(inventory, relay or RELAY_GROUP, vault_password_file, keys)
    if not relays:
        what = f"host {relay!r}" if relay else f"host with the {RELAY_GROUP} service"
        raise UserInputError([Problem(str(inventory), (), f"no {what} in the inventory")])
    servers = []
    for name, hostvars in relays:
        secret = str(hostvars.get(SECRET_VARIABLE) or "")
        if not secret:
            hint = "" if vault_password_file else " (give --vault-password-file if it is vaulted)"
            raise UserInputError([Problem(str(inventory), (name,), f"{SECRET_VARIABLE} is not set{hint}")])
        ports = {key: int(hostvars.get(key) or default) for key, default in PORT_VARIABLES.items()}
        address = str(hostvars.get("medinfra_address") or hostvars.get("ansible_host") or name)
        servers.append(ice_server(secret, address, ports, ttl, user, now))
    return servers
