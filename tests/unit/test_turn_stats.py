"""The relay's metrics program (plugins/module_utils/turn_stats.py), from `ss` and `nft -j` output recorded on a
coturn 4.6.1 relay holding four allocations (UDP, TCP, TLS on 5349, TLS on 443 redirected to 5349) and an idle TLS
connection, after ten 100-byte payloads were relayed to an echoing peer and back."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from plugins.module_utils import turn_stats as stats

FIXTURES = Path(__file__).parent / "fixtures" / "turn_stats"
SS = (FIXTURES / "ss-relay-holding-4-allocations.txt").read_text(encoding="utf-8")
NFT = (FIXTURES / "nft-relay-table.json").read_text(encoding="utf-8")
TURNSERVER_UID = 108  # `id turnserver` on the recorded relay
PROMTOOL = "/usr/bin/promtool"  # Debian's prometheus (scripts/install-deps.sh)
PORTS = stats.RelayPorts(min_port=49152, max_port=49300, tcp_port=3478, tls_port=5349)


def test_parse_ss_reads_every_tcp_and_udp_socket_with_its_owner() -> None:
    sockets = stats.parse_ss(SS)
    assert len(sockets) == len(SS.splitlines()) == 16
    assert sockets[2] == stats.Socket("udp", "UNCONN", "10.88.0.2", 49175, TURNSERVER_UID)
    # root's sshd: ss prints no uid for root.
    assert stats.Socket("tcp", "LISTEN", "0.0.0.0", 22, None) in sockets
    assert stats.Socket("tcp", "LISTEN", "::", 22, None) in sockets


def test_usage_counts_relay_sockets_as_allocations_and_client_connections_by_port() -> None:
    found = stats.usage(stats.parse_ss(SS), TURNSERVER_UID, PORTS)
    assert found.allocations == 4
    # One TCP client on 3478; three TLS connections on 5349: two allocations (one came in on 443) and an idle one.
    assert found.connections == {"tcp": 1, "tls": 3}


def test_usage_ignores_sockets_of_other_users_and_ports_outside_the_relay_range() -> None:
    lines = [
        "udp UNCONN 0 0 10.88.0.2:49200 0.0.0.0:* uid:999 ino:1 sk:1 <->",  # another user's ephemeral port
        "udp UNCONN 0 0 10.88.0.2:50000 0.0.0.0:* uid:108 ino:2 sk:2 <->",  # above max-port
        "udp UNCONN 0 0 [fd00:237:40::10]:49152 [::]:* uid:108 ino:3 sk:3 v6only:1 <->",  # an IPv6 relay socket
        "tcp SYN-RECV 0 0 10.88.0.2:5349 10.88.0.3:1 uid:108 ino:4 sk:4 <->",  # not established yet
        "tcp ESTAB 0 0 10.88.0.2:22 10.88.0.3:2 uid:108 ino:5 sk:5 <->",  # not a TURN port
    ]
    found = stats.usage(stats.parse_ss("\n".join(lines)), TURNSERVER_UID, PORTS)
    assert found == stats.Usage(1, {"tcp": 0, "tls": 0})


@pytest.mark.parametrize("line", ["", "Failed to find cgroup2 mount", "udp UNCONN 0 0 *:* *:*", "raw x y z a b"])
def test_parse_ss_skips_what_is_not_a_socket_line(line: str) -> None:
    assert stats.parse_ss(line) == []


def test_parse_counters_reads_the_bytes_of_the_tables_named_counters() -> None:
    # Ten packets each way, counted as IP packets (28 bytes of IPv4 and UDP headers): 100 bytes of payload to the
    # peer, its 105-byte "echo:..." back.
    assert stats.parse_counters(NFT) == {"to_peers": 1280, "from_peers": 1330}


@pytest.mark.parametrize("text", ['{"nftables": []}', "[]", '{"nftables": [{"counter": {"name": "other"}}]}'])
def test_parse_counters_without_the_tables_counters_is_empty(text: str) -> None:
    assert stats.parse_counters(text) == {}


def test_render_is_valid_exposition_with_numbers() -> None:
    text = stats.render(stats.Usage(4, {"tcp": 1, "tls": 3}), 1200, {"to_peers": 1280, "from_peers": 1330}, 1.5)
    lines = set(text.splitlines())
    assert {
        "medinfra_turn_allocations 4",
        "medinfra_turn_allocations_quota 1200",
        'medinfra_turn_client_connections{transport="tcp"} 1',
        'medinfra_turn_client_connections{transport="tls"} 3',
        'medinfra_turn_relayed_bytes_total{direction="from_peers"} 1330',
        'medinfra_turn_relayed_bytes_total{direction="to_peers"} 1280',
        "# TYPE medinfra_turn_relayed_bytes_total counter",
        "medinfra_turn_stats_timestamp_seconds 1.500",
    } <= lines
    checked = subprocess.run([PROMTOOL, "check", "metrics"], input=text, capture_output=True, text=True, check=False)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_render_leaves_out_what_was_not_read() -> None:
    """ss failed and the table is missing: no allocation figure at all rather than a false 0."""
    text = stats.render(None, 5, {}, 0.0)
    assert "medinfra_turn_allocations_quota 5" in text
    assert "medinfra_turn_allocations " not in text
    assert "client_connections" not in text and "relayed_bytes" not in text


def test_write_atomically_leaves_only_the_readable_file(tmp_path: Path) -> None:
    target = tmp_path / "medinfra_turn_stats.prom"
    stats.write_atomically(target, "a 1\n")
    stats.write_atomically(target, "a 2\n")
    assert target.read_text() == "a 2\n"
    assert target.stat().st_mode & 0o777 == 0o644
    assert [p.name for p in tmp_path.iterdir()] == [target.name]
