"""`medinfra turn credentials` for relays with the TLS fallback on 443, and for a hospital group: several inventories
(one per site or campus), the caller's site first, each relay's credentials from its own site's secret."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import shutil
from pathlib import Path

import pytest

from medinfra.cli import main
from medinfra.problems import UserInputError
from medinfra.turn import group_credentials, ice_server, relay_credentials, relay_ports
from tests.conftest import LAB_TOPOLOGY, ROOT

LAB_SECRET = "LabSiteNotArealSecretE3Jp0vK7wX2Lr9tQ5mB1nC4yH6"
TERTIARY_SECRET = "TertiaryNotArealSecretQ5mB1nC4yH6Lr9tE3Jp0vK7wX2"
TERTIARY_TOPOLOGY = ROOT / "inventories" / "example-tertiary" / "hospital.yml"
NOW = 1_800_000_000
ALL_PORTS = {"rtc_relay_listening_port": 3478, "rtc_relay_tls_listening_port": 5349, "rtc_relay_alt_tls_port": 443}


def rest_password(secret: str, username: str) -> str:
    return base64.b64encode(hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()).decode()


def test_urls_try_tls_then_udp_then_tcp_and_443_last() -> None:
    assert ice_server(LAB_SECRET, "10.231.40.10", ALL_PORTS, 600, "dr", NOW)["urls"] == [
        "turns:10.231.40.10:5349?transport=tcp",
        "turn:10.231.40.10:3478?transport=udp",
        "turn:10.231.40.10:3478?transport=tcp",
        "turns:10.231.40.10:443?transport=tcp",
    ]


@pytest.mark.parametrize("ports", [ALL_PORTS | {"rtc_relay_alt_tls_port": 0},
                                   ALL_PORTS | {"rtc_relay_tls_listening_port": 443}])
def test_no_443_url_without_the_fallback_or_when_tls_is_on_443_already(ports: dict[str, int]) -> None:
    urls = ice_server(LAB_SECRET, "turn.example", ports, 600, "", NOW)["urls"]
    assert len(urls) == 3 and len(set(urls)) == 3, urls
    assert urls[0] == f"turns:turn.example:{ports['rtc_relay_tls_listening_port']}?transport=tcp"


@pytest.mark.parametrize(
    ("variables", "expected"),
    [
        ({}, ALL_PORTS),  # the role's defaults: the fallback is on
        ({"rtc_relay_alt_tls_port": 0}, ALL_PORTS | {"rtc_relay_alt_tls_port": 0}),  # off stays off
        ({"rtc_relay_alt_tls_port": "0"}, ALL_PORTS | {"rtc_relay_alt_tls_port": 0}),
        ({"rtc_relay_alt_tls_port": "8443"}, ALL_PORTS | {"rtc_relay_alt_tls_port": 8443}),
    ],
)
def test_relay_ports_take_the_inventorys_and_default_to_the_roles(
    variables: dict[str, object], expected: dict[str, int]
) -> None:
    assert relay_ports(variables) == expected


def site_inventory(root: Path, topology: Path, secret: str, variables: str = "") -> Path:
    root.mkdir()
    shutil.copy(topology, root / "hospital.yml")
    (root / "group_vars" / "all").mkdir(parents=True)
    (root / "group_vars" / "all" / "secret.yml").write_text(f"rtc_relay_auth_secret: {secret}\n{variables}")
    return root


@pytest.fixture
def group(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """A hospital group of two sites: the lab (relay `turn`) and the example tertiary hospital (turn-01, turn-02)."""
    monkeypatch.setenv("ANSIBLE_CONFIG", str(ROOT / "ansible.cfg"))
    return (site_inventory(tmp_path / "lab", LAB_TOPOLOGY, LAB_SECRET),
            site_inventory(tmp_path / "tertiary", TERTIARY_TOPOLOGY, TERTIARY_SECRET))


def addresses(servers: list[dict[str, object]]) -> list[str]:
    return [str(server["urls"][0]).split(":")[1] for server in servers]  # type: ignore[index]


@pytest.mark.parametrize("order", [(0, 1), (1, 0)])
def test_the_callers_site_comes_first_whatever_the_order_of_the_inventories(
    group: tuple[Path, Path], order: tuple[int, int]
) -> None:
    inventories = [group[i] for i in order]
    tertiary_first = group_credentials(inventories, None, 600, "dr", NOW, site="tertiary")
    assert addresses(tertiary_first) == ["10.232.40.21", "10.232.40.22", "10.231.40.10"]
    lab_first = group_credentials(inventories, None, 600, "dr", NOW, site="lab")
    assert addresses(lab_first) == ["10.231.40.10", "10.232.40.21", "10.232.40.22"]
    # Without --site: the sites by name.
    assert addresses(group_credentials(inventories, None, 600, "dr", NOW)) == addresses(lab_first)


def test_each_relay_is_signed_with_its_own_sites_secret(group: tuple[Path, Path]) -> None:
    servers = group_credentials(list(group), None, 600, "dr", NOW, site="tertiary")
    secrets = [TERTIARY_SECRET, TERTIARY_SECRET, LAB_SECRET]
    for server, secret in zip(servers, secrets, strict=True):
        assert server["credential"] == rest_password(secret, str(server["username"]))
    text = json.dumps(servers)
    assert LAB_SECRET not in text and TERTIARY_SECRET not in text


def test_an_unknown_site_is_a_located_error_naming_the_known_ones(group: tuple[Path, Path]) -> None:
    with pytest.raises(UserInputError) as raised:
        group_credentials(list(group), None, 600, "dr", NOW, site="campus-east")
    message = str(raised.value)
    assert message.startswith("--site: (top level): 'campus-east' is not the site of a relay in ")
    assert str(group[0]) in message and "(sites: 'lab', 'tertiary')" in message


def test_a_bad_fallback_port_is_located(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANSIBLE_CONFIG", str(ROOT / "ansible.cfg"))
    inventory = site_inventory(tmp_path / "lab", LAB_TOPOLOGY, LAB_SECRET, "rtc_relay_alt_tls_port: https\n")
    with pytest.raises(UserInputError) as raised:
        relay_credentials(inventory, None, 600, "", now=NOW)
    assert str(raised.value) == (f"{inventory}: turn.rtc_relay_alt_tls_port: 'https' is not a port number "
                                 "(or 0 for none)")


def test_a_site_without_the_fallback_gets_no_443_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANSIBLE_CONFIG", str(ROOT / "ansible.cfg"))
    inventory = site_inventory(tmp_path / "lab", LAB_TOPOLOGY, LAB_SECRET, "rtc_relay_alt_tls_port: 0\n")
    (server,) = relay_credentials(inventory, None, 600, "", now=NOW)
    assert not any(":443?" in url for url in server["urls"])


def test_cli_takes_repeated_inventories_and_the_site(
    group: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    arguments = ["turn", "credentials", "--ttl", "600", "-i", str(group[0]), "-i", str(group[1])]
    assert main([*arguments, "--site", "tertiary"]) == 0
    servers = json.loads(capsys.readouterr().out)["iceServers"]
    assert addresses(servers) == ["10.232.40.21", "10.232.40.22", "10.231.40.10"]
    assert servers[0]["urls"][-1] == "turns:10.232.40.21:443?transport=tcp"
    assert main([*arguments, "--site", "nowhere"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("--site: ") and "Traceback" not in err
