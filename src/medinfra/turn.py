"""TURN on the controller: the client shared with the relay's probe, and credentials for applications.

`medinfra turn credentials` mints time-limited TURN REST credentials from the site's `rtc_relay_auth_secret`,
read from the vault the way a playbook would, so the telemedicine application never holds the secret itself.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

from medinfra.package_data import hostside_module
from medinfra.problems import Problem, UserInputError

RELAY_GROUP = "turn_relay"
SECRET_VARIABLE = "rtc_relay_auth_secret"
# IANA ports of TURN and TURN over TLS, used in the URLs unless the inventory sets the role's ports.
PORT_VARIABLES = {"rtc_relay_listening_port": 3478, "rtc_relay_tls_listening_port": 5349}
MIN_TTL, MAX_TTL = 60, 86400
# What roles/rtc_relay asserts of the secret (tasks/main.yml; meta/argument_specs.yml documents it).
MIN_SECRET_LENGTH = 32
SECRET_CHARACTERS = re.compile(r"[A-Za-z0-9+/=_-]+")
PORT = re.compile(r"[0-9]{1,5}")


def turn_module() -> ModuleType:
    """The TURN client the relay's probe runs (plugins/module_utils/turn.py, standard library only)."""
    return hostside_module("turn")


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


def secret_problem(secret: str) -> str:
    """What is wrong with a TURN REST secret (never repeating it), or "" (the role's own assert, in Python)."""
    if not secret:
        return "is not set"
    if len(secret) < MIN_SECRET_LENGTH:
        return f"is {len(secret)} characters long; the relay needs at least {MIN_SECRET_LENGTH}"
    if not SECRET_CHARACTERS.fullmatch(secret):
        return "has characters other than letters, digits and +/=_- (coturn reads it from a config line)"
    return ""


def is_port(value: Any) -> bool:
    return not isinstance(value, bool) and PORT.fullmatch(str(value)) is not None and 0 < int(value) < 65536


def relay_problems(source: str, name: str, hostvars: Mapping[str, Any], vaulted: bool) -> list[Problem]:
    """What stops credentials for one relay (its secret, its ports), each located, never repeating the secret."""
    problems = []
    secret = str(hostvars.get(SECRET_VARIABLE) or "")
    wrong = secret_problem(secret)
    if wrong:
        hint = "" if secret or vaulted else " (give --vault-password-file if it is vaulted)"
        problems.append(Problem(source, (name, SECRET_VARIABLE), wrong + hint))
    for variable in PORT_VARIABLES:
        value = hostvars.get(variable)
        if value and not is_port(value):
            problems.append(Problem(source, (name, variable), f"{str(value)[:40]!r} is not a port number"))
    return problems


def relay_credentials(
    inventory: Path, vault_password_file: Path | None, ttl: int, user: str, now: float, relay: str | None = None
) -> list[dict[str, Any]]:
    """Credentials for every relay of the inventory (or the one named), each from its own secret.

    Only hosts with the `turn_relay` service get any: credentials naming another host (a PHI server, say) would
    point the application at it. Problems name the inventory, the host and the variable, never the secret.
    """
    from medinfra.audit.targets import read_hosts

    if not MIN_TTL <= ttl <= MAX_TTL:
        raise UserInputError([Problem("--ttl", (), f"{ttl} is not between {MIN_TTL} and {MAX_TTL} seconds")])
    if ":" in user:
        raise UserInputError([Problem("--user", (), "the user name cannot contain ':' (it separates the expiry)")])
    keys = (SECRET_VARIABLE, "medinfra_address", "ansible_host", *PORT_VARIABLES)
    relays = read_hosts(inventory, RELAY_GROUP, vault_password_file, keys)
    if relay is not None:
        relays = [(name, hostvars) for name, hostvars in relays if name == relay]
    if not relays:
        what = f"host {relay!r} with" if relay is not None else "host with"
        raise UserInputError([Problem(str(inventory), (), f"no {what} the {RELAY_GROUP} service in the inventory")])
    vaulted = vault_password_file is not None
    problems = [p for name, hostvars in relays for p in relay_problems(str(inventory), name, hostvars, vaulted)]
    if problems:
        raise UserInputError(problems)
    servers = []
    for name, hostvars in relays:
        ports = {key: int(hostvars.get(key) or default) for key, default in PORT_VARIABLES.items()}
        address = str(hostvars.get("medinfra_address") or hostvars.get("ansible_host") or name)
        servers.append(ice_server(str(hostvars[SECRET_VARIABLE]), address, ports, ttl, user, now))
    return servers
