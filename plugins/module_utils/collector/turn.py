"""The coturn relay: its process, its configuration as coturn reads it, and its TLS endpoints."""

from __future__ import annotations

import ipaddress
import os
import re
import stat
from collections.abc import Iterable

from .base import Json, at_root, file_facts, read_text, unavailable, user_name
from .monitoring import absolute_path
from .processes import find_processes

TURN_BINARY = "/usr/bin/turnserver"

TURN_CONFIG_PATH = "/etc/turnserver.conf"

TURN_PROGRAMS: dict[str, tuple[str, ...]] = {"turnserver": ("turnserver",)}

# Peers a relay must never reach (CVE-2020-26262: a TURN relay that may relay to internal addresses is a door
# into the hospital network): "this" network, private, CGNAT, loopback, link-local, multicast and reserved
# ranges, and their IPv6 equivalents, IPv4-mapped and NAT64 addresses included.
TURN_INTERNAL_NETWORKS = (
    "0.0.0.0/8",
    "10.0.0.0/8",
    "100.64.0.0/10",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "224.0.0.0/4",
    "240.0.0.0/4",
    "::/128",
    "::1/128",
    "::ffff:0:0/96",
    "64:ff9b::/96",
    "fc00::/7",
    "fe80::/10",
    "ff00::/8",
)

# Options that are switches: a bare name turns them on, a value says on or off (coturn's get_bool_value).
TURN_SWITCHES = {
    "lt_cred_mech": "lt-cred-mech",
    "no_auth": "no-auth",
    "no_cli": "no-cli",
    "no_multicast_peers": "no-multicast-peers",
    "no_tcp_relay": "no-tcp-relay",
    "fingerprint": "fingerprint",
    "no_software_attribute": "no-software-attribute",
    "no_tlsv1": "no-tlsv1",
    "no_tlsv1_1": "no-tlsv1_1",
}

TURN_NUMBERS = {
    "listening_port": "listening-port",
    "tls_listening_port": "tls-listening-port",
    "min_port": "min-port",
    "max_port": "max-port",
    "user_quota": "user-quota",
    "total_quota": "total-quota",
    "max_bps": "max-bps",
}

TURN_PATHS = {"cert": "cert", "pkey": "pkey", "cipher_list": "cipher-list"}

IpInterval = tuple[int, int, int]  # (IP version, first address, last address) as integers


def coturn_options(text: str) -> list[tuple[str, str]]:
    """The (name, value) options of a coturn configuration in file order, read as coturn's read_config_file does.

    A line whose first non-blank character is `#` is a comment; a `#` later in a line is part of the value (coturn
    has no trailing comments, so `denied-peer-ip=10.0.0.0-10.255.255.255 # RFC 1918` is not a range it can use).
    The name ends at the first blank or `=`, the value starts after the run of blanks and `=` that follows, and
    one pair of double quotes around it is removed. A bare name has the value "".
    """
    options: list[tuple[str, str]] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name = re.split(r"[ \t=]", line, maxsplit=1)[0]
        value = line[len(name) :].lstrip(" \t=")
        if value.startswith('"'):
            value = value[1:].rstrip()
            value = value[:-1] if value.endswith('"') else value
        options.append((name, value))
    return options


def coturn_bool(value: str) -> bool | None:
    """A switch's value as coturn reads it: none means on; None for what coturn refuses (it does not start)."""
    if value == "" or value[0] in "yYtT123456789" or value in ("on", "ON", "On"):
        return True
    if value[0] in "0nNfF" or value in ("off", "OFF", "Off"):
        return False
    return None


def coturn_int(value: str) -> int:
    """A number as C's atoi reads it: leading digits, 0 when there are none."""
    match = re.match(r"\s*([+-]?\d+)", value)
    return int(match.group(1)) if match else 0


def peer_range(text: str) -> IpInterval | None:
    """A denied-peer-ip or allowed-peer-ip value, an address or `first-last`, as an interval.

    None when coturn cannot use it: not an address (a CIDR, a host name, a trailing comment), an IPv4 and an IPv6
    end, or a first address after the last.
    """
    first_text, dash, last_text = text.partition("-")
    try:
        first = ipaddress.ip_address(first_text.strip(" "))
        last = ipaddress.ip_address(last_text.strip(" ")) if dash else first
    except ValueError:
        return None
    if first.version != last.version or int(first) > int(last):
        return None
    return first.version, int(first), int(last)


def merge_intervals(intervals: Iterable[IpInterval]) -> list[IpInterval]:
    """Overlapping and adjacent intervals of the same IP version joined, in order."""
    merged: list[IpInterval] = []
    for version, first, last in sorted(intervals):
        if merged and merged[-1][0] == version and first <= merged[-1][2] + 1:
            merged[-1] = (version, merged[-1][1], max(merged[-1][2], last))
        else:
            merged.append((version, first, last))
    return merged


def networks_not_covered(networks: Iterable[str], ranges: Iterable[str]) -> list[str]:
    """The networks (CIDR) not entirely inside the union of the ranges; unusable ranges cover nothing."""
    merged = merge_intervals(interval for interval in map(peer_range, ranges) if interval is not None)
    uncovered = []
    for text in networks:
        network = ipaddress.ip_network(text)
        first, last = int(network.network_address), int(network.broadcast_address)
        if not any(v == network.version and lo <= first and last <= hi for v, lo, hi in merged):
            uncovered.append(text)
    return uncovered


def turn_config_facts(text: str) -> dict[str, Json]:
    """What a coturn configuration enforces, from its text; of the static auth secret only whether one is set.

    Single-valued options take their last value, as coturn does; listening-ip, relay-ip, denied-peer-ip and
    allowed-peer-ip accumulate. use-auth-secret is on whatever its value (coturn ignores it), and a
    static-auth-secret line turns it on as well.
    """
    values: dict[str, list[str]] = {}
    for name, value in coturn_options(text):
        values.setdefault(name, []).append(value)

    def last(name: str) -> str | None:
        return values[name][-1] if name in values else None

    denied = values.get("denied-peer-ip", [])
    allowed = values.get("allowed-peer-ip", [])
    allowed_intervals = [peer_range(entry) for entry in allowed]
    secrets = values.get("static-auth-secret", [])
    facts: dict[str, Json] = {
        "use_auth_secret": "use-auth-secret" in values or "static-auth-secret" in values,
        "static_auth_secret_set": any(secret.strip() for secret in secrets),
        "realm": last("realm") or "",
    }
    for fact, name in TURN_PATHS.items():
        facts[fact] = last(name) or None
    for fact, name in TURN_SWITCHES.items():
        switch = last(name)
        facts[fact] = switch is not None and coturn_bool(switch) is True
    for fact, name in TURN_NUMBERS.items():
        number = last(name)
        facts[fact] = None if number is None else coturn_int(number)
    facts.update(
        listening_ips=values.get("listening-ip", []),
        relay_ips=values.get("relay-ip", []),
        denied_peer_ranges=denied,
        allowed_peer_ranges=allowed,
        unparsed_peer_ranges=[entry for entry in [*denied, *allowed] if peer_range(entry) is None],
        internal_networks_not_denied=networks_not_covered(TURN_INTERNAL_NETWORKS, denied),
        allowed_peers_single_addresses=all(
            interval is not None and interval[1] == interval[2] for interval in allowed_intervals
        ),
    )
    return facts


def turn_config_path(argv: list[str], cwd: str, default: str = TURN_CONFIG_PATH) -> str | None:
    """The configuration a turnserver command line reads: the argument of the last `-c` (relative to the process's
    working directory), the default without one, None with `-n` (no configuration file at all)."""
    if "-n" in argv[1:]:
        return None
    path = default
    for index, word in enumerate(argv[1:-1], start=1):
        if word == "-c":
            path = argv[index + 1]
    return absolute_path(path, cwd)


def collect_turn(proc: str = "/proc", config_path: str = TURN_CONFIG_PATH, binary: str = TURN_BINARY) -> Json:
    """The coturn relay: installed, running and as whom, its configuration file's protection and what it says."""
    processes = find_processes(TURN_PROGRAMS, proc)["turnserver"]
    path: str | None = config_path
    user: Json = None
    if processes:
        argv, cwd, uid = processes[0]
        path = turn_config_path(argv, cwd, config_path)
        user = user_name(uid) if uid is not None else unavailable("owner of the turnserver process not readable")
    facts: dict[str, Json] = {"installed": os.path.exists(at_root(binary)), "running": bool(processes), "user": user}
    if path is None:  # started with -n: no configuration file, only defaults and the command line
        facts["config"] = {"path": None, "exists": False}
        facts.update(turn_config_facts(""))
        return facts
    info = file_facts(path)
    if "unavailable" in info:
        facts["config"] = unavailable(f"{path}: {info['unavailable']}")
        text = None
    elif info["exists"]:
        facts["config"] = {
            **{key: info[key] for key in ("path", "exists", "mode", "owner", "group")},
            "world_readable": bool(int(info["mode"], 8) & stat.S_IROTH),
        }
        text = read_text(at_root(path))
    else:  # coturn runs on its defaults and its command line
        facts["config"] = {"path": path, "exists": False}
        text = ""
    if text is None:
        reason = unavailable(f"{path} not readable")
        facts.update(dict.fromkeys(turn_config_facts(""), reason))
    else:
        facts.update(turn_config_facts(text))
    return facts


def with_turn_tls_endpoints(turn: Json, tls: Json) -> Json:
    """The relay's facts plus `tls_endpoints`: the handshakes (of the `tls` section) with the relay's TLS port on its
    listening addresses. Matched by address and port, because `ss` does not always name the process of a
    sandboxed service. The plain TURN port 3478 is not TLS by design, so it is not among them."""
    if not isinstance(turn, dict) or "unavailable" in turn or not turn.get("running"):
        return turn
    port, addresses = turn.get("tls_listening_port"), turn.get("listening_ips")
    if not isinstance(tls, dict) or "endpoints" not in tls:
        endpoints: Json = unavailable("TLS handshakes unavailable")
    elif not isinstance(port, int):
        endpoints = unavailable("tls-listening-port not known")
    else:
        # Without listening-ip coturn listens on every address.
        wanted = set(addresses) | {"0.0.0.0", "::"} if isinstance(addresses, list) and addresses else None
        endpoints = [
            e for e in tls["endpoints"]
            if e.get("port") == port and (wanted is None or e.get("address") in wanted)
        ]
    return {**turn, "tls_endpoints": endpoints}
