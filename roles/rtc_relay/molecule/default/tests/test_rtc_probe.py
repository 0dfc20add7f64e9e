"""Role rtc_probe beside the relay it measures: the client (a vantage) streams media through the relay to the echo on
the media server over each port its flows allow; the echo answers the relay only; the probe holds credentials, never
the secret. Runs after test_default.py (the quota tests there count allocations; the probe's timer waits an hour)."""

from __future__ import annotations

import re
from typing import Any

import pytest
import testinfra

RELAY, MEDIA, CLIENT = "10.237.40.10", "10.237.40.20", "10.237.40.30"
SECRET = "molecule-turn-secret-not-a-secret-0123456789"
TEXTFILE = "/var/lib/prometheus/node-exporter/medinfra_rtc.prom"
CONFIG = "/etc/medinfra/rtc-probe/probe.json"
# A datagram to the echo from wherever the command runs; prints what came back or "timeout".
SEND = (
    "python3 -c \"import socket, sys; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(2);"
    " s.sendto(b'frame 7', (sys.argv[1], 40001));"
    " print(s.recv(100).decode())\" {} 2>&1 || echo timeout"
)


@pytest.fixture(scope="module")
def client() -> Any:
    return testinfra.get_host("podman://turn-client")


@pytest.fixture(scope="module")
def media() -> Any:
    return testinfra.get_host("podman://turn-media")


@pytest.fixture(scope="module")
def probed(client: Any) -> dict[tuple[str, str, str, str], float]:
    """The probe run now by its own unit: (metric, transport, port, quantile) -> value."""
    client.check_output("systemctl start medinfra-rtc-probe.service || true")
    found = {}
    for name, labels, value in re.findall(r"^(medinfra_rtc_\w+)(?:\{(.*)\})? (\S+)$",
                                          client.file(TEXTFILE).content_string, re.M):
        tags = dict(re.findall(r'(\w+)="([^"]*)"', labels))
        found[name, tags.get("transport", ""), tags.get("port", ""), tags.get("quantile", "")] = float(value)
    return found


def test_each_port_the_client_may_use_is_measured_until_the_user_quota(probed: dict[Any, float]) -> None:
    # Four ports allowed (UDP, TCP, TLS, TLS on 443), sessions opened in that order: the scenario's user quota of 3
    # refuses the probe's own 4th allocation, and a refused port has success 0 and no figures.
    success = {(t, p): v for (m, t, p, _), v in probed.items() if m == "medinfra_rtc_probe_success"}
    assert success == {("udp", "3478"): 1, ("tcp", "3478"): 1, ("tls", "5349"): 1, ("tls", "443"): 0}, probed
    for transport, port in (("udp", "3478"), ("tcp", "3478"), ("tls", "5349")):
        assert 0 < probed["medinfra_rtc_rtt_seconds", transport, port, "0.5"] < 0.1, probed
        assert probed["medinfra_rtc_loss_ratio", transport, port, ""] < 0.05, probed
    assert not [key for key in probed if key[0] == "medinfra_rtc_rtt_seconds" and key[2] == "443"], probed


def test_the_refusal_is_the_relay_s_quota(client: Any, probed: dict[Any, float]) -> None:
    journal = client.check_output("journalctl -u medinfra-rtc-probe --no-pager -o cat -n 5")
    assert '"code": 486' in journal, journal


def test_the_probe_holds_credentials_not_the_secret(client: Any) -> None:
    config = client.file(CONFIG)
    assert (config.mode, config.user, config.group) == (0o600, "root", "root")
    text = config.content_string
    assert SECRET not in text
    assert re.search(r'"username": "\d+:medinfra-rtc-probe-turn-client"', text), text
    unit = client.check_output("systemctl cat medinfra-rtc-probe.service")
    assert f"LoadCredential=probe.json:{CONFIG}" in unit and "--config %d/probe.json" in unit


def test_the_echo_answers_the_relay_unchanged_and_nobody_else(host: Any, client: Any) -> None:
    # `host` is the relay (the verifier's default).
    assert host.check_output(SEND.format(MEDIA)) == "frame 7"
    assert client.check_output(SEND.format(MEDIA)).endswith("timeout")


def test_the_echo_runs_sandboxed_as_its_own_account(media: Any) -> None:
    assert media.service("medinfra-rtc-echo").is_running
    assert media.check_output("systemctl show -P User medinfra-rtc-echo") == "medinfra-rtc-echo"
    assert media.check_output("systemctl show -P CapabilityBoundingSet medinfra-rtc-echo") == ""
    assert media.run("pgrep -u medinfra-rtc-echo -f medinfra-rtc-echo").rc == 0
