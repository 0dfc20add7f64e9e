"""sshd's effective settings, as `sshd -T -C` computes them for a connection reaching each Match block."""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Callable, Iterable, Mapping

from .base import (
    Json,
    at_root,
    command_failure,
    config_lines,
    group_entries,
    passwd_entries,
    read_text,
    run,
    sorted_files,
)

# sshd -T keys that may appear more than once; all others are single values.
SSHD_MULTI_KEYS = frozenset(
    {
        "listenaddress",
        "hostkey",
        "acceptenv",
        "subsystem",
        "port",
        "allowgroups",
        "allowusers",
        "denyusers",
        "denygroups",
        "setenv",
        "include",
        "hostcertificate",
        "authorizedkeysfile",
    }
)

SSHD_CONFIG = "/etc/ssh/sshd_config"

# A source no Match block is written for (TEST-NET-3, RFC 5737): what an unlisted network gets.
UNLISTED_SOURCE = {
    "user": "root", "host": "unlisted.invalid", "addr": "203.0.113.10", "laddr": "0.0.0.0", "lport": "22"
}

SSHD_MAX_CONNECTIONS = 12


def parse_sshd_settings(text: str) -> dict[str, Json]:
    """`sshd -T` output (lower-case `key value` lines) into settings; lists where sshd repeats or joins them."""
    config: dict[str, Json] = {}
    for line in text.splitlines():
        key, _sep, value = line.partition(" ")
        if key in SSHD_MULTI_KEYS:
            config.setdefault(key, []).append(value)
        elif key:
            config[key] = value
    for key in ("ciphers", "macs", "kexalgorithms", "hostkeyalgorithms", "pubkeyacceptedalgorithms"):
        if isinstance(config.get(key), str):
            config[key] = config[key].split(",")
    for key in ("allowgroups", "allowusers", "denyusers", "denygroups"):
        config[key] = [name for value in config.get(key, []) for name in value.split()]
    return config


def sshd_config_lines(path: str, root: str = "/", depth: int = 0) -> list[str]:
    """sshd_config without comments, with `Include` expanded in place as sshd does (globs, relative to /etc/ssh)."""
    lines: list[str] = []
    for line in config_lines(read_text(at_root(path, root))):
        words = line.split()
        if words[0].lower() == "include" and depth < 8:
            for pattern in words[1:]:
                pattern = pattern if pattern.startswith("/") else os.path.join("/etc/ssh", pattern)
                for included in sorted_files(pattern, root):
                    lines.extend(sshd_config_lines(included, root, depth + 1))
        else:
            lines.append(line)
    return lines


def match_criteria(lines: Iterable[str]) -> list[list[tuple[str, str]]]:
    """Every `Match` line as (criterion, pattern list) pairs, in order (`Match all` is an empty list)."""
    blocks = []
    for line in lines:
        words = re.split(r"[\s=]+", line.strip(), maxsplit=1)
        if words[0].lower() != "match" or len(words) < 2:
            continue
        tokens = words[1].split()
        pairs = [
            (tokens[i].lower(), tokens[i + 1] if i + 1 < len(tokens) else "") for i in range(0, len(tokens), 2)
        ] if tokens[0].lower() != "all" else []
        blocks.append(pairs)
    return blocks


def address_candidates(patterns: str) -> list[str]:
    """Addresses inside the first network a Match Address list admits: its first, middle and last host, so that a
    narrower block before it cannot hide the whole network by its first address alone."""
    for pattern in patterns.split(","):
        if pattern.startswith("!") or not pattern:
            continue
        try:
            if "*" in pattern or "?" in pattern:
                return [str(ipaddress.ip_address(re.sub(r"[*?]", "1", pattern)))]
            network = ipaddress.ip_network(pattern, strict=False)
        except ValueError:
            continue
        if network.num_addresses <= 2:
            return [str(network.network_address)]
        first, last = network.network_address + 1, network.broadcast_address - 1
        middle = network.network_address + network.num_addresses // 2
        return list(dict.fromkeys(str(address) for address in (first, middle, last)))
    return []


def first_name(patterns: str) -> str | None:
    """A name a pattern list admits (its first positive pattern, wildcards filled in)."""
    for pattern in patterns.split(","):
        if pattern and not pattern.startswith("!"):
            return re.sub(r"[*?]", "x", pattern)
    return None


def group_member(group: str) -> str | None:
    entry = next((entry for entry in group_entries() if entry.gr_name == group), None)
    if entry is None:
        return None
    if entry.gr_mem:
        return str(entry.gr_mem[0])
    return next((user.pw_name for user in passwd_entries() if user.pw_gid == entry.gr_gid), None)


def match_connections(
    blocks: Iterable[list[tuple[str, str]]], member: Callable[[str], str | None] = group_member
) -> list[dict[str, str]]:
    """Connections that reach each Match block: the block's own users, groups, hosts, addresses and local
    endpoint, root where it names no user (root's login is what most overrides are about)."""
    connections: list[dict[str, str]] = []
    for pairs in blocks:
        connection = dict(UNLISTED_SOURCE)
        addresses = [UNLISTED_SOURCE["addr"]]
        for criterion, patterns in pairs:
            if criterion == "user":
                connection["user"] = first_name(patterns) or connection["user"]
            elif criterion == "group":
                group = first_name(patterns)
                user = member(group) if group else None
                connection["user"] = user or connection["user"]
            elif criterion == "host":
                connection["host"] = first_name(patterns) or connection["host"]
            elif criterion == "address":
                addresses = address_candidates(patterns) or addresses
            elif criterion == "localaddress":
                connection["laddr"] = (address_candidates(patterns) or [connection["laddr"]])[0]
            elif criterion == "localport":
                connection["lport"] = first_name(patterns) or connection["lport"]
        connections.extend({**connection, "addr": address} for address in addresses)
    unique = [dict(c) for c in dict.fromkeys(tuple(sorted(c.items())) for c in [UNLISTED_SOURCE, *connections])]
    return unique[:SSHD_MAX_CONNECTIONS]


def connection_spec(connection: Mapping[str, str]) -> str:
    return ",".join(f"{key}={connection[key]}" for key in ("user", "host", "addr", "laddr", "lport"))


def collect_sshd() -> Json:
    """`sshd -T -C` for a connection from an unlisted source (the defaults) and for one reaching each Match block:
    the settings a connection really gets, which a Match block can change for one network, user or group."""
    blocks = match_criteria(sshd_config_lines(SSHD_CONFIG))
    connections: list[Json] = []
    for connection in match_connections(blocks):
        # Always with -C: a plain `sshd -T` refuses a config whose Match blocks need a connection to decide.
        argv = ["sshd", "-T", "-C", connection_spec(connection)]
        rc, out, err = run(argv)
        if rc != 0:
            return command_failure(argv, rc, err)
        connections.append({"connection": argv[-1], "settings": parse_sshd_settings(out)})
    # The first connection comes from a source no Match block names: the settings everyone else gets.
    config: dict[str, Json] = dict(connections[0]["settings"])
    config["match_blocks"] = len(blocks)
    config["connections"] = connections
    return config
