"""The interface probe on live containers: each interface of the target answers in its own protocol through the
exporter and through Prometheus (job interfaces); an HL7 stand-in told to answer AE, then to stay silent, turns
into ack_negative and ack_missing and fires the alerts; the service is loopback-only, sandboxed and refuses
requests without the password."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest
import testinfra

from tests.container import python_in

SERVER = "10.243.90.10"
ADMIN = "admin:molecule-admin-password-not-a-secret"
INTERNAL = "prometheus:molecule-internal-password-not-a-secret"
INTERFACES = ("his-adt", "his-fhir", "his-web")
MODE_FILE = "/run/mllp-standin.mode"

# Runs inside the server container: one HTTPS GET, TLS verified against the site CA for the given host name;
# prints the status, then the body.
GET = r"""
import base64, http.client, ssl, sys
address, port, path, name = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
context = ssl.create_default_context(cafile="/etc/medinfra/pki/ca.crt")
headers = {}
if len(sys.argv) > 5:
    headers["Authorization"] = "Basic " + base64.b64encode(sys.argv[5].encode()).decode()
connection = http.client.HTTPSConnection(address, port, context=context, timeout=20)
connection.sock = context.wrap_socket(__import__("socket").create_connection((address, port), 20), server_hostname=name)
try:
    connection.request("GET", path, headers=headers)
    answer = connection.getresponse()
    print(answer.status)
    print(answer.read().decode())
except OSError as exc:
    print("failed", exc)
"""


def get(host: Any, address: str, port: int, path: str, credentials: str = "") -> tuple[str, str]:
    out = python_in(host, GET, address, str(port), path, "probe-server", *([credentials] if credentials else []))
    status, _, body = out.partition("\n")
    return status, body


def probe(host: Any, interface: str) -> str:
    status, body = get(host, "127.0.0.1", 9129, f"/probe?interface={interface}", INTERNAL)
    assert status == "200", body
    return body


def value(metrics: str, series: str) -> str | None:
    match = re.search(rf"^{re.escape(series)} (\S+)$", metrics, flags=re.M)
    return match.group(1) if match else None


def query(host: Any, expression: str) -> list[dict[str, Any]]:
    status, body = get(host, SERVER, 9090, f"/api/v1/query?query={quote(expression)}", ADMIN)
    assert status == "200", body
    return list(json.loads(body)["data"]["result"])


@pytest.fixture
def target() -> Any:
    return testinfra.get_host("podman://probe-target")


@pytest.fixture
def standin_mode(target: Any) -> Iterator[Any]:
    """Lets a test tell the MLLP stand-in how to answer; AA again afterwards."""

    def told(mode: str) -> None:
        target.check_output(f"printf '%s\\n' {mode} > {MODE_FILE}")

    yield told
    target.check_output(f"rm -f {MODE_FILE}")


@pytest.mark.parametrize("interface", INTERFACES)
def test_each_interface_answers_in_its_protocol(host: Any, interface: str) -> None:
    metrics = probe(host, interface)
    assert value(metrics, "medinfra_interface_up") == "1", metrics
    assert value(metrics, 'medinfra_interface_result{result="ok"}') == "1", metrics
    latency = value(metrics, "medinfra_interface_latency_seconds")
    assert latency is not None and 0 < float(latency) < 1, metrics


def test_prometheus_scrapes_every_interface_with_its_labels(host: Any) -> None:
    deadline, up = time.monotonic() + 60, []
    while time.monotonic() < deadline:
        up = query(host, 'medinfra_interface_up{job="interfaces"}')
        if len(up) == len(INTERFACES):
            break
        time.sleep(3)
    assert sorted(r["metric"]["instance"] for r in up) == sorted(INTERFACES)
    adt = next(r["metric"] for r in up if r["metric"]["instance"] == "his-adt")
    assert (adt["protocol"], adt["owner"], adt["vendor"], adt["sla"], adt["to"]) == (
        "hl7v2-mllp",
        "his-team",
        "Example HIS Co.",
        "24x7-critical",
        "probe-target",
    )
    assert all(r["value"][1] == "1" for r in query(host, 'up{job="interfaces"}'))


def firing(host: Any, alertname: str, timeout: float = 60) -> dict[str, Any] | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        alerts = query(host, f'ALERTS{{alertname="{alertname}", alertstate="firing"}}')
        if alerts:
            return alerts[0]["metric"]
        time.sleep(2)
    return None


def test_negative_ack_and_silence_are_told_apart_and_alert(host: Any, standin_mode: Any) -> None:
    standin_mode("AE")
    metrics = probe(host, "his-adt")
    assert value(metrics, "medinfra_interface_up") == "0", metrics
    assert value(metrics, 'medinfra_interface_result{result="ack_negative"}') == "1", metrics
    alert = firing(host, "Hl7AckNegative")
    assert alert is not None and (alert["instance"], alert["severity"]) == ("his-adt", "critical")

    standin_mode("silent")
    metrics = probe(host, "his-adt")
    assert value(metrics, 'medinfra_interface_result{result="ack_missing"}') == "1", metrics
    assert firing(host, "Hl7AckMissing") is not None


def test_exporter_refuses_without_the_password(host: Any) -> None:
    assert get(host, "127.0.0.1", 9129, "/probe?interface=his-adt")[0] == "401"
    assert get(host, "127.0.0.1", 9129, "/probe?interface=his-adt", "prometheus:wrong-password-0123456")[0] == "401"


def test_exporter_listens_on_loopback_only(host: Any) -> None:
    listeners = host.check_output("ss -Htln")
    # ss's fourth column is the local address: one socket on port 9129, on loopback.
    assert [line.split()[3] for line in listeners.splitlines() if line.split()[3].endswith(":9129")] == [
        "127.0.0.1:9129"
    ], listeners


def test_service_is_sandboxed_with_credentials(host: Any) -> None:
    unit = "medinfra-interface-probe.service"
    assert host.service(unit).is_running and host.service(unit).is_enabled
    shown = dict(
        line.split("=", 1)
        for line in host.check_output(
            "systemctl show %s -p User -p NoNewPrivileges -p ProtectSystem -p RestrictAddressFamilies", unit
        ).splitlines()
    )
    assert (shown["User"], shown["NoNewPrivileges"], shown["ProtectSystem"]) == ("medinfra-probe", "yes", "strict")
    assert set(shown["RestrictAddressFamilies"].split()) == {"AF_INET", "AF_UNIX"}
    # systemd 252 shows LoadCredential= as "[unprintable]": what the running service was handed, instead.
    credentials = host.check_output("ls /run/credentials/%s", unit).split()
    assert sorted(credentials) == ["client.crt", "client.key", "password", "server.crt", "server.key"]
    exposure = host.check_output("systemd-analyze security %s 2>&1 | tail -1", unit)
    level = float(re.search(r"exposure level for \S+: ([\d.]+)", exposure).group(1))  # type: ignore[union-attr]
    assert level <= 2.5, exposure


def test_no_secret_on_a_command_line_or_in_the_configuration(host: Any) -> None:
    cmdlines = host.check_output("cat /proc/[0-9]*/cmdline | tr '\\0' ' '")
    assert "not-a-secret" not in cmdlines
    config = host.file("/etc/medinfra/interface-probe.json")
    assert (config.user, config.mode) == ("root", 0o644)
    assert "not-a-secret" not in config.content_string
    assert sorted(json.loads(config.content_string)["interfaces"]) == sorted(INTERFACES)
