"""The monitoring server on live containers: Prometheus scrapes every exporter over TLS with auth and probes the
HIS host's real HTTPS and DICOM-over-TLS endpoints; Alertmanager routes by SLA class; every service sandboxed."""

from __future__ import annotations

import json
import re
import time
from typing import Any
from urllib.parse import quote

import pytest

from tests.container import python_in

SERVER, HIS = "10.236.10.10", "10.236.10.20"
ADMIN = "admin:molecule-admin-password-not-a-secret"
INTERNAL = "prometheus:molecule-internal-password-not-a-secret"
UNITS = ("prometheus.service", "prometheus-alertmanager.service", "prometheus-blackbox-exporter.service",
         "medinfra-oncall-relay.service")

# Runs inside the server container: one HTTPS GET against the site CA; prints the status, then the body.
GET = r"""
import base64, ssl, sys, urllib.error, urllib.request
url = sys.argv[1]
request = urllib.request.Request(url)
if len(sys.argv) > 2:
    request.add_header("Authorization", "Basic " + base64.b64encode(sys.argv[2].encode()).decode())
context = ssl.create_default_context(cafile="/etc/medinfra/pki/ca.crt")
context.check_hostname = "127.0.0.1" not in url  # the blackbox exporter's certificate names the host
try:
    with urllib.request.urlopen(request, context=context, timeout=10) as answer:
        print(answer.status)
        print(answer.read().decode())
except urllib.error.HTTPError as exc:
    print(exc.code)
except OSError as exc:
    print("failed", exc)
"""


def get(host: Any, url: str, credentials: str = "") -> tuple[str, str]:
    out = python_in(host, GET, url, *([credentials] if credentials else []))
    status, _, body = out.partition("\n")
    return status, body


def query(host: Any, expression: str) -> list[dict[str, Any]]:
    status, body = get(host, f"https://{SERVER}:9090/api/v1/query?query={quote(expression)}", ADMIN)
    assert status == "200", body
    return list(json.loads(body)["data"]["result"])


@pytest.fixture(scope="module")
def targets(host: Any) -> list[dict[str, Any]]:
    """Prometheus' active targets once every one has been scraped (5 s interval in this scenario)."""
    deadline = time.monotonic() + 120
    active: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        status, body = get(host, f"https://{SERVER}:9090/api/v1/targets", ADMIN)
        assert status == "200", body
        active = json.loads(body)["data"]["activeTargets"]
        if active and all(t["health"] == "up" for t in active):
            break
        time.sleep(3)
    return active


def test_every_target_is_up_over_tls(targets: list[dict[str, Any]]) -> None:
    jobs = sorted({(t["labels"]["job"], t["labels"]["instance"]) for t in targets})
    assert jobs == [
        ("alertmanager", "mon-server"),
        ("blackbox", "10.236.10.20"),
        ("blackbox", "10.236.10.20:104"),
        ("blackbox", f"https://{HIS}:443/"),
        ("node", "mon-his"),
        ("node", "mon-server"),
        ("prometheus", "mon-server"),
    ], jobs
    assert all(t["health"] == "up" for t in targets), [(t["scrapeUrl"], t["lastError"]) for t in targets]
    assert all(t["scrapeUrl"].startswith("https://") for t in targets)


def test_up_and_probes_succeed_through_the_api(host: Any, targets: list[dict[str, Any]]) -> None:
    assert targets
    up = query(host, "up")
    assert len(up) == 7 and all(r["value"][1] == "1" for r in up)
    probes = {r["metric"]["module"]: r["value"][1] for r in query(host, "probe_success")}
    assert probes == {"icmp": "1", "https": "1", "tcp_tls": "1"}
    # The HIS host's labels from the topology travel with its series (alerts route on them).
    node = query(host, 'up{job="node",instance="mon-his"}')[0]["metric"]
    assert (node["zone"], node["sla"]) == ("core", "24x7-critical")
    expiry = query(host, "probe_ssl_earliest_cert_expiry - time()")
    assert expiry and all(300 * 86400 < float(r["value"][1]) <= 365 * 86400 for r in expiry)


def test_web_ui_requires_credentials_and_tls(host: Any) -> None:
    assert get(host, f"https://{SERVER}:9090/api/v1/targets")[0] == "401"
    assert get(host, f"https://{SERVER}:9090/api/v1/targets", "admin:wrong-password-for-admin")[0] == "401"
    # Plain HTTP to the TLS listener: Go's answer is 400 ("Client sent an HTTP request to an HTTPS server").
    assert get(host, f"http://{SERVER}:9090/api/v1/targets", ADMIN)[0] == "400"
    assert get(host, f"https://{SERVER}:9093/api/v2/status")[0] == "401"
    assert get(host, f"https://{SERVER}:9093/api/v2/status", ADMIN)[0] == "200"


def test_blackbox_verifies_certificates(host: Any) -> None:
    """The same endpoint passes with the site CA and fails with the public trust store (wrong CA)."""
    base = f"https://127.0.0.1:9115/probe?target=https://{HIS}:443/&module="
    site_ca = get(host, base + "https", INTERNAL)
    assert site_ca[0] == "200" and "\nprobe_success 1" in site_ca[1]
    public = get(host, base + "https_public", INTERNAL)
    assert public[0] == "200" and "\nprobe_success 0" in public[1]
    assert get(host, base + "https")[0] == "401"


def test_blackbox_and_alertmanager_listen_only_where_needed(host: Any) -> None:
    listeners = host.check_output("ss -Htln")
    local = [line.split()[3] for line in listeners.splitlines()]  # ss's fourth column: the local address

    def bound(port: int) -> list[str]:
        return [address for address in local if address.rsplit(":", 1)[1] == str(port)]

    assert bound(9115) == ["127.0.0.1:9115"], listeners
    assert bound(9093) == [f"{SERVER}:9093"], listeners
    assert bound(9094) == [], listeners  # no cluster gossip port


@pytest.mark.parametrize(
    ("labels", "receiver"),
    [
        ("sla=24x7-critical severity=critical", "pager"),
        ("sla=24x7-critical severity=warning", "oncall"),
        ("sla=24x7-standard severity=critical", "oncall"),
        ("sla=business-hours severity=critical", "office"),
    ],
)
def test_alerts_route_by_sla_class(host: Any, labels: str, receiver: str) -> None:
    routed = host.check_output(f"amtool config routes test --config.file=/etc/prometheus/alertmanager.yml {labels}")
    # First the SLA route's own receiver; round-the-clock routes then reach the rota's person on duty too.
    assert routed.strip().split(",")[0] == receiver
    if receiver != "office":
        assert routed.strip().split(",")[1:] == ["oncall-duty-a"]


# Runs inside the server container: posts an Alertmanager webhook payload to the relay, prints the HTTP status.
RELAY_POST = r"""
import json, sys, urllib.error, urllib.request
body = json.dumps({"receiver": "oncall-duty-a", "status": "firing", "alerts": []}).encode()
try:
    print(urllib.request.urlopen(urllib.request.Request(sys.argv[1], data=body), timeout=20).status)
except urllib.error.HTTPError as exc:
    print(exc.code)
"""


def test_the_relay_reads_its_targets_as_a_credential(host: Any) -> None:
    targets = host.file("/etc/prometheus/secrets/oncall-relay-targets.json")
    assert (targets.user, targets.group, targets.mode) == ("root", "root", 0o600)
    assert "oncall-not-a-secret" not in host.file("/etc/prometheus/alertmanager.yml").content_string
    # The configured key reaches the robot URL from the credential (unreachable here: 502); an unknown key is 404.
    assert python_in(host, RELAY_POST, "http://127.0.0.1:9096/duty-a-wecom-0").strip() == "502"
    assert python_in(host, RELAY_POST, "http://127.0.0.1:9096/nobody").strip() == "404"
    assert host.socket("tcp://127.0.0.1:9096").is_listening
    assert not host.socket("tcp://0.0.0.0:9096").is_listening


def test_every_rule_is_loaded(host: Any) -> None:
    status, body = get(host, f"https://{SERVER}:9090/api/v1/rules", ADMIN)
    assert status == "200"
    names = {r["name"] for g in json.loads(body)["data"]["groups"] for r in g["rules"]}
    rules = "".join(
        host.file(f"/etc/prometheus/rules/{name}").content_string
        for name in (
            "medinfra-alerts.rules.yml",
            "medinfra-interfaces.rules.yml",
            "medinfra-database.rules.yml",
            "medinfra-rtc.rules.yml",
        )
    )
    assert names == set(re.findall(r"^\s*- (?:alert|record): ([\w:]+)", rules, flags=re.M))
    assert {"HisEndpointDown", "BackupStale", "CertificateExpiringSoon", "TurnRelayUnreachable"} <= names
    assert {"InterfaceDown", "Hl7AckNegative", "InterfaceLatencyRegressed"} <= names
    # Each alert's runbook in the knowledge base (the role's default monitoring_server_kb_url).
    alerting = [r for g in json.loads(body)["data"]["groups"] for r in g["rules"] if r["type"] == "alerting"]
    assert {r["annotations"]["runbook_url"] for r in alerting} == {
        f"file:///srv/medinfra/kb/alerts/{r['name']}.html" for r in alerting
    }


@pytest.mark.parametrize("unit", UNITS)
def test_services_are_sandboxed(host: Any, unit: str) -> None:
    assert host.service(unit).is_running
    shown = dict(
        line.split("=", 1)
        for line in host.check_output(
            "systemctl show %s -p NoNewPrivileges -p ProtectSystem -p PrivateTmp -p RestrictNamespaces -p User",
            unit,
        ).splitlines()
    )
    assert (shown["NoNewPrivileges"], shown["ProtectSystem"], shown["PrivateTmp"]) == ("yes", "strict", "yes")
    assert shown["User"] == "prometheus"
    exposure = host.check_output("systemd-analyze security %s 2>&1 | tail -1", unit)
    level = float(re.search(r"exposure level for \S+: ([\d.]+)", exposure).group(1))  # type: ignore[union-attr]
    assert level <= 2.5, exposure


def test_passwords_are_files_not_arguments(host: Any) -> None:
    for name in ("node-exporter.password", "internal.password"):
        secret = host.file(f"/etc/prometheus/secrets/{name}")
        assert (secret.user, secret.group, secret.mode) == ("root", "prometheus", 0o640)
    cmdlines = host.check_output("cat /proc/[0-9]*/cmdline | tr '\\0' ' '")
    assert "not-a-secret" not in cmdlines
