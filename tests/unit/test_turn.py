"""The TURN client (RFC 5389/5766 wire format, REST credentials, coturn configuration checks) and
`medinfra turn credentials`: RFC 5769 test vectors, independently computed digests, errors as located problems."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import ipaddress
import json
import os
import shutil
import socket
import stat
import struct
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from medinfra.cli import main
from medinfra.collector import collector_module
from medinfra.problems import UserInputError
from medinfra.turn import ice_server, relay_credentials, turn_module
from tests.conftest import LAB_TOPOLOGY, ROOT

turn: ModuleType = turn_module()

# RFC 5769 uses short-term credentials: the key is the password itself.
RFC5769_KEY = b"VOkJxbRl1RmTxUk/WvJxBt"
RFC5769_TRANSACTION = bytes.fromhex("b7e7a701bc34d686fa87dfae")
# RFC 5769 2.1, Sample Request (USERNAME padded with spaces, not zeros: padding may be any value).
RFC5769_REQUEST = bytes.fromhex(
    "000100582112a442b7e7a701bc34d686fa87dfae"
    "802200105354554e207465737420636c69656e74"  # SOFTWARE "STUN test client"
    "002400046e0001ff"  # PRIORITY
    "80290008932ff9b151263b36"  # ICE-CONTROLLED
    "000600096576746a3a68367659202020"  # USERNAME "evtj:h6vY" + 3 padding bytes
    "000800149aeaa70cbfd8cb56781ef2b5b2d3f249c1b571a2"  # MESSAGE-INTEGRITY
    "80280004e57a3bcf"  # FINGERPRINT
)
# RFC 5769 2.2 and 2.3, Sample IPv4 and IPv6 Responses (SOFTWARE "test vector", XOR-MAPPED-ADDRESS).
RFC5769_IPV4_RESPONSE = bytes.fromhex(
    "0101003c2112a442b7e7a701bc34d686fa87dfae8022000b7465737420766563746f7220"
    "002000080001a147e112a643"
    "000800142b91f599fd9e90c38c7489f92af9ba53f06be7d7"
    "80280004c07d4c96"
)
RFC5769_IPV6_RESPONSE = bytes.fromhex(
    "010100482112a442b7e7a701bc34d686fa87dfae8022000b7465737420766563746f7220"
    "002000140002a1470113a9faa5d3f179bc25f4b5bed2b9d9"
    "00080014a382954e4be67bf11784c97c8292c275bfe3ed41"
    "80280004c8fb0b4c"
)
SOFTWARE, PRIORITY, ICE_CONTROLLED = 0x8022, 0x0024, 0x8029

SECRET = "Zq8notArealSecretE3Jp0vK7wX2Lr9tQ5mB1nC4yH6=="
SECRET_CORE = SECRET.rstrip("=")  # what must never show, whatever a parser makes of the padding
PORTS = {"rtc_relay_listening_port": 3478, "rtc_relay_tls_listening_port": 5349}


# ---------------------------------------------------------------- independent oracles (RFC 5389 15.4, 15.5)


def attribute_offsets(data: bytes) -> Iterator[tuple[int, int]]:
    """(offset, type) of each attribute of a STUN message, walked by hand."""
    offset = 20
    while offset < len(data):
        kind, size = struct.unpack_from("!HH", data, offset)
        yield offset, kind
        offset += 4 + size + (-size % 4)


def expected_integrity(data: bytes, key: bytes) -> bytes:
    """HMAC-SHA1 over the message up to MESSAGE-INTEGRITY, the header's length counting up to its end."""
    at = next(offset for offset, kind in attribute_offsets(data) if kind == 0x0008)
    header = data[:2] + struct.pack("!H", at + 24 - 20) + data[4:20]
    return hmac.new(key, header + data[20:at], hashlib.sha1).digest()


def expected_fingerprint(data: bytes) -> bytes:
    """CRC-32 of the message up to FINGERPRINT (whose header length counts it), XOR 0x5354554e."""
    at = next(offset for offset, kind in attribute_offsets(data) if kind == 0x8028)
    header = data[:2] + struct.pack("!H", at + 8 - 20) + data[4:20]
    return struct.pack("!I", (binascii.crc32(header + data[20:at]) ^ 0x5354554E) & 0xFFFFFFFF)


def attribute_value(data: bytes, wanted: int) -> bytes:
    offset = next(offset for offset, kind in attribute_offsets(data) if kind == wanted)
    size = struct.unpack_from("!H", data, offset + 2)[0]
    return data[offset + 4 : offset + 4 + size]


def rest_password(secret: str, username: str) -> str:
    return base64.b64encode(hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()).decode()


# ---------------------------------------------------------------- wire format


@pytest.mark.parametrize("vector", [RFC5769_REQUEST, RFC5769_IPV4_RESPONSE, RFC5769_IPV6_RESPONSE])
def test_the_oracles_agree_with_the_rfc5769_vectors(vector: bytes) -> None:
    assert expected_integrity(vector, RFC5769_KEY) == attribute_value(vector, 0x0008)
    assert expected_fingerprint(vector) == attribute_value(vector, 0x8028)


def test_decode_reads_the_rfc5769_sample_request() -> None:
    message = turn.decode(RFC5769_REQUEST)
    assert message.type == 0x0001 and message.kind == turn.REQUEST
    assert message.transaction == RFC5769_TRANSACTION
    assert [kind for kind, _ in message.attributes] == [SOFTWARE, PRIORITY, ICE_CONTROLLED, 0x0006, 0x0008, 0x8028]
    assert message.get(SOFTWARE) == b"STUN test client"
    assert message.get(turn.USERNAME) == b"evtj:h6vY"  # the value, without its padding


def test_encode_reproduces_the_rfc5769_sample_request_byte_for_byte(monkeypatch: pytest.MonkeyPatch) -> None:
    # The RFC pads USERNAME with spaces; any padding is valid, so pad as the RFC does to compare every byte.
    monkeypatch.setattr(turn, "padded", lambda value: value + b" " * (-len(value) % 4))
    attributes = (
        (SOFTWARE, b"STUN test client"),
        (PRIORITY, bytes.fromhex("6e0001ff")),
        (ICE_CONTROLLED, bytes.fromhex("932ff9b151263b36")),
        (turn.USERNAME, b"evtj:h6vY"),
    )
    assert turn.encode(turn.Message(0x0001, RFC5769_TRANSACTION, attributes), RFC5769_KEY) == RFC5769_REQUEST


@pytest.mark.parametrize("vector", [RFC5769_IPV4_RESPONSE, RFC5769_IPV6_RESPONSE])
def test_encode_reproduces_the_rfc5769_sample_responses(monkeypatch: pytest.MonkeyPatch, vector: bytes) -> None:
    monkeypatch.setattr(turn, "padded", lambda value: value + b" " * (-len(value) % 4))
    message = turn.decode(vector)
    assert message.kind == turn.SUCCESS
    unsigned = turn.Message(message.type, message.transaction, message.attributes[:2])
    assert turn.encode(unsigned, RFC5769_KEY) == vector


def test_encode_with_zero_padding_has_integrity_and_fingerprint_over_the_right_bytes() -> None:
    transaction = bytes(range(12))
    attributes = ((turn.USERNAME, b"evtj:h6vY"), (turn.REALM, b"r"), (turn.NONCE, b"abcdefgh"))
    data = turn.encode(turn.Message(turn.ALLOCATE | turn.REQUEST, transaction, attributes), b"key")
    assert [kind for _, kind in attribute_offsets(data)] == [0x0006, 0x0014, 0x0015, 0x0008, 0x8028]
    assert attribute_value(data, 0x0008) == expected_integrity(data, b"key")
    assert attribute_value(data, 0x8028) == expected_fingerprint(data)
    assert data[20 + 4 + 9 : 20 + 4 + 12] == b"\0\0\0"  # USERNAME's padding


def test_encode_without_a_key_has_only_a_fingerprint() -> None:
    data = turn.encode(turn.Message(turn.SEND | turn.INDICATION, bytes(12), ((turn.DATA_ATTR, b"x"),)))
    assert [kind for _, kind in attribute_offsets(data)] == [turn.DATA_ATTR, 0x8028]
    assert attribute_value(data, 0x8028) == expected_fingerprint(data)


@pytest.mark.parametrize("key", [None, b"k"])
def test_encode_decode_round_trip_with_odd_lengths(key: bytes | None) -> None:
    attributes = tuple((0x8000 + size, bytes(range(1, size + 1))) for size in (0, 1, 2, 3, 4, 5, 7))
    attributes += ((turn.DATA_ATTR, b"again"), (turn.DATA_ATTR, b"twice"))  # repeats are kept, in order
    message = turn.Message(turn.ALLOCATE | turn.REQUEST, os.urandom(12), attributes)
    data = turn.encode(message, key)
    assert len(data) % 4 == 0
    assert struct.unpack_from("!H", data, 2)[0] == len(data) - 20
    decoded = turn.decode(data)
    trailer = (turn.MESSAGE_INTEGRITY, turn.FINGERPRINT) if key else (turn.FINGERPRINT,)
    assert decoded.type == message.type and decoded.transaction == message.transaction
    assert decoded.attributes[: len(attributes)] == attributes
    assert tuple(kind for kind, _ in decoded.attributes[len(attributes) :]) == trailer
    assert decoded.get(turn.DATA_ATTR) == b"again"


def test_decode_rejects_what_is_not_stun() -> None:
    good = turn.encode(turn.Message(turn.ALLOCATE, bytes(12)))
    with pytest.raises(turn.TurnError, match="short"):
        turn.decode(good[:19])
    with pytest.raises(turn.TurnError, match="not a STUN message"):
        turn.decode(good[:4] + b"\x21\x12\xa4\x43" + good[8:])  # wrong magic cookie
    with pytest.raises(turn.TurnError, match="not a STUN message"):
        turn.decode(b"\x40" + good[1:])  # the two top bits of a STUN type are zero
    with pytest.raises(turn.TurnError, match="not a STUN message"):
        turn.decode(good[:-1])  # shorter than its length field says
    assert turn.decode(good).transaction == bytes(12)


def test_error_code_and_kind_of_a_response() -> None:
    error = turn.Message(turn.ALLOCATE | turn.ERROR, bytes(12), ((turn.ERROR_CODE, b"\0\0\x04\x01Unauthorized"),))
    assert error.kind == turn.ERROR and error.error() == (401, "Unauthorized")
    assert turn.Message(turn.ALLOCATE | turn.ERROR, bytes(12), ((turn.ERROR_CODE, b"\0\0\x04\x03"),)).error() == (
        403,
        "",
    )
    success = turn.Message(turn.ALLOCATE | turn.SUCCESS, bytes(12))
    assert success.kind == turn.SUCCESS and success.error() == (0, "")


# ---------------------------------------------------------------- XOR addresses


def test_xor_mapped_addresses_of_rfc5769() -> None:
    v4 = bytes.fromhex("0001a147e112a643")
    v6 = bytes.fromhex("0002a1470113a9faa5d3f179bc25f4b5bed2b9d9")
    assert turn.xor_address("192.0.2.1", 32853, RFC5769_TRANSACTION) == v4
    assert turn.xor_address("2001:db8:1234:5678:11:2233:4455:6677", 32853, RFC5769_TRANSACTION) == v6
    assert turn.parse_xor_address(v4, RFC5769_TRANSACTION) == ("192.0.2.1", 32853)
    assert turn.parse_xor_address(v6, RFC5769_TRANSACTION) == ("2001:db8:1234:5678:11:2233:4455:6677", 32853)
    assert turn.parse_xor_address(attribute_value(RFC5769_IPV6_RESPONSE, 0x0020), RFC5769_TRANSACTION)[1] == 32853


@pytest.mark.parametrize(
    ("address", "port"), [("10.231.40.20", 40000), ("0.0.0.0", 0), ("fd00::1", 65535), ("::ffff:127.0.0.1", 1)]
)
def test_xor_address_round_trips(address: str, port: int) -> None:
    transaction = os.urandom(12)
    value = turn.xor_address(address, port, transaction)
    assert len(value) == (8 if ipaddress.ip_address(address).version == 4 else 20)
    assert turn.parse_xor_address(value, transaction) == (str(ipaddress.ip_address(address)), port)


def test_only_ipv6_addresses_depend_on_the_transaction() -> None:
    one, other = bytes(12), b"\xff" * 12
    assert turn.xor_address("192.0.2.1", 1, one) == turn.xor_address("192.0.2.1", 1, other)
    assert turn.xor_address("2001:db8::1", 1, one) != turn.xor_address("2001:db8::1", 1, other)
    assert turn.parse_xor_address(turn.xor_address("2001:db8::1", 1, one), other)[0] != "2001:db8::1"


# ---------------------------------------------------------------- credentials


def test_rest_credentials_with_and_without_a_user() -> None:
    username, password = turn.rest_credentials(SECRET, 600, "dr", now=1_800_000_000.9)
    assert username == "1800000600:dr"
    assert password == rest_password(SECRET, "1800000600:dr")
    username, password = turn.rest_credentials(SECRET, 3600, now=1_800_000_000)
    assert username == "1800003600"
    assert password == rest_password(SECRET, "1800003600")
    assert turn.rest_credentials("another secret", 3600, now=1_800_000_000)[1] != password


def test_rest_credentials_expire_ttl_seconds_from_now() -> None:
    before = int(time.time())
    username, _ = turn.rest_credentials(SECRET, 300)
    assert before + 300 <= int(username) <= int(time.time()) + 300
    expired, _ = turn.rest_credentials(SECRET, -60, "probe", now=1_800_000_000)
    assert expired == "1799999940:probe"


def test_long_term_key_is_md5_of_user_realm_password() -> None:
    assert (
        turn.long_term_key("user", "lab.medinfra.test", "pass")
        == hashlib.md5(b"user:lab.medinfra.test:pass", usedforsecurity=False).digest()
    )
    assert (
        turn.long_term_key("マトリックス", "example.org", "TheMatrIX")
        == hashlib.md5("マトリックス:example.org:TheMatrIX".encode(), usedforsecurity=False).digest()
    )


# ---------------------------------------------------------------- coturn address ranges


@pytest.mark.parametrize(
    ("network", "expected"),
    [
        ("10.0.0.0/8", "10.0.0.0-10.255.255.255"),
        ("10.231.40.20/32", "10.231.40.20"),
        ("10.231.40.20", "10.231.40.20"),
        ("10.231.40.20/24", "10.231.40.0-10.231.40.255"),  # host bits allowed
        ("::1/128", "::1"),
    ],
)
def test_network_range(network: str, expected: str) -> None:
    assert turn.network_range(network) == expected


def test_network_range_of_ipv4_mapped_ipv6() -> None:
    first, last = (ipaddress.ip_address(end) for end in turn.network_range("::ffff:0:0/96").split("-"))
    assert first == ipaddress.ip_address("::ffff:0.0.0.0")
    assert last == ipaddress.ip_address("::ffff:255.255.255.255")


def test_every_internal_network_survives_range_then_peer_range() -> None:
    for text in collector_module().TURN_INTERNAL_NETWORKS:
        network = ipaddress.ip_network(text)
        expected = (network.version, int(network.network_address), int(network.broadcast_address))
        assert turn.peer_range(turn.network_range(text)) == expected, text


def test_peer_range() -> None:
    address = int(ipaddress.ip_address("10.231.40.20"))
    assert turn.peer_range("10.231.40.20") == (4, address, address)
    assert turn.peer_range(" 10.0.0.0 - 10.255.255.255 ") == (4, 10 << 24, (11 << 24) - 1)
    assert turn.peer_range("fc00::-fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff") == (
        6,
        int(ipaddress.ip_address("fc00::")),
        int(ipaddress.ip_address("fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")),
    )


@pytest.mark.parametrize(
    "text",
    [
        "10.255.255.255-10.0.0.0",  # reversed
        "10.0.0.1-::1",  # mixed families
        "10.0.0.0/8",  # coturn 4.6.1 takes no prefix lengths
        "relay.example",
        "",
        "10.0.0.1-10.0.0.2-10.0.0.3",
    ],
)
def test_peer_range_refuses(text: str) -> None:
    with pytest.raises(ValueError):
        turn.peer_range(text)


# ---------------------------------------------------------------- coturn configuration

HELP_TEXT = """\
Usage: turnserver [options]
Options:
 -d, --listening-device\t<device-name>\t\tListener interface device (NOT RECOMMENDED. Optional, Linux only).
 -p, --listening-port\t\t<port>\t\tTURN listener port (Default: 3478).
     --tls-listening-port\t<port>\t\tTURN listener port for TLS (Default: 5349).
 --no-tlsv1_1\t\t\t\t\tDo not allow TLSv1.1 protocol.
 --denied-peer-ip=<ip[-ip]>  \t\t\tOption to ban a specific ip address or range of ip addresses.
 --allowed-peer-ip=<ip[-ip]>  \t\t\tOption to allow a specific ip address or range of ip addresses.
 --use-auth-secret\t\t\t\tTURN REST API flag.
 --static-auth-secret\t\t<secret>\tStatic authentication secret value (a string) for TURN REST API only.
 -r, --realm\t\t\t<realm>\t\tThe default realm to be used for the users.
 --cert\t\t\t\t<filename>\tCertificate file, PEM format.
 --pkey\t\t\t\t<filename>\tPrivate key file, PEM format.
 -a, --lt-cred-mech\t\t\t\tUse the long-term credential mechanism.
 -z, --no-auth\t\t\t\t\tDo not use any credential mechanism, allow anonymous access.
 --allow-loopback-peers\t\t\t\tAllow peers on the loopback addresses (127.x.x.x and ::1).
 -h\t\t\t\t\t\tHelp
Example: turnserver -L 10.0.0.1 --listening-port 3478
"""
KNOWN = {
    "listening-device",
    "listening-port",
    "tls-listening-port",
    "no-tlsv1_1",
    "denied-peer-ip",
    "allowed-peer-ip",
    "use-auth-secret",
    "static-auth-secret",
    "realm",
    "cert",
    "pkey",
    "lt-cred-mech",
    "no-auth",
    "allow-loopback-peers",
}
GOOD_CONFIG = f"""\
# Ansible managed
listening-port=3478
tls-listening-port 5349
use-auth-secret
static-auth-secret={SECRET}
realm="lab.medinfra.test"
cert=/etc/medinfra/pki/turn.crt
pkey=/etc/medinfra/pki/turn.key

no-tlsv1_1
denied-peer-ip=10.0.0.0-10.255.255.255
denied-peer-ip=::1
allowed-peer-ip=10.231.40.20
"""


def test_known_options_are_the_long_names_of_the_help() -> None:
    assert turn.known_options(HELP_TEXT) == KNOWN


def test_a_good_configuration_has_no_problem() -> None:
    assert turn.check_config(GOOD_CONFIG, KNOWN) == []


@pytest.mark.parametrize("option", ["prometheus", "no-loopback-peers"])
def test_an_unknown_option_is_named_with_its_line(option: str) -> None:
    problems = turn.check_config(GOOD_CONFIG.replace("# Ansible managed", f"# managed\n\n{option}"), KNOWN)
    assert problems == [f"line 3: {option!r} is not an option of this turnserver (it would be ignored)"]


@pytest.mark.parametrize("option", ["no-auth", "allow-loopback-peers", "lt-cred-mech"])
def test_options_that_open_the_relay_are_refused(option: str) -> None:
    problems = turn.check_config(GOOD_CONFIG + f"{option}\n", KNOWN)
    assert len(problems) == 1
    assert problems[0].startswith(f"line 14: {option!r} is refused: it allows ")


@pytest.mark.parametrize(
    "value", ["10.0.0.0/8", "10.255.255.255-10.0.0.0", "10.0.0.1-::1", "relay", "10.0.0.1 # a trailing comment"]
)
def test_a_peer_address_coturn_cannot_use_is_reported(value: str) -> None:
    problems = turn.check_config(GOOD_CONFIG + f"allowed-peer-ip={value}\n", KNOWN)
    assert len(problems) == 1 and problems[0].startswith("line 14: allowed-peer-ip: ")


@pytest.mark.parametrize("option", ["use-auth-secret", "static-auth-secret", "realm", "cert", "pkey"])
def test_each_required_option_is_reported_missing(option: str) -> None:
    text = "\n".join(line for line in GOOD_CONFIG.splitlines() if not line.startswith(option))
    assert turn.check_config(text, KNOWN) == [f"{option!r} is missing"]


def test_an_empty_configuration_misses_every_required_option() -> None:
    assert turn.check_config("# nothing\n", KNOWN) == [f"{name!r} is missing" for name in turn.REQUIRED_OPTIONS]


def test_problems_never_repeat_the_secret() -> None:
    broken = GOOD_CONFIG + "no-auth\nlt-cred-mech\ndenied-peer-ip=10.0.0.0/8\nprometheus\n"
    problems = turn.check_config(broken, KNOWN - {"static-auth-secret"})
    assert len(problems) == 5 and any("'static-auth-secret' is not an option" in p for p in problems)
    assert SECRET_CORE not in "\n".join(problems)


def test_a_tab_separated_secret_is_not_repeated() -> None:
    problems = turn.check_config(
        GOOD_CONFIG.replace(f"static-auth-secret={SECRET}", f"static-auth-secret\t{SECRET}"), KNOWN
    )
    assert SECRET_CORE not in "\n".join(problems)


def test_config_options_forms() -> None:
    text = '# comment\n\n  listening-port 3478\nrealm="lab.test"\nfingerprint\ncipher-list = "ECDHE:AES"\nmax-bps=0\n'
    assert list(turn.config_options(text)) == [
        ("listening-port", "3478"),
        ("realm", "lab.test"),
        ("fingerprint", ""),
        ("cipher-list", "ECDHE:AES"),
        ("max-bps", "0"),
    ]


def test_config_options_read_ordinary_lines_as_the_audit_does() -> None:
    """The probe and check-config must read a configuration as the collector (coturn's reading) does."""
    text = GOOD_CONFIG + 'cipher-list="ECDHE-ECDSA-AES256-GCM-SHA384"\n  # indented comment\nfingerprint\n'
    text += "denied-peer-ip=10.0.0.0-10.255.255.255 # coturn has no trailing comments\n"
    assert list(turn.config_options(text)) == collector_module().coturn_options(text)


@pytest.mark.parametrize(
    "line",
    [
        "static-auth-secret abc=def",  # '=' inside a value in the `name value` form
        "static-auth-secret\tabcdef",  # tab separator
    ],
)
def test_config_options_divergent_lines(line: str) -> None:
    assert list(turn.config_options(line)) == collector_module().coturn_options(line)


def test_static_auth_secret() -> None:
    assert turn.static_auth_secret(GOOD_CONFIG) == SECRET
    assert turn.static_auth_secret('use-auth-secret\nstatic-auth-secret="c2VjcmV0=="\n') == "c2VjcmV0=="
    assert turn.static_auth_secret("static-auth-secret  s3cret # not a comment\n") == "s3cret # not a comment"
    for text in ("use-auth-secret\n", "static-auth-secret=\n", f"# static-auth-secret={SECRET}\n"):
        with pytest.raises(turn.TurnError, match="no static-auth-secret"):
            turn.static_auth_secret(text)


# ---------------------------------------------------------------- node exporter textfile


def test_write_textfile(tmp_path: Path) -> None:
    path = tmp_path / "medinfra_turn.prom"
    path.write_text("stale\n")
    path.chmod(0o600)
    metrics = {"medinfra_turn_allocation_success": 1.0, "medinfra_turn_probe_duration_seconds": 0.25}
    turn.write_textfile(str(path), metrics, turn.PROBE_HELP)
    assert path.read_text().splitlines() == [
        f"# HELP medinfra_turn_allocation_success {turn.PROBE_HELP['medinfra_turn_allocation_success']}",
        "# TYPE medinfra_turn_allocation_success gauge",
        "medinfra_turn_allocation_success 1",
        f"# HELP medinfra_turn_probe_duration_seconds {turn.PROBE_HELP['medinfra_turn_probe_duration_seconds']}",
        "# TYPE medinfra_turn_probe_duration_seconds gauge",
        "medinfra_turn_probe_duration_seconds 0.25",
    ]
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert sorted(os.listdir(tmp_path)) == ["medinfra_turn.prom"]


def test_write_textfile_keeps_a_timestamp_exact(tmp_path: Path) -> None:
    path = tmp_path / "medinfra_turn.prom"
    turn.write_textfile(str(path), {"medinfra_turn_probe_timestamp_seconds": 1_800_000_123}, turn.PROBE_HELP)
    assert float(path.read_text().splitlines()[-1].split()[1]) == 1_800_000_123


# ---------------------------------------------------------------- exercise: errors as data


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_exercise_reports_a_relay_that_hangs_up_as_an_error() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)

        def hang_up() -> None:
            connection, _ = server.accept()
            connection.close()

        thread = threading.Thread(target=hang_up)
        thread.start()
        request = {
            "server": "127.0.0.1",
            "port": server.getsockname()[1],
            "transport": "tcp",
            "username": "u",
            "password": SECRET,
        }
        result = turn.exercise(request)
        thread.join(5)
    assert result["tls_version"] == ""
    assert "allocate" not in result
    assert result["error"].split(":")[0] in ("TurnError", "ConnectionResetError", "BrokenPipeError")
    assert SECRET_CORE not in json.dumps(result)


def test_exercise_reports_a_refused_connection_as_an_error() -> None:
    request = {"server": "127.0.0.1", "port": free_port(), "transport": "tcp", "username": "u", "password": "p"}
    assert turn.exercise(request)["error"].startswith("ConnectionRefusedError")


# ---------------------------------------------------------------- medinfra turn credentials


def test_ice_server_is_an_rtc_ice_server() -> None:
    server = ice_server(SECRET, "10.231.40.10", PORTS, 600, "dr", 1_800_000_000.5)
    assert server == {
        "urls": [
            "turns:10.231.40.10:5349?transport=tcp",
            "turn:10.231.40.10:3478?transport=udp",
            "turn:10.231.40.10:3478?transport=tcp",
        ],
        "username": "1800000600:dr",
        "credential": rest_password(SECRET, "1800000600:dr"),
        "expires": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(1_800_000_600)),
    }


def test_ice_server_uses_the_inventory_ports() -> None:
    ports = {"rtc_relay_listening_port": 3479, "rtc_relay_tls_listening_port": 443}
    urls = ice_server(SECRET, "turn.example", ports, 60, "", 0)["urls"]
    assert urls == [
        "turns:turn.example:443?transport=tcp",
        "turn:turn.example:3479?transport=udp",
        "turn:turn.example:3479?transport=tcp",
    ]


def refuse_to_read(*args: Any) -> list[tuple[str, dict[str, Any]]]:
    raise AssertionError("the inventory was read before the arguments were checked")


@pytest.mark.parametrize(
    ("ttl", "user", "message"),
    [
        (59, "", "--ttl: (top level): 59 is not between 60 and 86400 seconds"),
        (86401, "", "--ttl: (top level): 86401 is not between 60 and 86400 seconds"),
        (600, "dr:x", "--user: (top level): the user name cannot contain ':'"),
    ],
)
def test_bad_arguments_are_refused_before_the_inventory_is_read(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, ttl: int, user: str, message: str
) -> None:
    monkeypatch.setattr("medinfra.audit.targets.read_hosts", refuse_to_read)
    with pytest.raises(UserInputError) as raised:
        relay_credentials(tmp_path, None, ttl, user, now=1_800_000_000)
    assert str(raised.value).startswith(message)


@pytest.mark.parametrize("ttl", [60, 86400])
def test_the_ttl_bounds_are_accepted(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, ttl: int) -> None:
    monkeypatch.setattr(
        "medinfra.audit.targets.read_hosts",
        lambda *args: [("turn", {"rtc_relay_auth_secret": SECRET, "ansible_host": "192.0.2.7"})],
    )
    (server,) = relay_credentials(tmp_path, None, ttl, "", now=1_800_000_000)
    assert server["username"] == str(1_800_000_000 + ttl)
    assert server["urls"][0] == "turns:192.0.2.7:5349?transport=tcp"


def test_one_relay_by_name_and_its_address_and_ports(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    asked: list[Any] = []

    def read_hosts(*args: Any) -> list[tuple[str, dict[str, Any]]]:
        asked.append(args[1])
        return [
            (
                "turn-b",
                {
                    "rtc_relay_auth_secret": SECRET,
                    "medinfra_address": "10.0.0.9",
                    "ansible_host": "x",
                    "rtc_relay_tls_listening_port": "443",
                },
            )
        ]

    monkeypatch.setattr("medinfra.audit.targets.read_hosts", read_hosts)
    (server,) = relay_credentials(tmp_path, None, 600, "", now=0, relay="turn-b")
    assert asked == ["turn_relay"]  # the name is looked for among the relays, never used as a host pattern
    assert server["urls"] == [
        "turns:10.0.0.9:443?transport=tcp",
        "turn:10.0.0.9:3478?transport=udp",
        "turn:10.0.0.9:3478?transport=tcp",
    ]
    monkeypatch.setattr("medinfra.audit.targets.read_hosts", lambda *args: [])
    with pytest.raises(UserInputError, match="no host 'turn-b' with the turn_relay service in the inventory"):
        relay_credentials(tmp_path, None, 600, "", now=0, relay="turn-b")


@pytest.mark.parametrize("relay", ["his-db", "all", "*", "his*", "turn_relay:his-db", "turn-a,his-db"])
def test_relay_names_a_host_with_the_turn_relay_service_not_a_pattern(inventory: Path, relay: str) -> None:
    """--relay used to be an Ansible host pattern: credentials naming PHI hosts (his-db) were minted."""
    (inventory / "group_vars" / "all" / "secret.yml").write_text(f"rtc_relay_auth_secret: {SECRET}\n")
    with pytest.raises(UserInputError) as raised:
        relay_credentials(inventory, None, 600, "", now=0, relay=relay)
    expected = f"{inventory}: (top level): no host {relay!r} with the turn_relay service in the inventory"
    assert str(raised.value) == expected


@pytest.mark.parametrize(
    ("secret", "message"),
    [
        ("x", "is 1 characters long; the relay needs at least 32"),
        (SECRET[:31], "is 31 characters long; the relay needs at least 32"),
        (SECRET[:31] + "!", "has characters other than letters, digits and +/=_-"),
        (SECRET + " 'quoted'", "has characters other than letters, digits and +/=_-"),
    ],
)
def test_a_secret_the_role_refuses_is_refused_located_and_not_repeated(
    inventory: Path, capsys: pytest.CaptureFixture[str], secret: str, message: str
) -> None:
    (inventory / "group_vars" / "all" / "secret.yml").write_text(f"rtc_relay_auth_secret: {json.dumps(secret)}\n")
    assert main(["turn", "credentials", "--ttl", "600", "-i", str(inventory)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith(f"{inventory}: turn.rtc_relay_auth_secret: {message}")
    assert secret not in err.removeprefix(str(inventory)) and "Traceback" not in err


def test_the_documented_minimum_is_accepted(inventory: Path) -> None:
    secret = SECRET[:32]
    (inventory / "group_vars" / "all" / "secret.yml").write_text(f"rtc_relay_auth_secret: {secret}\n")
    (server,) = relay_credentials(inventory, None, 600, "dr", now=1_800_000_000)
    assert server["credential"] == rest_password(secret, "1800000600:dr")


@pytest.mark.parametrize("port", ["abc", "0", "65536", "1" * 5000, "²", "true"])
def test_a_bad_port_is_located_without_a_traceback(inventory: Path, port: str) -> None:
    (inventory / "group_vars" / "all" / "secret.yml").write_text(
        f"rtc_relay_auth_secret: {SECRET}\nrtc_relay_tls_listening_port: {json.dumps(port)}\n"
    )
    with pytest.raises(UserInputError) as raised:
        relay_credentials(inventory, None, 600, "", now=0)
    assert str(raised.value).startswith(f"{inventory}: turn.rtc_relay_tls_listening_port: ")
    assert "is not a port number" in str(raised.value) and SECRET_CORE not in str(raised.value)


@pytest.fixture
def inventory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The lab topology alone, as an inventory directory (no vault)."""
    monkeypatch.setenv("ANSIBLE_CONFIG", str(ROOT / "ansible.cfg"))
    shutil.copy(LAB_TOPOLOGY, tmp_path / "hospital.yml")
    (tmp_path / "group_vars" / "all").mkdir(parents=True)
    return tmp_path


def test_credentials_from_a_real_inventory(inventory: Path) -> None:
    (inventory / "group_vars" / "all" / "secret.yml").write_text(f"rtc_relay_auth_secret: {SECRET}\n")
    (server,) = relay_credentials(inventory, None, 600, "dr", now=1_800_000_000)
    assert server["username"] == "1800000600:dr"
    assert server["credential"] == rest_password(SECRET, "1800000600:dr")
    assert all(url.split(":")[1] == "10.231.40.10" for url in server["urls"])
    assert SECRET_CORE not in json.dumps(server)


def test_credentials_from_a_vaulted_secret(inventory: Path) -> None:
    """The secret as sites keep it: `!vault`-encrypted, read with the vault password file (the lab's way too)."""
    from ansible.parsing.vault import VaultLib, VaultSecret

    password = inventory / "vault-password"
    password.write_text("unit-test-vault-password\n")
    encrypted = VaultLib([("default", VaultSecret(b"unit-test-vault-password"))]).encrypt(SECRET).decode()
    indented = "\n".join("  " + line for line in encrypted.splitlines())
    (inventory / "group_vars" / "all" / "secret.yml").write_text(f"rtc_relay_auth_secret: !vault |\n{indented}\n")
    (server,) = relay_credentials(inventory, password, 600, "dr", now=1_800_000_000)
    assert server["credential"] == rest_password(SECRET, "1800000600:dr")


def test_an_inventory_without_the_secret_says_which_variable(inventory: Path) -> None:
    with pytest.raises(UserInputError, match=r"turn\.rtc_relay_auth_secret: is not set") as raised:
        relay_credentials(inventory, None, 600, "dr", now=1_800_000_000)
    assert "--vault-password-file" in str(raised.value) and "turn" in str(raised.value)


def test_cli_refuses_a_short_ttl_without_a_traceback(inventory: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["turn", "credentials", "--ttl", "5", "-i", str(inventory)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert "--ttl" in err and "5 is not between 60 and 86400 seconds" in err
    assert "Traceback" not in err


def test_cli_prints_ice_servers(inventory: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (inventory / "group_vars" / "all" / "secret.yml").write_text(f"rtc_relay_auth_secret: {SECRET}\n")
    before = int(time.time())
    assert main(["turn", "credentials", "--ttl", "600", "--user", "dr", "-i", str(inventory)]) == 0
    out = capsys.readouterr().out
    assert SECRET_CORE not in out
    (server,) = json.loads(out)["iceServers"]
    expiry, user = server["username"].split(":")
    assert user == "dr" and before + 600 <= int(expiry) <= int(time.time()) + 600
    assert server["credential"] == rest_password(SECRET, server["username"])


def test_an_ipv6_xor_address_needs_the_transaction_id() -> None:
    """IPv6 addresses are masked with the cookie and the transaction id (RFC 5389 15.2); without the id the
    attribute would be four bytes short, and a relay would read a different family."""
    turn = turn_module()
    with pytest.raises(ValueError):
        turn.xor_address("fd00::20", 40000, b"")
    transaction = bytes(range(12))
    assert turn.parse_xor_address(turn.xor_address("fd00::20", 40000, transaction), transaction) == ("fd00::20", 40000)
