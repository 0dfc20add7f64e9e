#!/usr/bin/python3
"""A small TURN client (RFC 5389 STUN, RFC 5766 TURN, RFC 6156 IPv6 relays) with TURN REST credentials.

Standard library only: the same file is the relay's allocation probe on the host (role rtc_relay installs it as
`medinfra-turn-probe`), the client the tests run from other zones' containers, and the code behind
`medinfra turn credentials` on the controller.

Secrets never travel on command lines: the probe reads the relay's configuration through a systemd credential,
and `exercise` takes its request (credentials included) as JSON on stdin.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import hashlib
import hmac
import ipaddress
import json
import os
import re
import secrets
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

MAGIC_COOKIE = 0x2112A442
HEADER = struct.Struct("!HHI12s")
FINGERPRINT_XOR = 0x5354554E
TIMEOUT = 5.0

# Methods (all below 0x10, so a message type is method | class).
ALLOCATE, REFRESH, SEND, DATA, CREATE_PERMISSION = 0x003, 0x004, 0x006, 0x007, 0x008
REQUEST, INDICATION, SUCCESS, ERROR = 0x000, 0x010, 0x100, 0x110

# Attributes.
USERNAME, MESSAGE_INTEGRITY, ERROR_CODE = 0x0006, 0x0008, 0x0009
LIFETIME, XOR_PEER_ADDRESS, DATA_ATTR = 0x000D, 0x0012, 0x0013
REALM, NONCE, XOR_RELAYED_ADDRESS = 0x0014, 0x0015, 0x0016
REQUESTED_ADDRESS_FAMILY, REQUESTED_TRANSPORT = 0x0017, 0x0019
XOR_MAPPED_ADDRESS, FINGERPRINT = 0x0020, 0x8028
UDP_TRANSPORT = 17
FAMILY_CODES = {4: 0x01, 6: 0x02}


class TurnError(Exception):
    """The relay could not be reached or spoke something that is not STUN."""


@dataclass(frozen=True)
class Message:
    """A STUN message: type (method | class), transaction id and attributes in order (repeats kept)."""

    type: int
    transaction: bytes
    attributes: tuple[tuple[int, bytes], ...] = ()

    def get(self, attribute: int) -> bytes | None:
        return next((value for kind, value in self.attributes if kind == attribute), None)

    @property
    def kind(self) -> int:
        return self.type & 0x0110

    def error(self) -> tuple[int, str]:
        """(code, reason) of an error response; (0, "") otherwise."""
        value = self.get(ERROR_CODE)
        if value is None or len(value) < 4:
            return 0, ""
        return (value[2] & 0x07) * 100 + value[3], value[4:].decode("utf-8", "replace")


def padded(value: bytes) -> bytes:
    return value + b"\0" * (-len(value) % 4)


def encode_attributes(attributes: tuple[tuple[int, bytes], ...]) -> bytes:
    return b"".join(struct.pack("!HH", kind, len(value)) + padded(value) for kind, value in attributes)


def encode(message: Message, key: bytes | None = None) -> bytes:
    """The message on the wire, with MESSAGE-INTEGRITY (when a key is given) and FINGERPRINT last."""
    body = encode_attributes(message.attributes)

    def header(extra: int) -> bytes:
        return HEADER.pack(message.type, len(body) + extra, MAGIC_COOKIE, message.transaction)

    if key is not None:
        # The HMAC covers the header with a length that already counts the integrity attribute (24 bytes).
        digest = hmac.new(key, header(24) + body, hashlib.sha1).digest()
        body += encode_attributes(((MESSAGE_INTEGRITY, digest),))
    crc = (binascii.crc32(header(8) + body) ^ FINGERPRINT_XOR) & 0xFFFFFFFF
    return header(8) + body + encode_attributes(((FINGERPRINT, struct.pack("!I", crc)),))


def decode(data: bytes) -> Message:
    if len(data) < HEADER.size:
        raise TurnError("short STUN message")
    kind, length, cookie, transaction = HEADER.unpack_from(data)
    if cookie != MAGIC_COOKIE or kind & 0xC000 or len(data) < HEADER.size + length:
        raise TurnError("not a STUN message")
    attributes, offset, end = [], HEADER.size, HEADER.size + length
    while offset + 4 <= end:
        attribute, size = struct.unpack_from("!HH", data, offset)
        attributes.append((attribute, data[offset + 4 : offset + 4 + size]))
        offset += 4 + size + (-size % 4)
    return Message(kind, transaction, tuple(attributes))


def xor_address(address: str, port: int, transaction: bytes) -> bytes:
    """An XOR-*-ADDRESS value (RFC 5389 15.2)."""
    ip = ipaddress.ip_address(address)
    mask = struct.pack("!I", MAGIC_COOKIE) + (transaction if ip.version == 6 else b"")
    packed = bytes(a ^ b for a, b in zip(ip.packed, mask, strict=True))
    return struct.pack("!BBH", 0, FAMILY_CODES[ip.version], port ^ (MAGIC_COOKIE >> 16)) + packed


def parse_xor_address(value: bytes, transaction: bytes) -> tuple[str, int]:
    family, port = value[1], struct.unpack_from("!H", value, 2)[0] ^ (MAGIC_COOKIE >> 16)
    mask = struct.pack("!I", MAGIC_COOKIE) + (transaction if family == 0x02 else b"")
    raw = bytes(a ^ b for a, b in zip(value[4:], mask, strict=True))
    return str(ipaddress.ip_address(raw)), port


def long_term_key(username: str, realm: str, password: str) -> bytes:
    return hashlib.md5(f"{username}:{realm}:{password}".encode(), usedforsecurity=False).digest()


def rest_credentials(secret: str, ttl: int, user: str = "", now: float | None = None) -> tuple[str, str]:
    """TURN REST credentials (coturn `use-auth-secret`): username `EXPIRY[:USER]`, password
    base64(HMAC-SHA1(secret, username)). They stop working `ttl` seconds from `now`."""
    expiry = int(time.time() if now is None else now) + ttl
    username = f"{expiry}:{user}" if user else str(expiry)
    password = base64.b64encode(hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()).decode()
    return username, password


def config_options(text: str) -> Iterator[tuple[str, str]]:
    """(option, value) of a turnserver.conf, in order: `name=value`, `name value` or a bare flag."""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):  # coturn knows whole-line comments only
            continue
        # As coturn reads it: the name ends at the first blank or `=`, the value starts after the run of those.
        match = CONFIG_LINE.match(line)
        if match:
            yield match.group(1), match.group(2).strip().strip('"')


def static_auth_secret(config_text: str) -> str:
    secret = next((value for name, value in config_options(config_text) if name == "static-auth-secret"), "")
    if not secret:
        raise TurnError("the relay configuration has no static-auth-secret")
    return secret


# Options the relay must never run with, and why.
REFUSED_OPTIONS = {
    "no-auth": "allocations without credentials",
    "allow-loopback-peers": "relaying to the relay's own loopback services",
    "lt-cred-mech": "static long-term users instead of time-limited REST credentials",
}
REQUIRED_OPTIONS = ("use-auth-secret", "static-auth-secret", "realm", "cert", "pkey")
CONFIG_LINE = re.compile(r"^([^\s=]+)[\s=]*(.*)$")
HELP_OPTION = re.compile(r"^\s+(?:-\w, )?--([a-z0-9_-]+)", re.MULTILINE)


def known_options(help_text: str) -> set[str]:
    """Option names `turnserver -h` lists: 4.6.1 ignores any other with only a log line ("Bad configuration
    format"), so a misspelt or unsupported option would silently not apply."""
    return set(HELP_OPTION.findall(help_text))


def peer_range(text: str) -> tuple[int, int, int]:
    """A denied/allowed-peer-ip value, one address or `first-last`, as (IP version, first, last) integers
    (ValueError if it is neither)."""
    addresses = [ipaddress.ip_address(part.strip()) for part in text.split("-")]
    first, last = addresses[0], addresses[-1]
    if len(addresses) > 2 or first.version != last.version or int(first) > int(last):
        raise ValueError(f"{text!r} is not an address or a first-last range")
    return first.version, int(first), int(last)


def network_range(network: str) -> str:
    """A CIDR as coturn's `first-last` range (4.6.1 takes no prefix lengths), one address as itself."""
    net = ipaddress.ip_network(network, strict=False)
    first, last = net.network_address, net.broadcast_address
    return str(first) if first == last else f"{first}-{last}"


def check_config(text: str, known: set[str]) -> list[str]:
    """What is wrong with a turnserver.conf, each problem naming its line; the secret is never repeated."""
    problems, seen = [], set()
    for number, raw in enumerate(text.splitlines(), start=1):
        options = list(config_options(raw))
        if not options:
            continue
        name, value = options[0]
        seen.add(name)
        if name not in known:
            problems.append(f"line {number}: {name!r} is not an option of this turnserver (it would be ignored)")
        elif name in REFUSED_OPTIONS:
            problems.append(f"line {number}: {name!r} is refused: it allows {REFUSED_OPTIONS[name]}")
        elif name in ("denied-peer-ip", "allowed-peer-ip"):
            try:
                peer_range(value)
            except ValueError as exc:
                problems.append(f"line {number}: {name}: {exc}")
    problems += [f"{name!r} is missing" for name in REQUIRED_OPTIONS if name not in seen]
    return problems


def run_check_config(path: str) -> int:
    help_text = subprocess.run(["turnserver", "-h"], capture_output=True, text=True, check=False)
    with open(path, encoding="utf-8") as handle:
        problems = check_config(handle.read(), known_options(help_text.stdout + help_text.stderr))
    for problem in problems:
        print(f"{path}: {problem}", file=sys.stderr)
    return 1 if problems else 0


@dataclass
class Relay:
    """One control connection to a relay: STUN over UDP, TCP or TLS, with long-term authentication."""

    server: str
    port: int
    transport: str = "tls"
    ca_file: str = ""
    server_name: str = ""
    timeout: float = TIMEOUT
    sock: socket.socket = field(init=False)
    buffer: bytes = b""
    key: bytes | None = None
    auth: tuple[tuple[int, bytes], ...] = ()

    def __post_init__(self) -> None:
        family = socket.AF_INET6 if ipaddress.ip_address(self.server).version == 6 else socket.AF_INET
        if self.transport == "udp":
            self.sock = socket.socket(family, socket.SOCK_DGRAM)
            self.sock.settimeout(self.timeout)
            self.sock.connect((self.server, self.port))
            return
        raw = socket.create_connection((self.server, self.port), timeout=self.timeout)
        if self.transport == "tcp":
            self.sock = raw
            return
        context = ssl.create_default_context(cafile=self.ca_file or None)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.check_hostname = bool(self.server_name)
        if not self.ca_file:
            context.verify_mode = ssl.CERT_NONE
        try:
            self.sock = context.wrap_socket(raw, server_hostname=self.server_name or None)
        except (ssl.SSLError, OSError) as exc:
            raw.close()
            raise TurnError(f"TLS handshake with {self.server}:{self.port}: {exc}") from exc

    def close(self) -> None:
        self.sock.close()

    def tls_version(self) -> str:
        return (self.sock.version() or "") if isinstance(self.sock, ssl.SSLSocket) else ""

    def send(self, message: Message, sign: bool = True) -> None:
        self.sock.sendall(encode(message, self.key if sign else None))

    def receive(self) -> Message:
        if self.transport == "udp":
            return decode(self.sock.recv(65535))
        while True:
            if len(self.buffer) >= HEADER.size:
                size = HEADER.size + struct.unpack_from("!H", self.buffer, 2)[0]
                if len(self.buffer) >= size:
                    data, self.buffer = self.buffer[:size], self.buffer[size:]
                    return decode(data)
            chunk = self.sock.recv(65535)
            if not chunk:
                raise TurnError("the relay closed the connection")
            self.buffer += chunk

    def transact(
        self, method: int, attributes: tuple[tuple[int, bytes], ...] = (), transaction: bytes | None = None
    ) -> Message:
        """A request and its response (indications arriving in between are skipped). Give `transaction` when an
        attribute depends on it (an IPv6 XOR address)."""
        transaction = transaction or secrets.token_bytes(12)
        self.send(Message(method | REQUEST, transaction, attributes + self.auth))
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            response = self.receive()
            if response.transaction == transaction:
                return response
        raise TurnError(f"no response to method {method:#x}")

    def allocate(self, username: str, password: str, family: int = 4, lifetime: int = 600) -> Message:
        """Allocate a UDP relay; answers the 401 challenge with the credentials (long-term mechanism)."""
        request: tuple[tuple[int, bytes], ...] = (
            (REQUESTED_TRANSPORT, bytes([UDP_TRANSPORT, 0, 0, 0])),
            (LIFETIME, struct.pack("!I", lifetime)),
        )
        if family != 4:
            request += ((REQUESTED_ADDRESS_FAMILY, bytes([FAMILY_CODES[family], 0, 0, 0])),)
        challenge = self.transact(ALLOCATE, request)
        if challenge.kind != ERROR or challenge.error()[0] != 401:
            return challenge  # a relay that allocates without authentication answers here
        realm, nonce = challenge.get(REALM) or b"", challenge.get(NONCE) or b""
        self.key = long_term_key(username, realm.decode(), password)
        self.auth = ((USERNAME, username.encode()), (REALM, realm), (NONCE, nonce))
        return self.transact(ALLOCATE, request)

    def unauthenticated_allocate(self) -> Message:
        return self.transact(ALLOCATE, ((REQUESTED_TRANSPORT, bytes([UDP_TRANSPORT, 0, 0, 0])),))

    def create_permission(self, peer: str) -> Message:
        transaction = secrets.token_bytes(12)
        return self.transact(CREATE_PERMISSION, ((XOR_PEER_ADDRESS, xor_address(peer, 0, transaction)),), transaction)

    def send_to(self, peer: str, port: int, payload: bytes) -> None:
        """A Send indication: the relay forwards `payload` to the peer from the relayed address."""
        transaction = secrets.token_bytes(12)
        attributes = ((XOR_PEER_ADDRESS, xor_address(peer, port, transaction)), (DATA_ATTR, payload))
        self.send(Message(SEND | INDICATION, transaction, attributes), sign=False)

    def data_from_peer(self) -> tuple[str, int, bytes]:
        """The next Data indication: (peer address, port, payload)."""
        while True:
            message = self.receive()
            if message.type == DATA | INDICATION:
                address, port = parse_xor_address(message.get(XOR_PEER_ADDRESS) or b"", message.transaction)
                return address, port, message.get(DATA_ATTR) or b""

    def release(self) -> None:
        self.transact(REFRESH, ((LIFETIME, struct.pack("!I", 0)),))


def outcome(response: Message) -> dict[str, Any]:
    code, reason = response.error() if response.kind == ERROR else (0, "")
    return {"ok": response.kind == SUCCESS, "code": code, "reason": reason}


def exercise(request: Mapping[str, Any]) -> dict[str, Any]:
    """What the tests ask of a relay from a client: allocate, then one permission per peer, then optionally
    relay a payload to an echoing peer and read the echo back. Returns every outcome as data."""
    result: dict[str, Any] = {}
    relay: Relay | None = None
    try:
        relay = Relay(
            str(request["server"]),
            int(request["port"]),
            str(request.get("transport", "tls")),
            str(request.get("ca_file", "")),
            str(request.get("server_name", "")),
        )
        result["tls_version"] = relay.tls_version()
        allocation = relay.allocate(str(request["username"]), str(request["password"]), int(request.get("family", 4)))
        result["allocate"] = outcome(allocation)
        if not result["allocate"]["ok"]:
            return result
        relayed = allocation.get(XOR_RELAYED_ADDRESS)
        result["relayed"] = parse_xor_address(relayed, allocation.transaction)[0] if relayed else ""
        result["permissions"] = {peer: outcome(relay.create_permission(peer)) for peer in request.get("peers", [])}
        echo = request.get("echo")
        if echo:
            relay.send_to(str(echo["peer"]), int(echo["port"]), str(echo["payload"]).encode())
            address, port, payload = relay.data_from_peer()
            result["echo"] = {"from": f"{address}:{port}", "payload": payload.decode("utf-8", "replace")}
        relay.release()
    except (OSError, TurnError) as exc:
        result["error"] = f"{type(exc).__name__}: {exc}"
    finally:
        if relay is not None:
            relay.close()
    return result


def probe(server: str, port: int, ca_file: str, server_name: str, secret: str) -> dict[str, Any]:
    """The monitoring probe: over TLS with the site CA, an unauthenticated allocation is refused (401) and an
    authenticated one succeeds, then is released."""
    username, password = rest_credentials(secret, 300, "medinfra-probe")
    relay = Relay(server, port, "tls", ca_file, server_name)
    try:
        refused = relay.unauthenticated_allocate().error()[0] == 401
        allocation = relay.allocate(username, password)
        allocated = allocation.kind == SUCCESS
        if allocated:
            relay.release()
        return {"auth_required": refused, "allocated": allocated, "error": "" if allocated else allocation.error()[1]}
    finally:
        relay.close()


def sample(value: float) -> str:
    """A metric value in full (`1`, `0.25`, `1800000123`), never rounded to six digits."""
    number = float(value)
    return str(int(number)) if number.is_integer() else repr(number)


def write_textfile(path: str, metrics: Mapping[str, float], help_text: Mapping[str, str]) -> None:
    """Node exporter textfile: written beside the target, then renamed, so a scrape never reads half a file."""
    lines = []
    for name, value in metrics.items():
        lines += [f"# HELP {name} {help_text[name]}", f"# TYPE {name} gauge", f"{name} {sample(value)}"]
    directory = os.path.dirname(path) or "."
    descriptor, temporary = tempfile.mkstemp(dir=directory, prefix=".medinfra_turn.", suffix=".tmp")
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")
    os.chmod(temporary, 0o644)
    os.replace(temporary, path)


PROBE_HELP = {
    "medinfra_turn_allocation_success": "1 if an authenticated TURN allocation over TLS succeeded at the last probe",
    "medinfra_turn_auth_required": "1 if the relay refused an unauthenticated allocation (401) at the last probe",
    "medinfra_turn_probe_duration_seconds": "How long the last TURN probe took",
    "medinfra_turn_probe_timestamp_seconds": "When the last TURN probe ran",
}


def run_probe(arguments: argparse.Namespace) -> int:
    started = time.time()
    try:
        with open(arguments.config, encoding="utf-8") as handle:
            secret = static_auth_secret(handle.read())
        result = probe(arguments.server, arguments.port, arguments.ca_file, arguments.server_name, secret)
    except (OSError, TurnError) as exc:
        result = {"auth_required": False, "allocated": False, "error": f"{type(exc).__name__}: {exc}"}
    metrics = {
        "medinfra_turn_allocation_success": float(result["allocated"]),
        "medinfra_turn_auth_required": float(result["auth_required"]),
        "medinfra_turn_probe_duration_seconds": round(time.time() - started, 3),
        "medinfra_turn_probe_timestamp_seconds": round(started),
    }
    write_textfile(arguments.textfile, metrics, PROBE_HELP)
    print(json.dumps(result, sort_keys=True))
    return 0 if result["allocated"] and result["auth_required"] else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    probe_parser = commands.add_parser("probe", help="allocate over TLS and write node exporter metrics")
    probe_parser.add_argument("--server", required=True)
    probe_parser.add_argument("--port", type=int, default=5349)
    probe_parser.add_argument("--server-name", default="", help="the name the certificate must carry")
    probe_parser.add_argument("--ca-file", required=True)
    probe_parser.add_argument("--config", required=True, help="turnserver.conf (its static-auth-secret)")
    probe_parser.add_argument("--textfile", required=True, help="the .prom file to write")
    commands.add_parser("exercise", help="read a JSON request on stdin, print the outcomes as JSON")
    check_parser = commands.add_parser("check-config", help="validate a turnserver.conf before it is installed")
    check_parser.add_argument("path")
    arguments = parser.parse_args(argv)
    if arguments.command == "probe":
        return run_probe(arguments)
    if arguments.command == "check-config":
        return run_check_config(arguments.path)
    print(json.dumps(exercise(json.load(sys.stdin)), sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
