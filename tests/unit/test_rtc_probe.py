"""What a vantage host's media-quality probe measures (medinfra.monitoring.rtc_probe) and the filter role rtc_probe
writes its configuration with: transports only where a flow allows them, the echo a relay may reach, credentials
that stay the same all week and never carry the secret."""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
from typing import Any

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.medinfra.hospital.plugins.filter.rtc_probe import rtc_probe_config

from medinfra.monitoring.rtc_probe import (
    DAY_SECONDS,
    WEEK_SECONDS,
    RelayPorts,
    credential_expiry,
    echo_peer,
    probe_config,
    probe_transports,
)
from medinfra.topology.load import load_topology
from medinfra.topology.model import Topology
from medinfra.turn import turn_module
from tests.conftest import LAB_TOPOLOGY

LAB = load_topology(LAB_TOPOLOGY)
LAB_DATA: dict[str, Any] = LAB.to_dict()
SECRET = "s" * 40
OPTIONS = {"ca_file": "/etc/medinfra/pki/ca.crt", "echo_port": 40001, "seconds": 3, "rate": 50, "size": 1000,
           "credential_days": 14}
NOW = 1_796_000_000.0


def with_flow(flow: dict[str, Any]) -> Topology:
    data = copy.deepcopy(LAB_DATA)
    data["flows"].append(flow)
    return Topology.from_dict(data)


def test_the_guest_vantage_gets_only_what_its_zone_may_send() -> None:
    transports, skipped = probe_transports(LAB, LAB.host("guest-01"), LAB.host("turn"), RelayPorts())
    # guest -> turn: udp 3478 and tcp 5349 are declared flows, tcp 3478 is not.
    assert {"transport": "udp", "port": 3478} in transports
    assert {"transport": "tls", "port": 5349} in transports
    assert {"transport": "tcp", "port": 3478} not in transports
    assert "tcp to turn:3478: no tcp flow from guest-01" in skipped


def test_the_443_fallback_follows_its_flow_and_comes_last() -> None:
    ports = RelayPorts(alt_tls=8443)
    vantage, relay = LAB.host("ws-01"), LAB.host("turn")
    without, skipped = probe_transports(LAB, vantage, relay, ports)
    assert {"transport": "tls", "port": 8443} not in without
    assert "tls to turn:8443: no tcp flow from ws-01" in skipped
    opened = with_flow({"from": "clinical", "to": "turn", "proto": "tcp", "ports": [8443], "purpose": "fallback"})
    transports, _ = probe_transports(opened, opened.host("ws-01"), opened.host("turn"), ports)
    assert transports == [
        {"transport": "udp", "port": 3478},
        {"transport": "tcp", "port": 3478},
        {"transport": "tls", "port": 5349},
        {"transport": "tls", "port": 8443},
    ]


def test_no_fallback_port_means_no_fallback_transport() -> None:
    assert [port for _, _, port in RelayPorts(alt_tls=0).candidates()] == [3478, 3478, 5349]
    assert RelayPorts.from_dict({"listening": 3479, "tls": 5350, "alt_tls": None}) == RelayPorts(3479, 5350, 0)


def test_the_echo_is_a_media_server_the_relay_may_reach() -> None:
    relay = LAB.host("turn")
    assert echo_peer(LAB, [relay], 40001).name == "media-01"
    # 41000 is outside the flow turn -> media-01 udp 40000-40999.
    with pytest.raises(ValueError, match="may reach on udp 41000"):
        echo_peer(LAB, [relay], 41000)


def test_credentials_stay_the_same_all_week_and_outlive_it() -> None:
    monday = (int(NOW) // WEEK_SECONDS) * WEEK_SECONDS
    expiries = {credential_expiry(monday + offset, 14) for offset in (0, 3600, 3 * DAY_SECONDS, WEEK_SECONDS - 1)}
    assert len(expiries) == 1
    [expiry] = expiries
    assert expiry - (monday + WEEK_SECONDS - 1) > 14 * DAY_SECONDS  # still 14 days left at the week's last second
    assert credential_expiry(monday + WEEK_SECONDS, 14) == expiry + WEEK_SECONDS


def test_a_vantage_no_flow_lets_out_is_refused_with_the_reasons() -> None:
    with pytest.raises(ValueError, match="no flow lets his-app reach a relay: udp to turn:3478"):
        probe_config(LAB, LAB.host("his-app"), {"turn": RelayPorts()}, ("u", "p"), ca_file="c", echo_port=40001,
                     seconds=3, rate=50, size=1000)


def test_only_relays_are_probed() -> None:
    with pytest.raises(ValueError, match="media-01 has no turn_relay service"):
        probe_config(LAB, LAB.host("ws-01"), {"media-01": RelayPorts()}, ("u", "p"), ca_file="c", echo_port=40001,
                     seconds=3, rate=50, size=1000)


def test_filter_writes_the_probe_s_configuration_with_minted_credentials() -> None:
    plan = rtc_probe_config(LAB_DATA, "guest-01", {"turn": {"listening": 3478, "tls": 5349, "alt_tls": 0}}, SECRET,
                            NOW, OPTIONS)
    config = plan["config"]
    assert config["relays"] == [{"name": "turn", "address": "10.231.40.10", "server_name": "10.231.40.10",
                                 "transports": [{"transport": "udp", "port": 3478},
                                                {"transport": "tls", "port": 5349}]}]
    assert config["peer"] == {"address": str(LAB.host("media-01").address), "port": 40001}
    # Whole numbers, as the probe demands (3.0 would be refused).
    assert [type(config[key]) for key in ("seconds", "rate", "size")] == [int, int, int]
    assert (config["seconds"], config["rate"], config["size"]) == (3, 50, 1000)
    assert plan["expiry"] == credential_expiry(NOW, 14)
    assert config["username"] == f"{plan['expiry']}:medinfra-rtc-probe-guest-01"
    expected = hmac.new(SECRET.encode(), config["username"].encode(), hashlib.sha1).digest()
    assert base64.b64decode(config["password"]) == expected
    assert SECRET not in repr(plan)
    # The probe on the host accepts it as it is: one session per relay port.
    specs, figures = turn_module().media_specs(config)
    assert [(spec.transport, spec.port) for spec in specs] == [("udp", 3478), ("tls", 5349)]
    assert figures == {"seconds": 3, "rate": 50, "size": 1000}
    assert plan["skipped"] == ["tcp to turn:3478: no tcp flow from guest-01"]


@pytest.mark.parametrize("secret", ["", "short-secret", "x" * 31, "with space" * 4])
def test_filter_refuses_a_bad_secret_without_repeating_it(secret: str) -> None:
    with pytest.raises(AnsibleFilterError, match="rtc_relay_auth_secret") as caught:
        rtc_probe_config(LAB_DATA, "guest-01", {"turn": {}}, secret, NOW, OPTIONS)
    assert not secret or secret not in str(caught.value)


def test_filter_names_a_missing_option() -> None:
    options = {k: v for k, v in OPTIONS.items() if k != "echo_port"}
    with pytest.raises(AnsibleFilterError, match="'echo_port'"):
        rtc_probe_config(LAB_DATA, "guest-01", {"turn": {}}, SECRET, NOW, options)
