#!/usr/bin/python3
"""Relay metrics the allocation probe cannot see, for the node exporter's textfile collector.

Standard library only: role rtc_relay installs this file as `medinfra-turn-stats` and runs it from a timer.
coturn 4.6.1 in Debian has no Prometheus exporter (its `prometheus` option is ignored), and it logs sessions only
with `verbose`, which also logs every request with its user name. So the figures come from the kernel instead:

- allocations: UDP sockets owned by coturn's user on a relay port (min-port..max-port). coturn opens one per
  allocation and closes it when the allocation ends; `ss -e` names the owner without reading /proc.
- client connections by transport: coturn's established TCP sockets on its plain port (`tcp`) and its TLS port
  (`tls`; connections to port 443 arrive there through the role's redirect). UDP clients share coturn's one
  listening socket, so they cannot be counted this way.
- relayed bytes: the named counters of the role's nftables table (inet medinfra_rtc_relay), which count the IP
  packets coturn sends from its relay ports and the packets that come back on those flows.
"""

from __future__ import annotations

import argparse
import json
import os
import pwd
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SS_COMMAND = ("ss", "-H", "-a", "-n", "-e", "-t", "-u")
TABLE = "medinfra_rtc_relay"
NFT_COMMAND = ("nft", "-j", "list", "table", "inet", TABLE)
# The table's named counters and the label each becomes.
COUNTERS = {"relayed_to_peers": "to_peers", "relayed_from_peers": "from_peers"}
TIMEOUT = 10.0


@dataclass(frozen=True)
class Socket:
    """One line of `ss -H -a -n -e -t -u`: the owner is None for root's sockets (ss prints no uid then)."""

    proto: str
    state: str
    address: str
    port: int
    uid: int | None


@dataclass(frozen=True)
class RelayPorts:
    """Where coturn listens and relays."""

    min_port: int
    max_port: int
    tcp_port: int
    tls_port: int


@dataclass(frozen=True)
class Usage:
    allocations: int
    connections: Mapping[str, int]


def parse_ss(text: str) -> list[Socket]:
    """The sockets of `ss -H -a -n -e -t -u` output (Netid, State, Recv-Q, Send-Q, local, peer, then details)."""
    sockets = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 6 or fields[0] not in ("tcp", "udp"):
            continue
        address, separator, port = fields[4].rpartition(":")
        if not separator or not port.isdigit():
            continue
        uid = next((int(f[4:]) for f in fields[6:] if f.startswith("uid:") and f[4:].isdigit()), None)
        sockets.append(Socket(fields[0], fields[1], address.strip("[]"), int(port), uid))
    return sockets


def usage(sockets: Iterable[Socket], uid: int, ports: RelayPorts) -> Usage:
    """Allocations (relay sockets) and client connections by transport, counting coturn's own sockets only."""
    allocations, connections = 0, {"tcp": 0, "tls": 0}
    transports = {ports.tcp_port: "tcp", ports.tls_port: "tls"}
    for socket in sockets:
        if socket.uid != uid:
            continue
        if socket.proto == "udp" and ports.min_port <= socket.port <= ports.max_port:
            allocations += 1
        elif socket.proto == "tcp" and socket.state == "ESTAB" and socket.port in transports:
            connections[transports[socket.port]] += 1
    return Usage(allocations, connections)


def parse_counters(text: str) -> dict[str, int]:
    """Bytes of the table's named counters, by label, from `nft -j list table` (missing counters are left out)."""
    document: Any = json.loads(text)
    found = {}
    for item in document.get("nftables", []) if isinstance(document, dict) else []:
        counter = item.get("counter") if isinstance(item, dict) else None
        if isinstance(counter, dict) and counter.get("table") == TABLE and counter.get("name") in COUNTERS:
            found[COUNTERS[counter["name"]]] = int(counter.get("bytes", 0))
    return found


def render(found: Usage | None, quota: int, relayed: Mapping[str, int], now: float) -> str:
    """The textfile: allocations and connections only when ss answered (no figure rather than a false 0)."""
    lines = [
        "# HELP medinfra_turn_allocations_quota Concurrent allocations the relay accepts in all (total-quota)",
        "# TYPE medinfra_turn_allocations_quota gauge",
        f"medinfra_turn_allocations_quota {quota}",
    ]
    if found is not None:
        lines += [
            "# HELP medinfra_turn_allocations Allocations the relay holds now (coturn's sockets on its relay ports)",
            "# TYPE medinfra_turn_allocations gauge",
            f"medinfra_turn_allocations {found.allocations}",
            "# HELP medinfra_turn_client_connections Established TCP connections of clients, by the port's transport",
            "# TYPE medinfra_turn_client_connections gauge",
            *(f'medinfra_turn_client_connections{{transport="{name}"}} {count}'
              for name, count in sorted(found.connections.items())),
        ]
    if relayed:
        lines += [
            "# HELP medinfra_turn_relayed_bytes_total Bytes of IP packets relayed between the relay ports and peers",
            "# TYPE medinfra_turn_relayed_bytes_total counter",
            *(f'medinfra_turn_relayed_bytes_total{{direction="{name}"}} {count}'
              for name, count in sorted(relayed.items())),
        ]
    lines += [
        "# HELP medinfra_turn_stats_timestamp_seconds When the relay's figures were last read",
        "# TYPE medinfra_turn_stats_timestamp_seconds gauge",
        f"medinfra_turn_stats_timestamp_seconds {now:.3f}",
    ]
    return "\n".join(lines) + "\n"


def write_atomically(path: Path, text: str) -> None:
    """Written beside the target, then renamed, so a scrape never reads half a file."""
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise


def output_of(command: Sequence[str]) -> str | None:
    try:
        result = subprocess.run(list(command), capture_output=True, text=True, timeout=TIMEOUT, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if result.returncode != 0:
        print(f"medinfra-turn-stats: {' '.join(command)}: {result.stderr.strip()[:200]}", file=sys.stderr)
        return None
    return result.stdout


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--user", default="turnserver", help="the user coturn runs as")
    parser.add_argument("--min-port", type=int, required=True)
    parser.add_argument("--max-port", type=int, required=True)
    parser.add_argument("--tcp-port", type=int, default=3478)
    parser.add_argument("--tls-port", type=int, default=5349)
    parser.add_argument("--total-quota", type=int, required=True)
    parser.add_argument("--textfile", type=Path, required=True, help="the .prom file to write")
    args = parser.parse_args(argv)
    now = time.time()
    ports = RelayPorts(args.min_port, args.max_port, args.tcp_port, args.tls_port)
    sockets = output_of(SS_COMMAND)
    found = None if sockets is None else usage(parse_ss(sockets), pwd.getpwnam(args.user).pw_uid, ports)
    counters = output_of(NFT_COMMAND)
    relayed: dict[str, int] = {}
    if counters is not None:
        try:
            relayed = parse_counters(counters)
        except ValueError as error:  # json's errors are ValueErrors
            print(f"medinfra-turn-stats: {' '.join(NFT_COMMAND)}: {error}", file=sys.stderr)
            counters = None
    write_atomically(args.textfile, render(found, args.total_quota, relayed, now))
    return 0 if found is not None and counters is not None else 1


if __name__ == "__main__":
    sys.exit(main())
