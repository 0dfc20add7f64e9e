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
import itertools
import json
import os
import re
import secrets
import selectors
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

MAGIC_COOKIE = 0x2112A442
HEADER = struct.Struct("!HHI12s")
FINGERPRINT_XOR = 0x5354554E
TIMEOUT = 5.0
# First retransmission timeout of a STUN request over UDP (RFC 5389 7.2.1).
UDP_RTO = 0.5

# Methods (all below 0x10, so a message type is method | class).
ALLOCATE, REFRESH, SEND, DATA, CREATE_PERMISSION, CHANNEL_BIND = 0x003, 0x004, 0x006, 0x007, 0x008, 0x009
REQUEST, INDICATION, SUCCESS, ERROR = 0x000, 0x010, 0x100, 0x110

# Attributes.
USERNAME, MESSAGE_INTEGRITY, ERROR_CODE, CHANNEL_NUMBER = 0x0006, 0x0008, 0x0009, 0x000C
LIFETIME, XOR_PEER_ADDRESS, DATA_ATTR = 0x000D, 0x0012, 0x0013
REALM, NONCE, XOR_RELAYED_ADDRESS = 0x0014, 0x0015, 0x0016
REQUESTED_ADDRESS_FAMILY, REQUESTED_TRANSPORT = 0x0017, 0x0019
XOR_MAPPED_ADDRESS, FINGERPRINT = 0x0020, 0x8028
UDP_TRANSPORT = 17
FAMILY_CODES = {4: 0x01, 6: 0x02}
# ChannelData (RFC 5766 11.4): a 4-byte header (channel number, length) instead of a 36-byte Send indication.
CHANNEL_HEADER = struct.Struct("!HH")
FIRST_CHANNEL, LAST_CHANNEL = 0x4000, 0x7FFE
STREAM_TRANSPORTS = ("tcp", "tls")


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


def channel_data(channel: int, payload: bytes, stream: bool) -> bytes:
    """A ChannelData frame; over TCP and TLS padded to a multiple of 4 (the length field counts the payload only)."""
    if not FIRST_CHANNEL <= channel <= LAST_CHANNEL:
        raise ValueError(f"channel {channel:#x} is outside {FIRST_CHANNEL:#x}-{LAST_CHANNEL:#x}")
    frame = CHANNEL_HEADER.pack(channel, len(payload)) + payload
    return padded(frame) if stream else frame


# A frame read from a relay: (0, a whole STUN message) or (channel number, ChannelData payload).
Frame = tuple[int, bytes]


def datagram_frame(data: bytes) -> Frame:
    """One UDP datagram as a frame: its first two bits tell STUN (00) from ChannelData (01)."""
    if data[:1] and data[0] >> 6 == 0b01:
        if len(data) < CHANNEL_HEADER.size:
            raise TurnError("short ChannelData")
        channel, length = CHANNEL_HEADER.unpack_from(data)
        if len(data) < CHANNEL_HEADER.size + length:
            raise TurnError(f"ChannelData on {channel:#x} says {length} bytes, has {len(data) - 4}")
        return channel, data[4 : 4 + length]
    return 0, data


def next_frame(buffer: bytes) -> tuple[Frame | None, bytes]:
    """The first whole frame of a TCP/TLS byte stream and the bytes after it, or None while it is incomplete.

    STUN messages (first two bits 00) are 20 bytes of header plus their length; ChannelData frames (01) are
    4 bytes plus their length, padded to a multiple of 4. Anything else means the stream lost its framing.
    """
    if len(buffer) < CHANNEL_HEADER.size:
        return None, buffer
    first, length = CHANNEL_HEADER.unpack_from(buffer)
    kind = first >> 14
    if kind == 0b00:
        size = HEADER.size + length
    elif kind == 0b01:
        size = CHANNEL_HEADER.size + length + (-length % 4)
    else:
        raise TurnError(f"the stream lost its framing: a frame starts with {first:#06x}")
    if len(buffer) < size:
        return None, buffer
    frame = (first, buffer[4 : 4 + length]) if kind == 0b01 else (0, buffer[:size])
    return frame, buffer[size:]


def split_stream(buffer: bytes) -> tuple[list[Frame], bytes]:
    """Every whole frame at the start of a TCP/TLS byte stream, and the bytes of the frame still incomplete."""
    frames: list[Frame] = []
    frame, buffer = next_frame(buffer)
    while frame is not None:
        frames.append(frame)
        frame, buffer = next_frame(buffer)
    return frames, buffer


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
    # When the socket was made (before the first packet: the UDP request or the TCP SYN), for the time to connect.
    created: float = field(init=False, default=0.0)

    def __post_init__(self) -> None:
        self.created = time.monotonic()
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

    @property
    def stream(self) -> bool:
        return self.transport in STREAM_TRANSPORTS

    def receive(self) -> Message:
        """The next STUN message; ChannelData arriving before it (media still in flight) is skipped."""
        while True:
            if not self.stream:
                channel, data = datagram_frame(self.sock.recv(65535))
                if channel == 0:
                    return decode(data)
                continue
            frame, self.buffer = next_frame(self.buffer)
            if frame is not None:
                if frame[0] == 0:
                    return decode(frame[1])
                continue
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
        request = Message(method | REQUEST, transaction, attributes + self.auth)
        self.send(request)
        started = time.monotonic()
        deadline = started + self.timeout
        # Over UDP the request or its response may be lost: send it again after 0.5 s, then 1 s, 2 s later... (RFC
        # 5389 7.2.1). The relay answers a repeated transaction as it did the first (RFC 5766 6.2).
        rto, resend = UDP_RTO, started + UDP_RTO
        try:
            while (now := time.monotonic()) < deadline:
                if not self.stream:
                    if now >= resend:
                        self.send(request)
                        rto *= 2
                        resend = now + rto
                    self.sock.settimeout(max(0.001, min(resend, deadline) - now))
                try:
                    response = self.receive()
                except TimeoutError:
                    if self.stream:
                        raise
                    continue
                if response.transaction == transaction:
                    return response
        finally:
            if not self.stream:
                self.sock.settimeout(self.timeout)
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

    def channel_bind(self, channel: int, peer: str, port: int) -> Message:
        """Bind a channel number to peer:port (it also installs the permission): media then goes as ChannelData."""
        transaction = secrets.token_bytes(12)
        attributes = ((CHANNEL_NUMBER, struct.pack("!HH", channel, 0)),
                      (XOR_PEER_ADDRESS, xor_address(peer, port, transaction)))
        return self.transact(CHANNEL_BIND, attributes, transaction)

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


# --- Media quality: RTP-sized packets through the relay to an echoing peer and back, many sessions at once ---

# Each media packet starts with its sequence number and its send time (this process's monotonic clock), so an echo
# that returns the same bytes tells its own round trip.
MEDIA_HEADER = struct.Struct("!Id")
GRACE_SECONDS = 1.0
# A session is held to the end when an echo of a packet sent in the last second of sending came back.
HELD_WINDOW_SECONDS = 1.0


def media_packet(sequence: int, sent: float, size: int) -> bytes:
    return MEDIA_HEADER.pack(sequence, sent) + b"\0" * max(size - MEDIA_HEADER.size, 0)


def percentile(values: Sequence[float], percent: int) -> float | None:
    """Nearest-rank percentile (the smallest value with at least `percent` % of the values at or below it, always
    one of the values); None for no values. Integer arithmetic, so 95 % of 20 values is the 19th, not the 20th."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(-(-percent * len(ordered) // 100), 1)
    return ordered[rank - 1]


def interarrival_jitter(transits: Sequence[float]) -> float | None:
    """RFC 3550 6.4.1 interarrival jitter from transit times in arrival order: J += (|D| - J) / 16, D the difference
    of consecutive transits. With an echo both ends are this clock, so the transit is the round trip."""
    if not transits:
        return None
    jitter = 0.0
    for before, after in itertools.pairwise(transits):
        jitter += (abs(after - before) - jitter) / 16
    return jitter


def loss_ratio(sent: int, echoed: int) -> float | None:
    """Packets never echoed over packets sent (duplicates are not counted twice); None when nothing was sent."""
    return None if sent <= 0 else (sent - echoed) / sent


@dataclass(frozen=True)
class SessionSpec:
    """One media session: which relay port, over what, as whom, to which echoing peer."""

    relay: str
    server: str
    port: int
    transport: str
    server_name: str
    ca_file: str
    username: str
    password: str
    peer: str
    peer_port: int


@dataclass
class Session:
    """One session's state and outcome. `rtts` are the round trips of the echoes in arrival order."""

    spec: SessionSpec
    relay: Relay | None = None
    allocated: bool = False
    ready: bool = False  # allocated, permission and channel bound
    code: int = 0  # the error code of the request the relay refused
    error: str = ""
    connect_seconds: float | None = None
    sent: int = 0
    send_dropped: int = 0
    last_sequence: int = -1
    rtts: list[float] = field(default_factory=list)
    echoed: set[int] = field(default_factory=set)
    outbox: bytes = b""
    waits_to_write: bool = False  # registered for EVENT_WRITE (while the outbox holds bytes)
    next_send: float = 0.0

    @property
    def connection(self) -> Relay:
        """The session's connection to the relay (TurnError before one was made)."""
        if self.relay is None:
            raise TurnError("the session has no connection to the relay")
        return self.relay

    def summary(self, packets: int, rate: int) -> dict[str, Any]:
        held_from = packets - max(round(HELD_WINDOW_SECONDS * rate), 1)
        return {
            "relay": self.spec.relay, "transport": self.spec.transport, "port": self.spec.port,
            "allocated": self.allocated, "ready": self.ready, "code": self.code, "error": self.error,
            "connect_seconds": self.connect_seconds, "sent": self.sent, "send_dropped": self.send_dropped,
            "echoed": len(self.echoed), "loss_ratio": loss_ratio(self.sent, len(self.echoed)),
            "rtt_p50": percentile(self.rtts, 50), "rtt_p95": percentile(self.rtts, 95),
            "jitter": interarrival_jitter(self.rtts),
            "held": self.ready and not self.error and any(s >= held_from for s in self.echoed),
        }


def failure(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}"


def open_session(session: Session, channel: int) -> None:
    """Connect, allocate (answering the 401), permit the peer and bind a channel to it; failures are recorded."""
    spec = session.spec
    try:
        session.relay = Relay(spec.server, spec.port, spec.transport, spec.ca_file, spec.server_name)
        allocation = session.relay.allocate(spec.username, spec.password)
        if allocation.kind != SUCCESS:
            session.code, session.error = allocation.error()
            return
        session.allocated = True
        session.connect_seconds = time.monotonic() - session.relay.created
        for step, response in (("CreatePermission", session.relay.create_permission(spec.peer)),
                               ("ChannelBind", session.relay.channel_bind(channel, spec.peer, spec.peer_port))):
            if response.kind != SUCCESS:
                session.code, reason = response.error()
                session.error = f"{step}: {reason}"
                return
        session.ready = True
    except (OSError, TurnError) as exc:
        session.error = failure(exc)


def read_frames(session: Session) -> list[Frame]:
    """Everything readable now on a non-blocking relay socket, as frames; raises TurnError when it closed."""
    relay = session.connection
    frames: list[Frame] = []
    while True:
        try:
            chunk = relay.sock.recv(65535)
        except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
            return frames
        if relay.stream:
            if not chunk:
                raise TurnError("the relay closed the connection")
            found, relay.buffer = split_stream(relay.buffer + chunk)
            frames += found
        else:
            frames.append(datagram_frame(chunk))


def flush(session: Session) -> None:
    """Send what fits of a stream session's queued frames (a TLS write is retried with the same bytes)."""
    relay = session.connection
    while session.outbox:
        try:
            written = relay.sock.send(session.outbox[:16384])
        except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
            return
        session.outbox = session.outbox[written:]


def send_media(session: Session, channel: int, size: int) -> None:
    relay = session.connection
    session.last_sequence += 1
    frame = channel_data(channel, media_packet(session.last_sequence, time.monotonic(), size), relay.stream)
    session.sent += 1
    if relay.stream:
        session.outbox += frame
        flush(session)
        return
    try:
        relay.sock.send(frame)
    except (BlockingIOError, InterruptedError):
        session.send_dropped += 1  # the socket buffer is full: lost on this side, counted as sent and lost


def receive_media(session: Session, channel: int, arrived: float) -> None:
    for number, payload in read_frames(session):
        if number != channel or len(payload) < MEDIA_HEADER.size:
            continue  # a late STUN response or someone else's bytes
        sequence, sent = MEDIA_HEADER.unpack_from(payload)
        if sequence not in session.echoed and sequence <= session.last_sequence:
            session.echoed.add(sequence)
            session.rtts.append(arrived - sent)


def stream_media(sessions: Sequence[Session], channel: int, seconds: float, rate: int, size: int,
                 grace: float = GRACE_SECONDS) -> None:
    """Every ready session sends `seconds * rate` packets at `rate` a second, their starts spread over one interval,
    all multiplexed in this thread with `selectors`; echoes are read until `grace` seconds after the last send."""
    ready = [s for s in sessions if s.ready and s.relay is not None]
    packets = round(seconds * rate)
    interval = 1.0 / rate
    selector = selectors.DefaultSelector()
    start = time.monotonic() + 0.01
    for number, session in enumerate(ready):
        session.connection.sock.setblocking(False)
        session.next_send = start + interval * number / max(len(ready), 1)
        selector.register(session.connection.sock, selectors.EVENT_READ, session)
    end = start + packets * interval + grace
    try:
        while (now := time.monotonic()) < end:
            sending = [s for s in ready if s.sent < packets and not s.error]
            for session in sending:
                if session.next_send <= now:
                    try:
                        send_media(session, channel, size)
                    except (OSError, TurnError) as exc:
                        session.error = failure(exc)
                        selector.unregister(session.connection.sock)
                    session.next_send += interval
            if not sending and all(len(s.echoed) == s.sent for s in ready if not s.error):
                break  # every echo is back: no need to wait out the grace period
            for session in ready:  # wait for writability only while a stream session has bytes queued
                if not session.error and session.waits_to_write != bool(session.outbox):
                    session.waits_to_write = bool(session.outbox)
                    events = selectors.EVENT_READ | (selectors.EVENT_WRITE if session.outbox else 0)
                    selector.modify(session.connection.sock, events, session)
            due = min((s.next_send for s in sending), default=end)
            for key, events in selector.select(max(min(due, end) - time.monotonic(), 0)):
                session = key.data
                try:
                    if events & selectors.EVENT_WRITE:
                        flush(session)
                    if events & selectors.EVENT_READ:
                        receive_media(session, channel, time.monotonic())
                except (OSError, TurnError) as exc:
                    session.error = failure(exc)
                    selector.unregister(key.fileobj)
    finally:
        selector.close()


# Releasing is best effort (the relay frees an allocation at its lifetime's end anyway): a short wait for each.
RELEASE_TIMEOUT = 1.0


def close_session(session: Session) -> None:
    """Finish sending a stream's queued media (a STUN request after half a ChannelData frame would break the
    stream's framing), release the allocation and close."""
    if session.relay is None:
        return
    try:
        if session.allocated and not session.error:
            session.relay.sock.settimeout(RELEASE_TIMEOUT)
            session.relay.sock.sendall(session.outbox)
            session.outbox = b""
            session.relay.timeout = RELEASE_TIMEOUT
            session.relay.release()
    except (OSError, TurnError):
        pass
    finally:
        session.relay.close()


def run_sessions(specs: Sequence[SessionSpec], seconds: float, rate: int, size: int) -> dict[str, Any]:
    """Open every session one after the other (the allocation phase), stream media on all of them at once,
    release them. Returns the allocation phase's figures, each session's summary and the summary per transport."""
    sessions = [Session(spec) for spec in specs]
    phase_started, wall_started = time.monotonic(), time.time()
    # Relay ports that gave no answer at all, not a refusal: every later session to the same port and transport would
    # wait out the same timeout. Other ports are still tried (UDP blocked, TLS on 443 let through).
    unreachable: dict[tuple[str, int, str], str] = {}
    for number, session in enumerate(sessions, start=1):
        endpoint = (session.spec.server, session.spec.port, session.spec.transport)
        if endpoint in unreachable:
            session.error = f"not tried: {unreachable[endpoint]}"
            continue
        open_session(session, FIRST_CHANNEL)
        if not session.allocated and not session.code:
            spec = session.spec
            unreachable[endpoint] = f"session {number} could not reach {spec.server}:{spec.port} over {spec.transport}"
    phase_seconds = time.monotonic() - phase_started
    media_started, cpu_started = time.monotonic(), time.process_time()
    stream_media(sessions, FIRST_CHANNEL, seconds, rate, size)
    media_ended = time.time()
    # This client's own CPU while streaming: near 100 % means the figures measure the client, not the relay.
    media_seconds = time.monotonic() - media_started
    media_cpu_percent = 100 * (time.process_time() - cpu_started) / media_seconds if media_seconds >= 1 else None
    for session in sessions:
        close_session(session)
    packets = round(seconds * rate)
    allocated = sum(s.allocated for s in sessions)
    return {
        "started": wall_started, "media_ended": media_ended,
        "allocation_phase_seconds": phase_seconds,
        "allocations_per_second": allocated / phase_seconds if phase_seconds > 0 else None,
        "client_cpu_percent": media_cpu_percent,
        "sessions": [s.summary(packets, rate) for s in sessions],
        "transports": transport_summaries(sessions),
    }


def transport_summaries(sessions: Sequence[Session]) -> dict[str, dict[str, Any]]:
    """Per transport: RTT percentiles over every echo of its sessions, the mean of their jitters, and the loss
    over all their packets (jitter is per stream: interleaved sessions' arrivals are not one stream)."""
    summaries: dict[str, dict[str, Any]] = {}
    for transport in sorted({s.spec.transport for s in sessions}):
        mine = [s for s in sessions if s.spec.transport == transport]
        rtts = [rtt for s in mine for rtt in s.rtts]
        jitters = [j for s in mine if (j := interarrival_jitter(s.rtts)) is not None]
        connects = [s.connect_seconds for s in mine if s.connect_seconds is not None]
        summaries[transport] = {
            "sessions": len(mine), "allocated": sum(s.allocated for s in mine), "ready": sum(s.ready for s in mine),
            "sent": sum(s.sent for s in mine), "echoed": sum(len(s.echoed) for s in mine),
            "loss_ratio": loss_ratio(sum(s.sent for s in mine), sum(len(s.echoed) for s in mine)),
            "rtt_p50": percentile(rtts, 50), "rtt_p95": percentile(rtts, 95),
            "jitter": sum(jitters) / len(jitters) if jitters else None,
            "connect_p50": percentile(connects, 50), "connect_p95": percentile(connects, 95),
        }
    return summaries


# --- The vantage host's media probe: its configuration (written by a role, read through LoadCredential) ---

TRANSPORTS = ("udp", "tcp", "tls")
MEDIA_LIMITS = {"seconds": (1, 60), "rate": (1, 500), "size": (MEDIA_HEADER.size, 1400)}
MEDIA_DEFAULTS = {"seconds": 3, "rate": 50, "size": 1000}


class ConfigError(ValueError):
    """A media probe configuration that cannot be used; the message names the key and never a password."""


def config_value(document: Mapping[str, Any], key: str, kind: type, where: str) -> Any:
    value = document.get(key)
    if value is None:
        raise ConfigError(f"{where}{key}: missing")
    if not isinstance(value, kind) or isinstance(value, bool):
        raise ConfigError(f"{where}{key}: must be {kind.__name__}, not {type(value).__name__}")
    if isinstance(value, str) and not value:
        raise ConfigError(f"{where}{key}: empty")
    return value


def config_address(document: Mapping[str, Any], key: str, where: str) -> str:
    value = config_value(document, key, str, where)
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        raise ConfigError(f"{where}{key}: {value[:60]!r} is not an IP address") from None


def config_port(document: Mapping[str, Any], key: str, where: str) -> int:
    value = config_value(document, key, int, where)
    if not 0 < value < 65536:
        raise ConfigError(f"{where}{key}: {value} is not a port number")
    return int(value)


def credentials_expiry(username: str) -> int:
    """The EXPIRY of a TURN REST username `EXPIRY[:USER]` (ConfigError when it has none)."""
    expiry = username.split(":", 1)[0]
    if not expiry.isdigit():
        raise ConfigError("username: must be TURN REST credentials, EXPIRY:NAME (EXPIRY in Unix seconds)")
    return int(expiry)


def media_specs(config: Any) -> tuple[list[SessionSpec], dict[str, int]]:
    """The sessions a media probe configuration asks for (one per relay port) and its seconds, rate and size.
    ConfigError names the first wrong key by its path (`relays[0].transports[1].port: ...`)."""
    if not isinstance(config, Mapping):
        raise ConfigError("the configuration must be a JSON object")
    relays = config_value(config, "relays", list, "")
    if not relays:
        raise ConfigError("relays: empty")
    username = config_value(config, "username", str, "")
    credentials_expiry(username)
    password = config_value(config, "password", str, "")
    ca_file = str(config.get("ca_file") or "")
    peer = config_value(config, "peer", dict, "")
    peer_address, peer_port = config_address(peer, "address", "peer."), config_port(peer, "port", "peer.")
    figures = {}
    for key, (low, high) in MEDIA_LIMITS.items():
        value = config.get(key, MEDIA_DEFAULTS[key])
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
            raise ConfigError(f"{key}: {str(value)[:20]!r} is not a whole number from {low} to {high}")
        figures[key] = value
    specs = []
    for number, relay in enumerate(relays):
        where = f"relays[{number}]."
        if not isinstance(relay, Mapping):
            raise ConfigError(f"relays[{number}]: must be an object")
        name = config_value(relay, "name", str, where)
        address = config_address(relay, "address", where)
        server_name = str(relay.get("server_name") or "")
        transports = config_value(relay, "transports", list, where)
        if not transports:
            raise ConfigError(f"{where}transports: empty")
        for index, entry in enumerate(transports):
            inner = f"{where}transports[{index}]."
            if not isinstance(entry, Mapping):
                raise ConfigError(f"{where}transports[{index}]: must be an object")
            transport = config_value(entry, "transport", str, inner)
            if transport not in TRANSPORTS:
                raise ConfigError(f"{inner}transport: {transport[:20]!r} is not one of {', '.join(TRANSPORTS)}")
            if transport == "tls" and not ca_file:
                raise ConfigError(f"ca_file: missing (needed to verify {where}transports[{index}], TLS)")
            port = config_port(entry, "port", inner)
            specs.append(SessionSpec(name, address, port, transport, server_name, ca_file, username, password,
                                     peer_address, peer_port))
    return specs, figures


def media_probe(config: Any) -> dict[str, Any]:
    """The media probe: one session per relay port, all at once. ConfigError for a wrong configuration."""
    specs, figures = media_specs(config)
    result = run_sessions(specs, figures["seconds"], figures["rate"], figures["size"])
    result["credentials_expiry"] = credentials_expiry(specs[0].username)
    return result


def media_exercise(request: Mapping[str, Any]) -> dict[str, Any]:
    """`media_probe` for tests and the loadtest (the request arrives on stdin): a wrong request is an error entry."""
    try:
        return media_probe(request)
    except ConfigError as exc:
        return {"error": f"configuration: {exc}"}


def load_exercise(request: Mapping[str, Any]) -> dict[str, Any]:
    """`medinfra turn loadtest` on the vantage host: a media probe configuration with one relay port and, instead of
    username and password, `credentials`: one [username, password] per session (the same pair N times for one
    user)."""
    credentials = request.get("credentials")
    if not isinstance(credentials, list) or not credentials or not all(
            isinstance(pair, list) and len(pair) == 2 for pair in credentials):
        return {"error": "configuration: credentials: must be a non-empty list of [username, password]"}
    try:
        specs, figures = media_specs({**request, "username": credentials[0][0], "password": credentials[0][1]})
        if len(specs) != 1:
            raise ConfigError(f"relays: a loadtest runs against one relay port, not {len(specs)}")
        sessions = [replace(specs[0], username=str(username), password=str(password))
                    for username, password in credentials]
    except ConfigError as exc:
        return {"error": f"configuration: {exc}"}
    return run_sessions(sessions, figures["seconds"], figures["rate"], figures["size"])


MEDIA_HELP = {
    "medinfra_rtc_probe_success": "1 if the last media probe allocated on this relay port and got an echo back",
    "medinfra_rtc_connect_seconds": "From the first packet (UDP request or TCP SYN) to the Allocate success response",
    "medinfra_rtc_rtt_seconds": "Round trip of media packets through the relay to the echoing peer and back",
    "medinfra_rtc_jitter_seconds": "RFC 3550 interarrival jitter of the echoes",
    "medinfra_rtc_loss_ratio": "Media packets never echoed over packets sent",
    "medinfra_rtc_packets_sent": "Media packets sent at the last probe",
    "medinfra_rtc_probe_timestamp_seconds": "When the last media probe ran",
    "medinfra_rtc_probe_credentials_expiry_timestamp_seconds": "When the media probe's TURN credentials expire",
}


def label_value(value: Any) -> str:
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def label_text(labels: Mapping[str, Any]) -> str:
    return "{" + ",".join(f'{key}="{label_value(value)}"' for key, value in labels.items()) + "}"


def media_metrics(sessions: Sequence[Mapping[str, Any]], started: float, expiry: int) -> dict[str, float]:
    """The probe's series (`name{labels}` to value). A session that allocated nothing or got no echo has success 0
    and no RTT, jitter or loss series: an absent series, never a made-up value."""
    metrics: dict[str, float] = {}
    for session in sessions:
        labels = {"relay": session["relay"], "transport": session["transport"], "port": session["port"]}
        tag = label_text(labels)
        succeeded = bool(session["allocated"]) and session["echoed"] > 0
        metrics[f"medinfra_rtc_probe_success{tag}"] = float(succeeded)
        if session["connect_seconds"] is not None:
            metrics[f"medinfra_rtc_connect_seconds{tag}"] = round(session["connect_seconds"], 6)
        metrics[f"medinfra_rtc_packets_sent{tag}"] = session["sent"]
        if succeeded:
            for quantile, key in (("0.5", "rtt_p50"), ("0.95", "rtt_p95")):
                metrics[f"medinfra_rtc_rtt_seconds{label_text({**labels, 'quantile': quantile})}"] = round(
                    session[key], 6)
            metrics[f"medinfra_rtc_jitter_seconds{tag}"] = round(session["jitter"], 6)
            metrics[f"medinfra_rtc_loss_ratio{tag}"] = round(session["loss_ratio"], 6)
    metrics["medinfra_rtc_probe_timestamp_seconds"] = round(started)
    metrics["medinfra_rtc_probe_credentials_expiry_timestamp_seconds"] = expiry
    return metrics


def run_media(arguments: argparse.Namespace) -> int:
    started = time.time()
    try:
        with open(arguments.config, encoding="utf-8") as handle:
            config = json.load(handle)
        result = media_probe(config)
    except (OSError, ValueError) as exc:  # ConfigError and JSONDecodeError are ValueErrors
        print(f"medinfra-turn-probe media: {arguments.config}: {exc}", file=sys.stderr)
        return 2
    sessions = result["sessions"]
    write_textfile(arguments.textfile, media_metrics(sessions, started, result["credentials_expiry"]), MEDIA_HELP)
    print(json.dumps(result, sort_keys=True))
    return 0 if all(s["allocated"] and s["echoed"] for s in sessions) else 1


# --- The relay's own cost under load: coturn's CPU time and memory from /proc ---

def proc_usage(stat: str, status: str) -> tuple[int, int]:
    """(user + system CPU ticks, resident KiB) of a process from its /proc/PID/stat and /proc/PID/status."""
    fields = stat.rpartition(")")[2].split()  # after the command name, which may hold blanks and parentheses
    ticks = int(fields[11]) + int(fields[12])  # utime and stime, fields 14 and 15 of stat
    rss = next((int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:")), 0)
    return ticks, rss


def relay_usage(seconds: float, interval: float = 0.5, command: str = "turnserver") -> dict[str, Any]:
    """Samples of [wall time, CPU seconds, resident KiB] summed over the relay's processes, every `interval`
    seconds for `seconds`."""
    ticks_per_second = os.sysconf("SC_CLK_TCK")
    pids = []
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{entry}/comm", encoding="utf-8") as handle:
                if handle.read().strip() == command:
                    pids.append(entry)
        except OSError:  # the process ended meanwhile
            continue
    if not pids:
        return {"error": f"no {command} process", "samples": []}
    samples = []
    deadline = time.monotonic() + seconds
    while True:
        cpu, rss = 0, 0
        for pid in pids:
            try:
                with open(f"/proc/{pid}/stat", encoding="utf-8") as stat, \
                        open(f"/proc/{pid}/status", encoding="utf-8") as status:
                    ticks, resident = proc_usage(stat.read(), status.read())
            except OSError:
                continue
            cpu, rss = cpu + ticks, rss + resident
        samples.append([time.time(), cpu / ticks_per_second, rss])
        if time.monotonic() >= deadline:
            return {"pids": [int(p) for p in pids], "samples": samples}
        time.sleep(interval)


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


def textfile_lines(metrics: Mapping[str, float], help_text: Mapping[str, str]) -> list[str]:
    """Node exporter text format: every series (`name` or `name{labels}`) after its metric's HELP and TYPE, the
    series of one metric together in the order first seen."""
    grouped: dict[str, list[str]] = {}
    for series, value in metrics.items():
        grouped.setdefault(series.partition("{")[0], []).append(f"{series} {sample(value)}")
    lines = []
    for name, samples in grouped.items():
        lines += [f"# HELP {name} {help_text[name]}", f"# TYPE {name} gauge", *samples]
    return lines


def write_textfile(path: str, metrics: Mapping[str, float], help_text: Mapping[str, str]) -> None:
    """Node exporter textfile: written beside the target, then renamed, so a scrape never reads half a file."""
    directory = os.path.dirname(path) or "."
    descriptor, temporary = tempfile.mkstemp(dir=directory, prefix=".medinfra_turn.", suffix=".tmp")
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write("\n".join(textfile_lines(metrics, help_text)) + "\n")
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
    media_parser = commands.add_parser("media", help="measure RTT, jitter and loss through every relay port; "
                                       "write node exporter metrics")
    media_parser.add_argument("--config", required=True, help="the probe's JSON configuration (holds credentials)")
    media_parser.add_argument("--textfile", required=True, help="the .prom file to write")
    commands.add_parser("media-exercise", help="read a media probe configuration on stdin, print the results")
    check_parser = commands.add_parser("check-config", help="validate a turnserver.conf before it is installed")
    check_parser.add_argument("path")
    arguments = parser.parse_args(argv)
    if arguments.command == "probe":
        return run_probe(arguments)
    if arguments.command == "check-config":
        return run_check_config(arguments.path)
    if arguments.command == "media":
        return run_media(arguments)
    if arguments.command == "media-exercise":
        print(json.dumps(media_exercise(json.load(sys.stdin)), sort_keys=True))
        return 0
    print(json.dumps(exercise(json.load(sys.stdin)), sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
