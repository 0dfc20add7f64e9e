"""The node exporter on a live container: TLS only, auth required, old TLS refused, sandboxed, secret kept out."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.container import python_in

PASSWORD = "molecule-scrape-password-not-a-secret"
UNIT = "prometheus-node-exporter.service"

# Runs inside the container: one HTTPS request (or plain HTTP, or a TLS handshake capped at a version).
REQUEST = r"""
import base64, socket, ssl, sys, urllib.error, urllib.request
mode, address = sys.argv[1], sys.argv[2]
url = f"https://{address}:9100/metrics"
ca = ssl.create_default_context(cafile="/etc/medinfra/pki/ca.crt")
try:
    if mode == "plain":
        print(urllib.request.urlopen(f"http://{address}:9100/metrics", timeout=5).status)
    elif mode.startswith("tls"):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
        ctx.set_ciphers("ALL:@SECLEVEL=0")
        ctx.minimum_version = ssl.TLSVersion.TLSv1
        ctx.maximum_version = {"tls11": ssl.TLSVersion.TLSv1_1, "tls12": ssl.TLSVersion.TLSv1_2}[mode]
        with ctx.wrap_socket(socket.create_connection((address, 9100), timeout=5)) as s:
            print(s.version())
    else:
        request = urllib.request.Request(url)
        if len(sys.argv) > 3:
            request.add_header("Authorization", "Basic " + base64.b64encode(sys.argv[3].encode()).decode())
        body = urllib.request.urlopen(request, context=ca, timeout=5).read().decode()
        print(200)
        print(body)
except urllib.error.HTTPError as exc:
    print(exc.code)
except (OSError, ssl.SSLError) as exc:
    print("refused", type(exc).__name__, exc)
"""


@pytest.fixture(scope="module")
def address(host: Any) -> str:
    return str(host.check_output("hostname -I").split()[0])


def request(host: Any, *args: str) -> list[str]:
    return python_in(host, REQUEST, *args).splitlines()


def test_listens_only_on_the_zone_address(host: Any, address: str) -> None:
    assert host.service(UNIT).is_running
    assert host.service(UNIT).is_enabled
    listeners = host.check_output("ss -Htln 'sport = :9100'")
    # One socket, on the zone address: the local address is ss's fourth column.
    assert [line.split()[3] for line in listeners.splitlines()] == [f"{address}:9100"], listeners


def test_requires_credentials(host: Any, address: str) -> None:
    assert request(host, "https", address)[0] == "401"
    assert request(host, "https", address, f"prometheus:wrong-{PASSWORD}")[0] == "401"
    answer = request(host, "https", address, f"prometheus:{PASSWORD}")
    assert answer[0] == "200"
    assert any(line.startswith("node_cpu_seconds_total") for line in answer)
    # The sandbox still lets the timex collector read the clock's sync state (the ClockSkew alert needs it), and the
    # systemd collector see units (the SystemdUnitFailed alert).
    assert 'node_scrape_collector_success{collector="timex"} 1' in answer
    assert any(line.startswith("node_timex_sync_status") for line in answer)
    assert 'node_scrape_collector_success{collector="systemd"} 1' in answer
    # The textfile collector serves the host's recovery objectives (the backup freshness alert compares with it).
    assert "medinfra_sla_rpo_seconds 900" in answer
    assert any(line.startswith('medinfra_certificate_not_after_timestamp_seconds{certificate="node-exporter"}')
               for line in answer)


def test_plain_http_and_old_tls_are_refused(host: Any, address: str) -> None:
    # Go's TLS listener answers a plain HTTP request with 400 ("Client sent an HTTP request to an HTTPS server").
    assert request(host, "plain", address)[0] == "400"
    assert request(host, "tls11", address)[0].startswith("refused")
    assert request(host, "tls12", address)[0] == "TLSv1.2"


def test_only_the_bcrypt_hash_is_on_the_host(host: Any) -> None:
    config = host.file("/etc/prometheus/node-exporter-web.yml")
    assert (config.user, config.group, config.mode) == ("root", "prometheus", 0o640)
    assert re.search(r'prometheus: "\$2b\$12\$[./A-Za-z0-9]{53}"', config.content_string)
    # The password is split in the command and joined by the shell into grep's stdin, so no process's command
    # line (not even this check's) holds it whole.
    half = len(PASSWORD) // 2
    places = "/etc /var/lib/prometheus /run/systemd /proc/[0-9]*/cmdline"
    found = host.run(
        f"a='{PASSWORD[:half]}'; b='{PASSWORD[half:]}'; "
        f'grep -rlF -f - {places} 2>/dev/null <<EOF\n$a$b\nEOF\n'
        'journalctl --no-pager | grep -cF -f - <<EOF\n$a$b\nEOF'
    )
    assert found.stdout.strip().splitlines() == ["0"], found.stdout


def test_key_readable_by_the_exporter_group_only(host: Any) -> None:
    key = host.file("/etc/medinfra/pki/node-exporter.key")
    assert (key.user, key.group, key.mode) == ("root", "prometheus", 0o640)


def test_sandbox_is_live(host: Any) -> None:
    shown = dict(
        line.split("=", 1)
        for line in host.check_output(
            "systemctl show %s -p NoNewPrivileges -p ProtectSystem -p ProtectHome -p PrivateTmp -p PrivateDevices "
            "-p CapabilityBoundingSet -p RestrictNamespaces -p MemoryDenyWriteExecute -p SystemCallArchitectures "
            "-p ProtectKernelTunables -p ProtectControlGroups -p User",
            UNIT,
        ).splitlines()
    )
    assert shown["NoNewPrivileges"] == "yes"
    assert shown["ProtectSystem"] == "strict"
    assert shown["ProtectHome"] == "yes"
    assert shown["PrivateTmp"] == shown["PrivateDevices"] == "yes"
    assert shown["CapabilityBoundingSet"] == ""
    assert shown["RestrictNamespaces"] == "yes"
    assert shown["MemoryDenyWriteExecute"] == "yes"
    assert shown["SystemCallArchitectures"] == "native"
    assert shown["User"] == "prometheus"
    exposure = host.check_output("systemd-analyze security %s 2>&1 | tail -1", UNIT)
    level = float(re.search(r"exposure level for \S+: ([\d.]+)", exposure).group(1))  # type: ignore[union-attr]
    assert level <= 2.5, exposure
