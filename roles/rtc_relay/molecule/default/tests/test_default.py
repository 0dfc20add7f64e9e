"""The relay on live containers, exercised by a real TURN client from another container: TLS allocations with
time-limited credentials relay to the media server and the echo comes back; bad credentials get 401; every internal
peer, IPv4 and IPv6 (on a real IPv6 relay too), gets 403; the turnserver user's own traffic into internal networks is
dropped by the host firewall; TLS below 1.2 is refused; the secret stays in its 0640 file."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import threading
import time
from typing import Any

import pytest
import testinfra

from tests.container import python_in

RELAY, MEDIA, CLIENT = "10.237.40.10", "10.237.40.20", "10.237.40.30"
RELAY6, MEDIA6 = "fd00:237:40::10", "fd00:237:40::20"
SECRET = "molecule-turn-secret-not-a-secret-0123456789"
CLIENT_MODULE = "/usr/local/lib/medinfra_turn.py"
RELAY_MODULE = "/usr/local/lib/medinfra/medinfra-turn-probe"
CA = "/etc/medinfra/pki/ca.crt"
# Internal IPv4 peers, and this scenario's own zone addresses (the client, the relay itself): 403 on an IPv4 relay.
FORBIDDEN = (
    "127.0.0.1", "0.0.0.0", "10.1.2.3", "172.16.5.4", "192.168.1.1", "169.254.169.254", "100.64.0.1", CLIENT, RELAY,
)
# Internal IPv6 peers (IPv4-mapped included): 403 on an IPv6 relay. An IPv4 relay cannot reach them at all (443).
IPV6_PEERS = ("::1", "::ffff:127.0.0.1", "::ffff:10.0.0.1")
FORBIDDEN_ON_IPV6_RELAY = (*IPV6_PEERS, MEDIA6, "fe80::1", "64:ff9b::a00:1")

# Runs in a container: load the TURN client from its path and exercise the relay with the JSON request.
EXERCISE = r"""
import importlib.util, json, sys
spec = importlib.util.spec_from_file_location("medinfra_turn", sys.argv[1])
module = importlib.util.module_from_spec(spec)
sys.modules["medinfra_turn"] = module
spec.loader.exec_module(module)
print(json.dumps(module.exercise(json.loads(sys.argv[2]))))
"""


def credentials(ttl: int, user: str = "doctor", secret: str = SECRET) -> tuple[str, str]:
    """TURN REST credentials as the telemedicine application gets them (computed here independently)."""
    username = f"{int(time.time()) + ttl}:{user}"
    password = base64.b64encode(hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()).decode()
    return username, password


def exercise(host: Any, module: str, **request: Any) -> dict[str, Any]:
    username, password = request.pop("credentials", None) or credentials(600)
    request = {"server": RELAY, "port": 5349, "transport": "tls", "ca_file": CA, "server_name": RELAY,
               "username": username, "password": password, **request}
    return dict(json.loads(python_in(host, EXERCISE, module, json.dumps(request))))


@pytest.fixture(scope="module")
def client() -> Any:
    return testinfra.get_host("podman://turn-client")


@pytest.fixture(scope="module")
def relayed_v4(client: Any) -> dict[str, Any]:
    return exercise(client, CLIENT_MODULE, peers=[*FORBIDDEN, *IPV6_PEERS, MEDIA],
                    echo={"peer": MEDIA, "port": 40000, "payload": "consultation frame"})


@pytest.fixture(scope="module")
def relayed_v6(client: Any) -> dict[str, Any]:
    return exercise(client, CLIENT_MODULE, family=6, peers=list(FORBIDDEN_ON_IPV6_RELAY))


def test_allocation_over_tls_relays_to_the_media_server_and_the_data_arrives(relayed_v4: dict[str, Any]) -> None:
    assert relayed_v4["tls_version"] == "TLSv1.2", relayed_v4
    assert relayed_v4["allocate"]["ok"], relayed_v4
    assert relayed_v4["relayed"] == RELAY
    assert relayed_v4["permissions"][MEDIA]["ok"], relayed_v4
    # The echo server on the media host answered the relayed address; the relay delivered its answer back.
    assert relayed_v4["echo"] == {"from": f"{MEDIA}:40000", "payload": "echo:consultation frame"}


@pytest.mark.parametrize("peer", FORBIDDEN)
def test_internal_peer_is_forbidden(relayed_v4: dict[str, Any], peer: str) -> None:
    assert relayed_v4["permissions"][peer] == {"ok": False, "code": 403, "reason": "Forbidden IP"}


@pytest.mark.parametrize("peer", IPV6_PEERS)
def test_ipv6_peer_is_unreachable_from_an_ipv4_relay(relayed_v4: dict[str, Any], peer: str) -> None:
    assert relayed_v4["permissions"][peer]["code"] == 443, relayed_v4


def test_ipv6_relay_allocates_on_the_ipv6_address(relayed_v6: dict[str, Any]) -> None:
    assert relayed_v6["allocate"]["ok"], relayed_v6
    assert relayed_v6["relayed"] == RELAY6


@pytest.mark.parametrize("peer", FORBIDDEN_ON_IPV6_RELAY)
def test_internal_peer_is_forbidden_on_the_ipv6_relay(relayed_v6: dict[str, Any], peer: str) -> None:
    assert relayed_v6["permissions"][peer] == {"ok": False, "code": 403, "reason": "Forbidden IP"}, relayed_v6


@pytest.mark.parametrize(
    ("case", "issued"),
    [
        ("expired", lambda: credentials(-60)),
        ("wrong password", lambda: (credentials(600)[0], "d3JvbmcgcGFzc3dvcmQ=")),
        ("signed with another secret", lambda: credentials(600, secret="another-site-secret-0123456789abcdef")),
    ],
)
def test_bad_credentials_get_401(client: Any, case: str, issued: Any) -> None:
    result = exercise(client, CLIENT_MODULE, credentials=issued())
    assert result["allocate"] == {"ok": False, "code": 401, "reason": "Unauthorized"}, (case, result)


def test_plain_tcp_and_udp_also_require_credentials(client: Any) -> None:
    for transport in ("tcp", "udp"):
        good = exercise(client, CLIENT_MODULE, port=3478, transport=transport)
        assert good["allocate"]["ok"], (transport, good)
        bad = exercise(client, CLIENT_MODULE, port=3478, transport=transport, credentials=credentials(-60))
        assert bad["allocate"]["code"] == 401, (transport, bad)


TLS_HANDSHAKE = r"""
import socket, ssl, sys, warnings
context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
context.set_ciphers("ALL:@SECLEVEL=0")
with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    context.minimum_version = ssl.TLSVersion.TLSv1
    context.maximum_version = getattr(ssl.TLSVersion, sys.argv[1])
try:
    with context.wrap_socket(socket.create_connection(("10.237.40.10", 5349), timeout=5)) as tls:
        print(tls.version())
except (OSError, ssl.SSLError) as exc:
    print("refused", type(exc).__name__)
"""


@pytest.mark.parametrize(
    ("ceiling", "expected"), [("TLSv1", "refused"), ("TLSv1_1", "refused"), ("TLSv1_2", "TLSv1.2")]
)
def test_tls_below_1_2_is_refused(client: Any, ceiling: str, expected: str) -> None:
    assert python_in(client, TLS_HANDSHAKE, ceiling).split()[0] == expected


EGRESS = r"""
import socket, sys
family = socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET
s = socket.socket(family, socket.SOCK_DGRAM)
s.settimeout(2)
try:
    s.sendto(b"probe", (sys.argv[1], 40000))
    print(s.recvfrom(100)[0].decode())
except (socket.timeout, OSError) as exc:
    print("no answer", type(exc).__name__)
"""


def as_turnserver(host: Any, peer: str) -> str:
    encoded = base64.b64encode(EGRESS.encode()).decode()
    return str(host.check_output(
        f"setpriv --reuid=turnserver --regid=turnserver --clear-groups python3 -c "
        f"'import base64; exec(base64.b64decode(\"{encoded}\"))' {peer}"
    ))


def drop_counter(host: Any) -> int:
    chain = host.check_output("nft list chain inet medinfra output")
    return sum(int(n) for n in re.findall(r"ip6? daddr .* counter packets (\d+) bytes \d+ drop", chain))


def test_turnserver_user_reaches_the_media_server(host: Any) -> None:
    assert as_turnserver(host, MEDIA) == "echo:probe"


def test_turnserver_user_cannot_start_traffic_into_internal_networks(host: Any) -> None:
    before = drop_counter(host)
    # Dropped in the output hook: the kernel answers the sender EPERM.
    assert as_turnserver(host, CLIENT) == "no answer PermissionError"
    assert as_turnserver(host, MEDIA6) == "no answer PermissionError"
    assert drop_counter(host) >= before + 2
    # Root's traffic is not limited by the relay's rule: the echo on the media server's IPv6 address answers.
    assert python_in(host, EGRESS, MEDIA6) == "echo:probe"


def test_secret_stays_in_its_file(host: Any) -> None:
    config = host.file("/etc/turnserver.conf")
    assert (config.user, config.group, config.mode) == ("root", "turnserver", 0o640)
    assert host.run(f"grep -rl {SECRET} /etc /usr/local /var/lib /run --exclude=turnserver.conf").stdout == ""
    assert SECRET not in host.check_output("ps -eo args")
    assert SECRET not in host.check_output("journalctl --no-pager -o cat")
    probe = host.check_output("systemctl cat medinfra-turn-probe.service")
    assert "LoadCredential=turnserver.conf:/etc/turnserver.conf" in probe and SECRET not in probe


def test_probe_feeds_the_node_exporter(host: Any) -> None:
    metrics = host.file("/var/lib/prometheus/node-exporter/medinfra_turn.prom").content_string
    assert re.search(r"^medinfra_turn_allocation_success 1$", metrics, re.MULTILINE), metrics
    assert re.search(r"^medinfra_turn_auth_required 1$", metrics, re.MULTILINE), metrics
    assert host.service("medinfra-turn-probe.timer").is_running


def test_probe_fails_when_allocations_fail(host: Any) -> None:
    """Stopped relay: the probe exits non-zero and the metric turns to 0; started again, back to 1."""
    prom = "/var/lib/prometheus/node-exporter/medinfra_turn.prom"
    try:
        host.check_output("systemctl stop coturn.service")
        failed = host.run("systemctl start medinfra-turn-probe.service")
        assert failed.rc == 1, failed.stderr  # systemctl's "job failed": the probe exited non-zero
        metrics = host.file(prom).content_string
        assert re.search(r"^medinfra_turn_allocation_success 0$", metrics, re.MULTILINE), metrics
    finally:
        host.check_output("systemctl start coturn.service")
    for _ in range(20):
        if host.run("systemctl start medinfra-turn-probe.service").rc == 0:
            break
        time.sleep(0.5)
    metrics = host.file(prom).content_string
    assert re.search(r"^medinfra_turn_allocation_success 1$", metrics, re.MULTILINE), metrics


RELOAD = r"""
import importlib.machinery, importlib.util, subprocess, sys, time
loader = importlib.machinery.SourceFileLoader("medinfra_turn", sys.argv[1])  # installed without a .py suffix
spec = importlib.util.spec_from_loader("medinfra_turn", loader)
t = importlib.util.module_from_spec(spec)
sys.modules["medinfra_turn"] = t
spec.loader.exec_module(t)
username, password = t.rest_credentials(sys.argv[2], 600, "reload")
relay = t.Relay("10.237.40.10", 5349, "tls", "/etc/medinfra/pki/ca.crt", "10.237.40.10")
print(relay.allocate(username, password).kind == t.SUCCESS)
subprocess.run(["systemctl", "reload", "coturn.service"], check=True)
time.sleep(1)
refreshed = relay.transact(t.REFRESH, ((t.LIFETIME, (600).to_bytes(4, "big")),))
print(refreshed.kind == t.SUCCESS)
"""


def test_certificate_reload_keeps_sessions(host: Any) -> None:
    pid = host.check_output("systemctl show -P MainPID coturn.service")
    assert python_in(host, RELOAD, RELAY_MODULE, SECRET).split() == ["True", "True"]
    assert host.check_output("systemctl show -P MainPID coturn.service") == pid


def test_no_plaintext_telnet_client_on_the_relay(host: Any) -> None:
    """coturn's "telnet | telnet-client" dependency is met by the role's stub package, not by a telnet client."""
    assert host.package("medinfra-telnet-client-stub").is_installed
    assert not host.package("telnet").is_installed and not host.package("inetutils-telnet").is_installed
    assert host.run("apt-get check").rc == 0  # no broken dependency left


def test_coturn_runs_sandboxed_as_its_user(host: Any) -> None:
    assert host.check_output("ps -o user= -C turnserver").split() == ["turnserver"]
    properties = host.check_output("systemctl show -p ProtectSystem -p NoNewPrivileges -p PrivateDevices coturn")
    assert "ProtectSystem=strict" in properties and "NoNewPrivileges=yes" in properties
    analysis = host.check_output("systemd-analyze security coturn.service --no-pager")
    exposure = float(re.search(r"Overall exposure level for coturn.service: ([0-9.]+)", analysis).group(1))
    assert exposure <= 2.5, analysis[-2000:]


def test_listens_on_its_zone_addresses_only(host: Any) -> None:
    listening = host.check_output("ss -Hlntu")
    turn_lines = [line for line in listening.splitlines() if re.search(r":(3478|5349)\s", line)]
    addresses = {line.split()[4].rsplit(":", 1)[0] for line in turn_lines}
    assert addresses == {RELAY, f"[{RELAY6}]"}, listening


def test_turn_over_tls_on_443_reaches_the_media_server(client: Any) -> None:
    """The 443 fallback: TLS 1.2 verified against the site CA, an allocation, and media relayed both ways."""
    result = exercise(client, CLIENT_MODULE, port=443, peers=[MEDIA],
                      echo={"peer": MEDIA, "port": 40000, "payload": "frame over 443"})
    assert result["tls_version"] == "TLSv1.2", result
    assert result["allocate"]["ok"], result
    assert result["echo"] == {"from": f"{MEDIA}:40000", "payload": "echo:frame over 443"}, result


def test_443_is_a_redirect_not_a_second_listener(host: Any) -> None:
    assert not re.search(r":443\s", host.check_output("ss -Hltn")), "coturn itself must not listen on 443"
    assert host.service("medinfra-rtc-relay-nftables.service").is_enabled
    redirect = host.check_output("nft list chain inet medinfra_rtc_relay redirect_alt_tls")
    assert f"ip daddr {RELAY} tcp dport 443 redirect to :5349" in redirect, redirect


STATS_PROM = "/var/lib/prometheus/node-exporter/medinfra_turn_stats.prom"


def relay_metrics(host: Any) -> dict[str, float]:
    """The relay metrics right now: the stats service run once, its textfile read as numbers."""
    host.check_output("systemctl start medinfra-turn-stats.service")
    text = host.file(STATS_PROM).content_string
    return {name: float(value) for name, value in re.findall(r"^(medinfra_turn_\S+) (\S+)$", text, re.MULTILINE)}


def test_relayed_bytes_count_the_media_to_and_from_peers(host: Any, client: Any) -> None:
    before = relay_metrics(host)
    result = exercise(client, CLIENT_MODULE, peers=[MEDIA], echo={"peer": MEDIA, "port": 40000, "payload": "x" * 500})
    assert result["echo"]["payload"] == "echo:" + "x" * 500, result
    after = relay_metrics(host)
    sent, received = (f'medinfra_turn_relayed_bytes_total{{direction="{d}"}}' for d in ("to_peers", "from_peers"))
    # IP packets: the payload and at least the 28 bytes of IPv4 and UDP headers.
    assert after[sent] >= before[sent] + 500 + 28, (before, after)
    assert after[received] >= before[received] + 505 + 28, (before, after)


# Runs on the client: allocations over TLS held open, in the order the quotas are proven, then one released and a
# new one tried once the test has read the relay's metrics (it creates the release file).
QUOTAS = r"""
import importlib.util, json, os, sys, time
spec = importlib.util.spec_from_file_location("medinfra_turn", sys.argv[1])
t = importlib.util.module_from_spec(spec)
sys.modules["medinfra_turn"] = t
spec.loader.exec_module(t)
request = json.loads(sys.argv[2])
held, codes = [], {}

def allocate(user):
    relay = t.Relay(request["server"], 5349, "tls", request["ca_file"], request["server"])
    outcome = t.outcome(relay.allocate(*request["users"][user]))
    codes.setdefault(user, []).append(outcome["code"])
    held.append(relay) if outcome["ok"] else relay.close()

for user, times in (("first", 4), ("second", 3)):
    for _ in range(times):
        allocate(user)
open(request["held_file"], "w").write(str(len(held)))
deadline = time.monotonic() + 120
while not os.path.exists(request["release_file"]) and time.monotonic() < deadline:
    time.sleep(0.2)
# coturn frees the quota when it deletes the released allocation, a moment after the release is answered.
held[0].release()
held[0].close()
deadline = time.monotonic() + 15
while codes.get("third", [486])[-1] == 486 and time.monotonic() < deadline:
    time.sleep(0.5)
    allocate("third")
print(json.dumps(codes))
"""


def test_quotas_refuse_a_users_4th_and_the_6th_allocation_and_release_lets_one_in(host: Any, client: Any) -> None:
    """user-quota 3 and total-quota 5 (converge.yml): 486 beyond either; the metrics count the 5 held."""
    held_file, release_file = "/tmp/medinfra-quota.held", "/tmp/medinfra-quota.release"
    client.check_output(f"rm -f {held_file} {release_file}")
    users = {name: credentials(600, user=f"quota-{name}") for name in ("first", "second", "third")}
    request = {"server": RELAY, "ca_file": CA, "users": users, "held_file": held_file, "release_file": release_file}
    output: list[str] = []
    # The probe's own allocation would take one of the five.
    host.check_output("systemctl stop medinfra-turn-probe.timer medinfra-turn-probe.service")
    try:
        worker = threading.Thread(
            target=lambda: output.append(python_in(client, QUOTAS, CLIENT_MODULE, json.dumps(request))))
        worker.start()
        for _ in range(300):
            if client.file(held_file).exists or not worker.is_alive():
                break
            time.sleep(0.2)
        held = relay_metrics(host)
        client.check_output(f"touch {release_file}")
        worker.join(timeout=60)
    finally:
        host.check_output("systemctl start medinfra-turn-probe.timer")
    assert output, "the client's allocations did not finish"
    codes = json.loads(output[0])
    assert codes["first"] == [0, 0, 0, 486], codes  # the user's 4th
    assert codes["second"] == [0, 0, 486], codes  # the 6th in all
    assert held["medinfra_turn_allocations"] == 5, held
    assert held["medinfra_turn_allocations_quota"] == 5, held
    assert held['medinfra_turn_client_connections{transport="tls"}'] >= 5, held
    # One released: a new user gets in (refused only until coturn has deleted the released allocation).
    assert codes["third"][-1] == 0 and set(codes["third"][:-1]) <= {486}, codes
