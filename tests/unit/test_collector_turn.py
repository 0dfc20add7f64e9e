"""The collector's turn section: coturn's configuration syntax, peer-range coverage, a fake /proc, no secret out."""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import json
import os
import pwd
from pathlib import Path
from typing import Any

import pytest

from medinfra.collector import collector_module
from medinfra.compliance.catalog import load_catalog
from medinfra.compliance.evaluate import evaluate
from medinfra.compliance.model import HostEvidence, Status

collector = collector_module()

SECRET = "Zq8#not-a-real-secret/e3Jp0vK7=wX2Lr9tQ5mB1nC4yH6"


def as_range(network: str) -> str:
    """A CIDR as coturn's `first-last` (what rtc_relay writes), one address as itself."""
    net = ipaddress.ip_network(network)
    first, last = net.network_address, net.broadcast_address
    return str(first) if first == last else f"{first}-{last}"


EVERY_INTERNAL_RANGE = [as_range(network) for network in collector.TURN_INTERNAL_NETWORKS]


def relay_config(denied: list[str] | None = None, allowed: list[str] | None = None, extra: str = "") -> str:
    """A configuration as rtc_relay writes it."""
    denied = EVERY_INTERNAL_RANGE if denied is None else denied
    allowed = ["10.231.30.20"] if allowed is None else allowed
    lines = [
        "# Ansible managed",
        "listening-ip=10.231.40.10",
        "relay-ip=10.231.40.10",
        "listening-port=3478",
        "tls-listening-port=5349",
        "min-port=49152",
        "max-port=65535",
        "use-auth-secret",
        f"static-auth-secret={SECRET}",
        "realm=lab.medinfra.test",
        "cert=/etc/medinfra/pki/turn.crt",
        "pkey=/etc/medinfra/pki/turn.key",
        'cipher-list="ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES128-GCM-SHA256"',
        "user-quota=12",
        "total-quota=1200",
        "max-bps=3000000",
        "fingerprint",
        "no-cli",
        "no-multicast-peers",
        "no-tcp-relay",
        "no-software-attribute",
        *[f"denied-peer-ip={entry}" for entry in denied],
        *[f"allowed-peer-ip={entry}" for entry in allowed],
    ]
    return "\n".join(lines) + "\n" + extra


# ---------------------------------------------------------------- coturn's syntax


def test_options_in_every_spelling_with_comments_and_repeats() -> None:
    text = "\n".join(
        [
            "# a comment",
            "   # an indented comment",
            "\tlistening-ip = 10.0.0.1",
            "listening-ip 10.0.0.2",
            "listening-ip=fd00::2",
            "",
            'realm="lab.medinfra.test"',
            'cipher-list="ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES128-GCM-SHA256"   \r',
            "no-cli",
            "fingerprint=false",
            'pidfile="/run/turnserver.pid',
            "denied-peer-ip=10.0.0.0-10.255.255.255 # RFC 1918",
        ]
    )
    assert collector.coturn_options(text) == [
        ("listening-ip", "10.0.0.1"),
        ("listening-ip", "10.0.0.2"),
        ("listening-ip", "fd00::2"),
        ("realm", "lab.medinfra.test"),
        ("cipher-list", "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES128-GCM-SHA256"),
        ("no-cli", ""),
        ("fingerprint", "false"),
        ("pidfile", "/run/turnserver.pid"),  # an unclosed quote: coturn drops the opening one
        # coturn has no trailing comments: the rest of the line is the value
        ("denied-peer-ip", "10.0.0.0-10.255.255.255 # RFC 1918"),
    ]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("", True),
        ("1", True),
        ("yes", True),
        ("true", True),
        ("on", True),
        ("On", True),
        ("0", False),
        ("no", False),
        ("false", False),
        ("off", False),
        ("OFF", False),
        ("maybe", None),  # coturn refuses to start
    ],
)
def test_switch_values(value: str, expected: bool | None) -> None:
    assert collector.coturn_bool(value) is expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("10.0.0.1", (4, int(ipaddress.ip_address("10.0.0.1")), int(ipaddress.ip_address("10.0.0.1")))),
        ("10.0.0.0-10.255.255.255", (4, 10 << 24, (11 << 24) - 1)),
        (" 10.0.0.0 - 10.255.255.255 ", (4, 10 << 24, (11 << 24) - 1)),  # coturn trims spaces around addresses
        ("::1", (6, 1, 1)),
        ("::ffff:0.0.0.0-::ffff:255.255.255.255", (6, 0xFFFF << 32, (0xFFFF << 32) | 0xFFFFFFFF)),
        ("10.0.0.0/8", None),  # coturn takes no prefix lengths
        ("intranet.lab", None),
        ("10.255.255.255-10.0.0.0", None),
        ("10.0.0.0-::1", None),
        ("10.0.0.0-10.255.255.255 # RFC 1918", None),
        ("", None),
    ],
)
def test_peer_ranges(text: str, expected: tuple[int, int, int] | None) -> None:
    assert collector.peer_range(text) == expected


def test_merging_joins_overlapping_and_adjacent_intervals_per_family() -> None:
    merged = collector.merge_intervals([(4, 10, 20), (6, 0, 5), (4, 21, 30), (4, 15, 25), (4, 40, 50), (6, 6, 6)])
    assert merged == [(4, 10, 30), (4, 40, 50), (6, 0, 6)]


# ---------------------------------------------------------------- coverage of the internal networks


def test_every_internal_network_denied() -> None:
    assert collector.networks_not_covered(collector.TURN_INTERNAL_NETWORKS, EVERY_INTERNAL_RANGE) == []


def test_a_missing_ten_slash_eight_is_reported() -> None:
    denied = [entry for entry in EVERY_INTERNAL_RANGE if not entry.startswith("10.")]
    assert collector.networks_not_covered(collector.TURN_INTERNAL_NETWORKS, denied) == ["10.0.0.0/8"]


def test_ipv4_ranges_do_not_cover_ipv4_mapped_ipv6() -> None:
    denied = [entry for entry in EVERY_INTERNAL_RANGE if not entry.startswith("::ffff:")]
    assert collector.networks_not_covered(collector.TURN_INTERNAL_NETWORKS, denied) == ["::ffff:0:0/96"]


def test_coverage_by_pieces_single_addresses_and_near_misses() -> None:
    networks = ["10.0.0.0/8", "::/128", "::1/128", "169.254.0.0/16", "172.16.0.0/12"]
    denied = [
        "10.0.0.0-10.127.255.255",  # two halves, adjacent: together they cover 10/8
        "10.128.0.0-10.255.255.255",
        "::",  # single addresses cover the one-address networks
        "::1",
        "169.254.0.0-169.254.200.0",  # overlapping pieces that still leave the top uncovered
        "169.254.100.0-169.254.255.254",
        "172.16.0.1",  # one address of 172.16/12 is not the network
    ]
    assert collector.networks_not_covered(networks, denied) == ["169.254.0.0/16", "172.16.0.0/12"]


def test_unparseable_ranges_cover_nothing_and_are_listed() -> None:
    denied = [entry for entry in EVERY_INTERNAL_RANGE if not entry.startswith(("10.", "192.168."))]
    denied += ["10.0.0.0/8", "192.168.0.0-192.168.255.255 # home routers"]
    facts = collector.turn_config_facts(relay_config(denied=denied, allowed=["media.lab", "10.231.30.20"]))
    assert facts["internal_networks_not_denied"] == ["10.0.0.0/8", "192.168.0.0/16"]
    assert facts["unparsed_peer_ranges"] == ["10.0.0.0/8", "192.168.0.0-192.168.255.255 # home routers", "media.lab"]
    assert facts["allowed_peers_single_addresses"] is False  # a name is not a single address


@pytest.mark.parametrize(
    ("allowed", "single"),
    [
        ([], True),
        (["10.231.30.20", "fd00::20"], True),
        (["10.231.30.20-10.231.30.20"], True),  # a range of one address
        (["10.231.30.20", "10.231.30.0-10.231.30.255"], False),
    ],
)
def test_allowed_peers_must_be_single_addresses(allowed: list[str], single: bool) -> None:
    facts = collector.turn_config_facts(relay_config(allowed=allowed))
    assert facts["allowed_peers_single_addresses"] is single
    assert facts["allowed_peer_ranges"] == allowed


# ---------------------------------------------------------------- what a configuration says


def test_a_relay_configuration_as_rtc_relay_writes_it() -> None:
    facts = collector.turn_config_facts(relay_config())
    assert facts == {
        "use_auth_secret": True,
        "static_auth_secret_set": True,
        "realm": "lab.medinfra.test",
        "cert": "/etc/medinfra/pki/turn.crt",
        "pkey": "/etc/medinfra/pki/turn.key",
        "cipher_list": "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES128-GCM-SHA256",
        "lt_cred_mech": False,
        "no_auth": False,
        "no_cli": True,
        "no_multicast_peers": True,
        "no_tcp_relay": True,
        "fingerprint": True,
        "no_software_attribute": True,
        "no_tlsv1": False,
        "no_tlsv1_1": False,
        "listening_port": 3478,
        "tls_listening_port": 5349,
        "min_port": 49152,
        "max_port": 65535,
        "user_quota": 12,
        "total_quota": 1200,
        "max_bps": 3000000,
        "listening_ips": ["10.231.40.10"],
        "relay_ips": ["10.231.40.10"],
        "denied_peer_ranges": EVERY_INTERNAL_RANGE,
        "allowed_peer_ranges": ["10.231.30.20"],
        "unparsed_peer_ranges": [],
        "internal_networks_not_denied": [],
        "allowed_peers_single_addresses": True,
    }


def test_an_empty_configuration_is_coturn_without_options() -> None:
    facts = collector.turn_config_facts("")
    assert facts["use_auth_secret"] is False
    assert facts["static_auth_secret_set"] is False
    assert facts["realm"] == ""
    assert facts["cert"] is None
    assert facts["cipher_list"] is None
    assert facts["no_multicast_peers"] is False
    assert facts["tls_listening_port"] is None
    assert facts["listening_ips"] == []
    assert facts["internal_networks_not_denied"] == list(collector.TURN_INTERNAL_NETWORKS)
    assert facts["allowed_peers_single_addresses"] is True


def test_last_value_wins_switch_values_and_the_secret_alone() -> None:
    text = """realm=first.example
realm=lab.medinfra.test
no-tcp-relay
no-tcp-relay=false
no-multicast-peers=yes
no-auth=0
lt-cred-mech=off
fingerprint=maybe
listening-port=3478
listening-port=3479
max-bps=3000000 # per session
tls-listening-port=abc
static-auth-secret=
static-auth-secret="   "
cipher-list=
"""
    facts = collector.turn_config_facts(text)
    assert facts["realm"] == "lab.medinfra.test"
    assert facts["no_tcp_relay"] is False
    assert facts["no_multicast_peers"] is True
    assert facts["no_auth"] is False
    assert facts["lt_cred_mech"] is False
    assert facts["fingerprint"] is False  # a value coturn refuses is not "on"
    assert facts["listening_port"] == 3479
    assert facts["max_bps"] == 3000000  # atoi stops at the first non-digit
    assert facts["tls_listening_port"] == 0  # and gives 0 without digits
    # A static-auth-secret line turns the REST mechanism on, but empty secrets are no secret.
    assert facts["use_auth_secret"] is True
    assert facts["static_auth_secret_set"] is False
    assert facts["cipher_list"] is None


def test_command_line_config_path() -> None:
    assert collector.turn_config_path(["/usr/bin/turnserver"], "/") == "/etc/turnserver.conf"
    argv = ["/usr/bin/turnserver", "-c", "/etc/coturn/relay.conf", "--pidfile="]
    assert collector.turn_config_path(argv, "/") == "/etc/coturn/relay.conf"
    assert collector.turn_config_path(["turnserver", "-c", "relay.conf"], "/srv/turn") == "/srv/turn/relay.conf"
    assert collector.turn_config_path(["turnserver", "-c"], "/") == "/etc/turnserver.conf"  # -c without a value
    assert collector.turn_config_path(["turnserver", "-n", "--no-auth"], "/") is None


# ---------------------------------------------------------------- the section on a fake host


def fake_process(proc: Path, pid: int, comm: str, argv: list[str], uid: int | None = None, cwd: str = "/") -> None:
    directory = proc / str(pid)
    directory.mkdir(parents=True)
    (directory / "comm").write_text(comm + "\n")
    (directory / "cmdline").write_bytes(b"".join(arg.encode() + b"\0" for arg in argv))
    os.symlink(cwd, directory / "cwd")
    if uid is not None:
        (directory / "status").write_text(
            f"Name:\t{comm}\nUmask:\t0022\nState:\tS (sleeping)\nUid:\t0\t{uid}\t{uid}\t{uid}\n"
        )


@pytest.fixture
def relay(tmp_path: Path) -> dict[str, Path]:
    """A relay host: the binary, a configuration under -c, turnserver running as this test's user."""
    binary = tmp_path / "usr" / "bin" / "turnserver"
    binary.parent.mkdir(parents=True)
    binary.write_text("")
    config = tmp_path / "etc" / "coturn" / "relay.conf"
    config.parent.mkdir(parents=True)
    config.write_text(relay_config())
    config.chmod(0o640)
    proc = tmp_path / "proc"
    fake_process(proc, 1, "systemd", ["/sbin/init"])
    fake_process(proc, 2, "kthreadd", [])
    fake_process(proc, 812, "turnserver", ["/usr/bin/turnserver", "-c", str(config), "--pidfile="], uid=os.getuid())
    return {"binary": binary, "config": config, "proc": proc, "default": tmp_path / "etc" / "turnserver.conf"}


def collect(relay: dict[str, Path]) -> dict[str, Any]:
    facts: dict[str, Any] = collector.collect_turn(str(relay["proc"]), str(relay["default"]), str(relay["binary"]))
    return facts


def test_turn_section_on_a_relay(relay: dict[str, Path]) -> None:
    facts = collect(relay)
    me = pwd.getpwuid(os.getuid()).pw_name
    assert facts["installed"] is True
    assert facts["running"] is True
    assert facts["user"] == me
    assert facts["config"] == {
        "path": str(relay["config"]),  # the -c argument, not the default
        "exists": True,
        "mode": "0640",
        "owner": me,
        "group": collector.group_name(os.getgid()),
        "world_readable": False,
    }
    assert facts["use_auth_secret"] is True
    assert facts["internal_networks_not_denied"] == []
    assert facts["tls_listening_port"] == 5349


def test_a_world_readable_configuration(relay: dict[str, Path]) -> None:
    relay["config"].chmod(0o644)
    config = collect(relay)["config"]
    assert config["mode"] == "0644"
    assert config["world_readable"] is True


def test_not_running_reads_the_default_configuration(relay: dict[str, Path]) -> None:
    for entry in (relay["proc"] / "812").iterdir():
        entry.unlink()
    (relay["proc"] / "812").rmdir()
    relay["binary"].unlink()
    facts = collect(relay)
    assert facts["installed"] is False
    assert facts["running"] is False
    assert facts["user"] is None
    assert facts["config"] == {"path": str(relay["default"]), "exists": False}
    assert facts["use_auth_secret"] is False  # coturn's defaults: no authentication
    assert facts["internal_networks_not_denied"] == list(collector.TURN_INTERNAL_NETWORKS)


def test_process_owner_unreadable_and_no_proc(tmp_path: Path) -> None:
    proc = tmp_path / "proc"
    fake_process(proc, 7, "turnserver", ["/usr/bin/turnserver"])  # no status file
    facts = collector.collect_turn(str(proc), str(tmp_path / "turnserver.conf"), str(tmp_path / "turnserver"))
    assert facts["running"] is True
    assert "unavailable" in facts["user"]
    nothing = collector.collect_turn(str(tmp_path / "no-proc"), str(tmp_path / "x.conf"), str(tmp_path / "x"))
    assert nothing["running"] is False


def test_started_without_a_configuration_file(tmp_path: Path) -> None:
    proc = tmp_path / "proc"
    fake_process(proc, 7, "turnserver", ["/usr/bin/turnserver", "-n", "--no-auth"], uid=os.getuid())
    facts = collector.collect_turn(str(proc), str(tmp_path / "turnserver.conf"), str(tmp_path / "turnserver"))
    assert facts["config"] == {"path": None, "exists": False}
    assert facts["use_auth_secret"] is False


def test_an_unreadable_configuration_makes_every_parsed_fact_unavailable(
    relay: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    real_read_text = collector.read_text
    monkeypatch.setattr(
        collector, "read_text", lambda path: None if path == str(relay["config"]) else real_read_text(path)
    )
    facts = collect(relay)
    assert facts["config"]["exists"] is True
    for key in ("use_auth_secret", "static_auth_secret_set", "internal_networks_not_denied", "no_tcp_relay"):
        assert facts[key] == {"unavailable": f"{relay['config']} not readable"}


def test_the_secret_never_leaves_the_host(relay: dict[str, Path]) -> None:
    relay["config"].write_text(
        relay_config(extra=f'cli-password={SECRET}\npkey-pwd="{SECRET}"\nstatic-auth-secret="{SECRET}x"\n')
    )
    facts = collect(relay)
    dumped = json.dumps(facts)
    for secret in (SECRET, SECRET + "x"):
        assert secret not in dumped
        for digest in (hashlib.sha1, hashlib.sha256, hashlib.md5):
            assert digest(secret.encode()).hexdigest() not in dumped
    for piece in (SECRET[:8], SECRET[-8:], SECRET.split("#")[1][:8]):
        assert piece not in dumped
    # Of the secret, only two booleans: whether the mechanism is on and whether a secret is set.
    about_secrets = {key: value for key, value in facts.items() if "secret" in key}
    assert about_secrets == {"use_auth_secret": True, "static_auth_secret_set": True}


# ---------------------------------------------------------------- collector output -> controls


def test_collected_facts_decide_the_controls(relay: dict[str, Path]) -> None:
    """The section as the collector writes it, judged by the real catalog."""
    catalog = load_catalog()

    def judge(turn: dict[str, Any]) -> dict[str, Status]:
        evidence = {"schema": "medinfra-evidence/1", "facts": {"turn": turn}}
        host = HostEvidence("turn", evidence, {"services": ["turn_relay"], "legacy": False})
        return {f.control: f.status for f in evaluate([host], catalog, [], dt.datetime.now(dt.UTC))}

    statuses = judge(collect(relay))
    assert statuses["turn_auth_required"] is Status.PASS
    assert statuses["turn_internal_peers_denied"] is Status.PASS

    denied = [entry for entry in EVERY_INTERNAL_RANGE if not entry.startswith("::ffff:")]
    relay["config"].write_text(relay_config(denied=denied, extra="no-auth\n"))
    statuses = judge(collect(relay))
    assert statuses["turn_auth_required"] is Status.FAIL
    assert statuses["turn_internal_peers_denied"] is Status.FAIL


def test_turn_tls_endpoints_are_the_handshakes_on_its_tls_port() -> None:
    """Only turnserver's listeners on the configured TLS port count; the plain TURN port is not TLS by design."""
    endpoints = [
        {"address": "10.231.40.10", "port": 5349, "process": "?", "tls": True},  # ss named no process
        {"address": "10.231.40.10", "port": 3478, "process": "turnserver", "tls": False},
        {"address": "10.231.40.99", "port": 5349, "process": "nginx", "tls": True},  # another address
    ]
    turn = {"running": True, "tls_listening_port": 5349, "listening_ips": ["10.231.40.10"]}
    found = collector.with_turn_tls_endpoints(turn, {"endpoints": endpoints})
    assert found["tls_endpoints"] == [endpoints[0]]
    everywhere = collector.with_turn_tls_endpoints({**turn, "listening_ips": []}, {"endpoints": endpoints})
    assert everywhere["tls_endpoints"] == [endpoints[0], endpoints[2]]
    assert "unavailable" in collector.with_turn_tls_endpoints(turn, {"unavailable": "no sockets"})["tls_endpoints"]
    assert "unavailable" in collector.with_turn_tls_endpoints(
        {"running": True, "tls_listening_port": None}, {"endpoints": endpoints}
    )["tls_endpoints"]
    assert collector.with_turn_tls_endpoints({"running": False}, {"endpoints": endpoints}) == {"running": False}
