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
SITE_VARIABLE = "medinfra_site"  # the topology's site.name, set on `all` by the hospital inventory plugin
# IANA ports of TURN and TURN over TLS, and the role's TLS fallback on 443 (0: none), used in the URLs unless the
# inventory sets the role's ports (roles/rtc_relay/defaults/main.yml).
PORT_VARIABLES = {"rtc_relay_listening_port": 3478, "rtc_relay_tls_listening_port": 5349, "rtc_relay_alt_tls_port": 443}
# Ports that may be 0 (turned off).
OPTIONAL_PORTS = ("rtc_relay_alt_tls_port",)
MIN_TTL, MAX_TTL = 60, 86400
# What roles/rtc_relay asserts of the secret (tasks/main.yml; meta/argument_specs.yml documents it).
MIN_SECRET_LENGTH = 32
SECRET_CHARACTERS = re.compile(r"[A-Za-z0-9+/=_-]+")
PORT = re.compile(r"[0-9]{1,5}")
# A relay of a hospital group: (its site's name, its host name, its variables).
SiteRelay = tuple[str, str, dict[str, Any]]


def turn_module() -> ModuleType:
    """The TURN client the relay's probe runs (plugins/module_utils/turn.py, standard library only)."""
    return hostside_module("turn")


def ice_server(secret: str, address: str, ports: dict[str, int], ttl: int, user: str, now: float) -> dict[str, Any]:
    """One RTCIceServer entry (WebRTC's own shape), valid for `ttl` seconds from `now`.

    URLs in the order a client should try them: TLS on the TURN port, UDP, TCP, and the TLS fallback on 443 last
    (for networks that only let HTTPS out), only when the relay has it."""
    username, credential = turn_module().rest_credentials(secret, ttl, user, now)
    plain, tls = ports["rtc_relay_listening_port"], ports["rtc_relay_tls_listening_port"]
    fallback = ports.get("rtc_relay_alt_tls_port", 0)
    urls = [
        f"turns:{address}:{tls}?transport=tcp",
        f"turn:{address}:{plain}?transport=udp",
        f"turn:{address}:{plain}?transport=tcp",
    ]
    if fallback and fallback != tls:  # a relay whose TLS port is 443 already needs no fallback
        urls.append(f"turns:{address}:{fallback}?transport=tcp")
    return {
        "urls": urls,
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
        if value is None or (variable in OPTIONAL_PORTS and str(value) == "0") or is_port(value):
            continue
        off = " (or 0 for none)" if variable in OPTIONAL_PORTS else ""
        problems.append(Problem(source, (name, variable), f"{str(value)[:40]!r} is not a port number{off}"))
    return problems


def host_address(hostvars: Mapping[str, Any], name: str) -> str:
    """Where a host is reached: its topology address, else ansible_host, else its inventory name."""
    return str(hostvars.get("medinfra_address") or hostvars.get("ansible_host") or name)


def relay_ports(hostvars: Mapping[str, Any]) -> dict[str, int]:
    """The relay's ports: the inventory's where it sets them (checked by relay_problems), else the role's defaults."""
    return {key: default if hostvars.get(key) is None else int(hostvars[key])
            for key, default in PORT_VARIABLES.items()}


def inventory_relays(
    inventory: Path, vault_password_file: Path | None, relay: str | None
) -> list[tuple[str, dict[str, Any]]]:
    """(name, variables) of the inventory's relays (or the one named; none if it is not there), each checked."""
    from medinfra.audit.targets import read_hosts

    keys = (SECRET_VARIABLE, SITE_VARIABLE, "medinfra_address", "ansible_host", *PORT_VARIABLES)
    relays = read_hosts(inventory, RELAY_GROUP, vault_password_file, keys)
    if relay is not None:
        relays = [(name, hostvars) for name, hostvars in relays if name == relay]
    vaulted = vault_password_file is not None
    problems = [p for name, hostvars in relays for p in relay_problems(str(inventory), name, hostvars, vaulted)]
    if problems:
        raise UserInputError(problems)
    return relays


def check_request(ttl: int, user: str) -> None:
    if not MIN_TTL <= ttl <= MAX_TTL:
        raise UserInputError([Problem("--ttl", (), f"{ttl} is not between {MIN_TTL} and {MAX_TTL} seconds")])
    if ":" in user:
        raise UserInputError([Problem("--user", (), "the user name cannot contain ':' (it separates the expiry)")])


def no_relay(where: str, relay: str | None) -> UserInputError:
    what = f"host {relay!r} with" if relay is not None else "host with"
    return UserInputError([Problem(where, (), f"no {what} the {RELAY_GROUP} service in the inventory")])


def servers_of(relays: list[tuple[str, dict[str, Any]]], ttl: int, user: str, now: float) -> list[dict[str, Any]]:
    servers = []
    for name, hostvars in relays:
        address = host_address(hostvars, name)
        servers.append(ice_server(str(hostvars[SECRET_VARIABLE]), address, relay_ports(hostvars), ttl, user, now))
    return servers


def relay_credentials(
    inventory: Path, vault_password_file: Path | None, ttl: int, user: str, now: float, relay: str | None = None
) -> list[dict[str, Any]]:
    """Credentials for every relay of the inventory (or the one named), each from its own secret.

    Only hosts with the `turn_relay` service get any: credentials naming another host (a PHI server, say) would
    point the application at it. Problems name the inventory, the host and the variable, never the secret.
    """
    check_request(ttl, user)
    relays = inventory_relays(inventory, vault_password_file, relay)
    if not relays:
        raise no_relay(str(inventory), relay)
    return servers_of(relays, ttl, user, now)


def site_order(relays: list[SiteRelay], site: str | None) -> list[SiteRelay]:
    """(site, name, variables) of a hospital group's relays: the caller's site first, in its inventory's order, then
    the other sites by name (each in its inventory's order), so the order of -i does not matter (but between two
    inventories that share a site name)."""
    own = [item for item in relays if item[0] == site]
    others = sorted((item for item in relays if item[0] != site), key=lambda item: item[0])  # sort is stable
    return own + others


def group_credentials(
    inventories: list[Path], vault_password_file: Path | None, ttl: int, user: str, now: float,
    site: str | None = None, relay: str | None = None,
) -> list[dict[str, Any]]:
    """Credentials for the relays of several inventories (one per site or campus of a hospital group), each from its
    own site's secret, the relays of `site` first. An unknown site or relay is a located error."""
    check_request(ttl, user)
    relays: list[SiteRelay] = []
    for inventory in inventories:
        for name, hostvars in inventory_relays(inventory, vault_password_file, relay):
            relays.append((str(hostvars.get(SITE_VARIABLE) or ""), name, hostvars))
    where = ", ".join(str(inventory) for inventory in inventories)
    if not relays:
        raise no_relay(where, relay)
    sites = sorted({item[0] for item in relays})
    if site is not None and site not in sites:
        known = ", ".join(repr(name) for name in sites)
        message = f"{site!r} is not the site of a relay in {where} (sites: {known})"
        raise UserInputError([Problem("--site", (), message)])
    return servers_of([(name, hostvars) for _, name, hostvars in site_order(relays, site)], ttl, user, now)
