#!/usr/bin/python3
"""Clinical interface probes that speak each interface's own protocol, their exporter, and the lab's HL7 listener.

Standard library only: the monitoring server runs this file as the sandboxed probe exporter (`exporter`), an operator
runs one probe by hand (`probe`), and the lab's HIS stand-in runs it as its HL7 v2 MLLP listener (`mllp-standin`).

- hl7v2-mllp: a test message (processing id T) whose ACK must be `MSA|AA` (or CA) for the same control id.
- dicom: a C-ECHO of its own (PS3.8 association, PS3.7 Verification), with the declared AE titles.
- fhir: `GET [base]/metadata` must be a CapabilityStatement of the declared FHIR version.
- https: a GET answered 2xx or 3xx.  sftp: an SSH-2.0 banner.

Every TLS connection is verified against the site CA for the interface's server name. Secrets never travel on command
lines: the exporter's certificate, key and basic-auth password come from $CREDENTIALS_DIRECTORY (systemd
LoadCredential=).
"""

from __future__ import annotations

import argparse
import base64
import binascii
import hmac
import http.client
import json
import os
import secrets
import socket
import socketserver
import ssl
import struct
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

PROTOCOLS = ("hl7v2-mllp", "dicom", "fhir", "https", "sftp")
# medinfra_interface_result's values (the metric contract the alert rules and the audit read).
RESULTS = (
    "ok",
    "connect_failed",
    "tls_failed",
    "timeout",
    "ack_negative",
    "ack_missing",
    "association_rejected",
    "echo_failed",
    "http_status",
    "fhir_version",
    "protocol_error",
)
MLLP_PORT = 2575
EXPORTER_PORT = 9129
# Bounds on what a peer may make us read: an ACK or a CapabilityStatement is far smaller.
MAX_MESSAGE_BYTES = 1 << 20
# How long the stand-in waits for the next message on an idle connection before it closes it.
STANDIN_IDLE_SECONDS = 60.0
STANDIN_MAX_CONNECTIONS = 64
MLLP_START, MLLP_END = b"\x0b", b"\x1c\x0d"
HL7_ENCODING = "^~\\&"


class ConfigError(Exception):
    """The probe configuration (or a credential) is missing or invalid; the message names the file and the fault."""


class ProbeFailure(Exception):
    """A probe ended without the answer it needs: `result` is one of RESULTS, the message says why."""

    def __init__(self, result: str, detail: str, latency: float | None = None) -> None:
        if result not in RESULTS:
            raise ValueError(f"{result!r} is not a result of the metric contract")
        super().__init__(detail)
        self.result = result
        self.latency = latency


@dataclass(frozen=True)
class Interface:
    name: str
    protocol: str
    host: str
    server_name: str
    port: int
    tls: bool
    identity: Mapping[str, str]
    timeout_seconds: float
    latency_budget_seconds: float


@dataclass(frozen=True)
class Config:
    ca_file: str
    interfaces: Mapping[str, Interface]


@dataclass(frozen=True)
class Outcome:
    interface: str
    result: str
    latency_seconds: float | None
    detail: str

    @property
    def up(self) -> bool:
        return self.result == "ok"

    def as_dict(self) -> dict[str, Any]:
        return {
            "interface": self.interface,
            "up": self.up,
            "result": self.result,
            "latency_seconds": self.latency_seconds,
            "detail": self.detail,
        }


# ---------------------------------------------------------------- configuration

# The identity keys each protocol's probe needs (the topology schema requires the same).
IDENTITY_KEYS = {
    "hl7v2-mllp": ("sending_application", "sending_facility", "receiving_application", "receiving_facility"),
    "dicom": ("calling_ae", "called_ae"),
    "fhir": ("base_path", "fhir_version"),
    "https": (),
    "sftp": (),
}


def number(value: object, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise ConfigError(f"{where}: must be a positive number, not {value!r}")
    return float(value)


def text(value: object, where: str) -> str:
    if not isinstance(value, str) or not value or any(c in value for c in "\r\n\0"):
        raise ConfigError(f"{where}: must be a non-empty single-line string, not {value!r}")
    return value


def parse_interface(name: str, raw: object, where: str) -> Interface:
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: must be an object")
    protocol = raw.get("protocol")
    if protocol not in PROTOCOLS:
        raise ConfigError(f"{where}.protocol: must be one of {', '.join(PROTOCOLS)}, not {protocol!r}")
    port = raw.get("port")
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise ConfigError(f"{where}.port: must be an integer from 1 to 65535, not {port!r}")
    tls = raw.get("tls", False)
    if not isinstance(tls, bool):
        raise ConfigError(f"{where}.tls: must be true or false, not {tls!r}")
    identity = raw.get("identity", {})
    if not isinstance(identity, dict):
        raise ConfigError(f"{where}.identity: must be an object")
    for key in IDENTITY_KEYS[protocol]:
        text(identity.get(key), f"{where}.identity.{key}")
    for key in ("calling_ae", "called_ae"):
        if key in identity and len(identity[key]) > 16:
            raise ConfigError(f"{where}.identity.{key}: an AE title has at most 16 characters")
    for key in ("base_path", "path"):
        if key in identity and not text(identity[key], f"{where}.identity.{key}").startswith("/"):
            raise ConfigError(f"{where}.identity.{key}: must start with /")
    host = text(raw.get("host"), f"{where}.host")
    return Interface(
        name=name,
        protocol=protocol,
        host=host,
        server_name=text(raw.get("server_name", host), f"{where}.server_name"),
        port=port,
        tls=tls and protocol != "sftp",  # SSH has its own transport security
        identity={key: str(value) for key, value in identity.items()},
        timeout_seconds=number(raw.get("timeout_seconds", 5), f"{where}.timeout_seconds"),
        latency_budget_seconds=number(raw.get("latency_budget_seconds", 1), f"{where}.latency_budget_seconds"),
    )


def load_config(path: str) -> Config:
    try:
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path}: is not JSON ({exc})") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("interfaces"), dict):
        raise ConfigError(f"{path}: must be an object with an `interfaces` object")
    entries: dict[str, object] = raw["interfaces"]
    interfaces = {name: parse_interface(name, entry, f"{path}: interfaces.{name}") for name, entry in entries.items()}
    ca_file = raw.get("ca_file", "")
    needs_ca = any(interface.tls for interface in interfaces.values())
    if needs_ca and (not isinstance(ca_file, str) or not os.path.isfile(ca_file)):
        raise ConfigError(f"{path}: ca_file: {ca_file!r} is not a readable file (TLS interfaces need the site CA)")
    return Config(ca_file=ca_file if isinstance(ca_file, str) else "", interfaces=interfaces)


def credentials_directory() -> Path:
    directory = os.environ.get("CREDENTIALS_DIRECTORY", "")
    if not directory or not os.path.isdir(directory):
        raise ConfigError("$CREDENTIALS_DIRECTORY is not set or not a directory (systemd LoadCredential= provides it)")
    return Path(directory)


# ---------------------------------------------------------------- connections


def remaining(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError("deadline passed")
    return left


def client_context(ca_file: str, certificate: tuple[Path, Path] | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=ca_file)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if certificate is not None:
        context.load_cert_chain(str(certificate[0]), str(certificate[1]))
    return context


def connect(interface: Interface, ca_file: str, deadline: float, client_certificate: bool = False) -> socket.socket:
    """A connected socket (TLS verified for the server name when the interface uses TLS), Nagle off: small protocol
    messages otherwise wait for delayed ACKs (~100 ms a round trip with DICOM)."""
    try:
        sock = socket.create_connection((interface.host, interface.port), timeout=remaining(deadline))
    except TimeoutError:
        raise ProbeFailure("timeout", f"no TCP connection to {interface.host}:{interface.port} in time") from None
    except OSError as exc:
        raise ProbeFailure("connect_failed", f"{interface.host}:{interface.port}: {exc.strerror or exc}") from None
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if not interface.tls:
        return sock
    try:
        certificate = client_certificate_files() if client_certificate else None
        context = client_context(ca_file, certificate)
        sock.settimeout(remaining(deadline))
        return context.wrap_socket(sock, server_hostname=interface.server_name)
    except TimeoutError:
        sock.close()
        raise ProbeFailure("timeout", "no TLS handshake in time") from None
    except ssl.SSLError as exc:  # certificate verification and host name failures included
        sock.close()
        raise ProbeFailure("tls_failed", f"TLS with {interface.server_name}: {exc}") from None
    except OSError as exc:
        sock.close()
        raise ProbeFailure("tls_failed", f"TLS with {interface.server_name}: {exc.strerror or exc}") from None


def client_certificate_files() -> tuple[Path, Path] | None:
    """The DICOM client certificate from the service's credentials, when it has one."""
    directory = os.environ.get("CREDENTIALS_DIRECTORY", "")
    if not directory:
        return None
    certificate, key = Path(directory, "client.crt"), Path(directory, "client.key")
    return (certificate, key) if certificate.is_file() and key.is_file() else None


def receive(sock: socket.socket, deadline: float, size: int = 65536) -> bytes:
    sock.settimeout(remaining(deadline))
    # Acknowledge at once (Linux resets this after each read): a peer that writes one answer in two pieces with
    # Nagle on otherwise waits for our delayed ACK, adding ~40 ms to every measurement (Orthanc's C-ECHO: 42 ms
    # instead of 0.4 ms).
    if hasattr(socket, "TCP_QUICKACK"):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)
    return sock.recv(size)


# ---------------------------------------------------------------- HL7 v2 over MLLP


class Hl7Error(Exception):
    """Not a valid HL7 v2 message."""


class MllpReader:
    """Framed messages (0x0b ... 0x1c 0x0d) from a stream; bytes outside a frame are skipped."""

    def __init__(self, sock: socket.socket, max_bytes: int = MAX_MESSAGE_BYTES) -> None:
        self.sock, self.max_bytes, self.buffer = sock, max_bytes, b""

    def next(self, deadline: float) -> bytes | None:
        """The next message, or None when the peer closed. Raises TimeoutError at the deadline and Hl7Error for a
        frame larger than max_bytes."""
        while True:
            start = self.buffer.find(MLLP_START)
            if start < 0:
                self.buffer = b""
            else:
                self.buffer = self.buffer[start:]
                end = self.buffer.find(MLLP_END)
                if end >= 0:
                    message, self.buffer = self.buffer[1:end], self.buffer[end + 2 :]
                    return message
            if len(self.buffer) > self.max_bytes:
                raise Hl7Error(f"a frame longer than {self.max_bytes} bytes")
            chunk = receive(self.sock, deadline)
            if not chunk:
                return None
            self.buffer += chunk


def frame(message: str) -> bytes:
    return MLLP_START + message.encode("utf-8") + MLLP_END


def segments(message: str) -> list[str]:
    return [segment for segment in message.replace("\n", "\r").split("\r") if segment]


def msh_fields(message: str) -> list[str]:
    """MSH's fields, indexed so that fields[n] is MSH-n (fields[1] is the field separator itself).
    Raises Hl7Error for what is not a valid HL7 v2 message header."""
    if not message.startswith("MSH"):
        raise Hl7Error("does not start with MSH")
    if message[3:4] != "|":
        raise Hl7Error(f"field separator is {message[3:4]!r}, not '|'")
    header = segments(message)[0]
    fields = ["MSH", "|", *header[4:].split("|")]
    encoding = fields[2]
    if len(encoding) < 4 or len(set(encoding[:4])) < 4 or "|" in encoding:
        raise Hl7Error(f"MSH-2 encoding characters {encoding!r} are not four distinct characters")
    fields += [""] * (13 - len(fields))
    if not fields[10]:
        raise Hl7Error("MSH-10 message control id is empty")
    if not fields[11]:
        raise Hl7Error("MSH-11 processing id is missing")
    return fields


def hl7_timestamp() -> str:
    return datetime.now(UTC).strftime("%Y%m%d%H%M%S+0000")


def new_control_id() -> str:
    # 20 characters at most: MSH-10's length in v2.5.
    return "MI" + secrets.token_hex(8).upper()


def probe_message(identity: Mapping[str, str], control_id: str) -> str:
    """An application management message (NMD^N02) with processing id T: a receiver acknowledges it without
    touching patient data."""
    header = "|".join(
        [
            "MSH",
            HL7_ENCODING,
            identity["sending_application"],
            identity["sending_facility"],
            identity["receiving_application"],
            identity["receiving_facility"],
            hl7_timestamp(),
            "",
            "NMD^N02^NMD_N02",
            control_id,
            "T",
            "2.5",
        ]
    )
    return header + "\rNST|N\r"


def ack(header: list[str], code: str, text_message: str = "") -> str:
    """The acknowledgement of a message whose MSH fields are `header` (as msh_fields gives them, possibly from an
    invalid message): applications and facilities swapped, MSH-9 ACK^<trigger>^ACK, processing id copied."""
    fields = header + [""] * (13 - len(header))
    message_type = fields[9].split("^")
    trigger = message_type[1] if len(message_type) > 1 else ""
    msh = "|".join(
        [
            "MSH",
            HL7_ENCODING,
            fields[5],
            fields[6],
            fields[3],
            fields[4],
            hl7_timestamp(),
            "",
            f"ACK^{trigger}^ACK",
            new_control_id(),
            fields[11] or "P",
            fields[12] or "2.5",
        ]
    )
    msa = "|".join(["MSA", code, fields[10]] + ([text_message] if text_message else []))
    return f"{msh}\r{msa}\r"


def lenient_fields(message: str) -> list[str]:
    """What can be read of an invalid message's header, to address the AR to it."""
    if message.startswith("MSH") and message[3:4] == "|":
        return ["MSH", "|", *segments(message)[0][4:].split("|")]
    return ["MSH", "|"]


def acknowledgement_code(ack_message: str) -> tuple[str, str, str]:
    """(MSA-1, MSA-2, MSA-3) of an acknowledgement. Raises Hl7Error when it has no MSA segment."""
    msh_fields(ack_message)
    for segment in segments(ack_message):
        if segment.startswith("MSA|"):
            fields = [*segment.split("|"), "", "", ""]
            return fields[1], fields[2], fields[3]
    raise Hl7Error("no MSA segment")


def probe_hl7(interface: Interface, ca_file: str, deadline: float) -> float:
    control_id = new_control_id()
    with connect(interface, ca_file, deadline) as sock:
        started = time.monotonic()
        try:
            sock.settimeout(remaining(deadline))
            sock.sendall(frame(probe_message(interface.identity, control_id)))
        except TimeoutError:
            raise ProbeFailure("ack_missing", "the listener took no message before the deadline") from None
        except ConnectionError as exc:
            raise ProbeFailure("ack_missing", f"sending failed: {exc.strerror or exc}") from None
        reader, others = MllpReader(sock), list[str]()
        # Wait for the ACK of our control id: an ACK for another one (a stale or foreign message) does not count.
        while True:
            try:
                answer = reader.next(deadline)
            except TimeoutError:
                seen = f" (only ACKs for control ids {', '.join(others)})" if others else ""
                raise ProbeFailure("ack_missing", f"no ACK for {control_id} before the deadline{seen}") from None
            except (Hl7Error, ConnectionError) as exc:
                raise ProbeFailure("ack_missing", f"no ACK for {control_id}: {exc}") from None
            if answer is None:
                raise ProbeFailure("ack_missing", f"the listener closed the connection without an ACK for {control_id}")
            latency = time.monotonic() - started
            try:
                code, acknowledged, reason = acknowledgement_code(answer.decode("utf-8", "replace"))
            except Hl7Error as exc:
                raise ProbeFailure("ack_missing", f"the answer is not an HL7 ACK ({exc})") from None
            if acknowledged != control_id:
                others.append(acknowledged or "''")
                continue
            if code in ("AA", "CA"):
                return latency
            if code in ("AE", "AR", "CE", "CR"):
                raise ProbeFailure("ack_negative", f"MSA-1 {code}" + (f": {reason}" if reason else ""), latency)
            raise ProbeFailure("ack_missing", f"MSA-1 {code!r} is not an acknowledgement code")


# ---------------------------------------------------------------- DICOM C-ECHO (PS3.8 upper layer, PS3.7 DIMSE)

APPLICATION_CONTEXT = "1.2.840.10008.3.1.1.1"
VERIFICATION = "1.2.840.10008.1.1"
IMPLICIT_LITTLE_ENDIAN = "1.2.840.10008.1.2"
# This program's implementation class UID: under the UUID-derived root 2.25 (PS3.5 B.2), so no registration needed.
IMPLEMENTATION_CLASS_UID = "2.25.287684460187947186972995884360683228104"
IMPLEMENTATION_VERSION = "MEDINFRA_PROBE1"
MAX_PDU_LENGTH = 16384
ASSOCIATE_RQ, ASSOCIATE_AC, ASSOCIATE_RJ, P_DATA_TF, RELEASE_RQ, RELEASE_RP, ABORT = range(1, 8)
PRESENTATION_CONTEXT_ID = 1
C_ECHO_RQ, C_ECHO_RSP, NO_DATA_SET = 0x0030, 0x8030, 0x0101
# (source, reason) of an A-ASSOCIATE-RJ (PS3.8 9.3.4), the ones an operator can act on.
REJECT_REASONS = {
    (1, 2): "application context name not supported",
    (1, 3): "calling AE title not recognized",
    (1, 7): "called AE title not recognized",
    (2, 2): "protocol version not supported",
    (3, 1): "temporary congestion",
    (3, 2): "local limit exceeded",
}
PRESENTATION_RESULTS = {
    1: "user rejection",
    2: "no reason",
    3: "abstract syntax (Verification) not supported",
    4: "transfer syntax not supported",
}


def pdu(kind: int, body: bytes) -> bytes:
    return struct.pack(">BBI", kind, 0, len(body)) + body


def pdu_item(kind: int, body: bytes) -> bytes:
    return struct.pack(">BBH", kind, 0, len(body)) + body


def pdu_items(data: bytes) -> list[tuple[int, bytes]]:
    items, offset = [], 0
    while offset + 4 <= len(data):
        kind, length = data[offset], struct.unpack_from(">H", data, offset + 2)[0]
        items.append((kind, data[offset + 4 : offset + 4 + length]))
        offset += 4 + length
    return items


def ae_title(title: str) -> bytes:
    return title.encode("ascii", "replace").ljust(16, b" ")


def associate_request(calling_ae: str, called_ae: str) -> bytes:
    """A-ASSOCIATE-RQ proposing Verification in Implicit VR Little Endian (UIDs in items are not padded)."""
    presentation = struct.pack(">B3x", PRESENTATION_CONTEXT_ID)
    presentation += pdu_item(0x30, VERIFICATION.encode()) + pdu_item(0x40, IMPLICIT_LITTLE_ENDIAN.encode())
    user = pdu_item(0x51, struct.pack(">I", MAX_PDU_LENGTH))
    user += pdu_item(0x52, IMPLEMENTATION_CLASS_UID.encode()) + pdu_item(0x55, IMPLEMENTATION_VERSION.encode())
    body = struct.pack(">H2x", 1) + ae_title(called_ae) + ae_title(calling_ae) + bytes(32)
    body += pdu_item(0x10, APPLICATION_CONTEXT.encode()) + pdu_item(0x20, presentation) + pdu_item(0x50, user)
    return pdu(ASSOCIATE_RQ, body)


def element(number: int, value: bytes) -> bytes:
    """A command element (group 0000) in Implicit VR Little Endian: tag, 32-bit length, value."""
    return struct.pack("<HHI", 0x0000, number, len(value)) + value


def echo_request(message_id: int) -> bytes:
    """P-DATA-TF with one PDV: the whole C-ECHO-RQ command set (no data set follows)."""
    sop_class = VERIFICATION.encode() + b"\0" * (len(VERIFICATION) % 2)  # UI values are padded to even length
    elements = element(0x0002, sop_class) + element(0x0100, struct.pack("<H", C_ECHO_RQ))
    elements += element(0x0110, struct.pack("<H", message_id)) + element(0x0800, struct.pack("<H", NO_DATA_SET))
    command = element(0x0000, struct.pack("<I", len(elements))) + elements
    # PDV: length, presentation context, control header 0x03 = command, last fragment.
    return pdu(P_DATA_TF, struct.pack(">IBB", len(command) + 2, PRESENTATION_CONTEXT_ID, 0x03) + command)


def command_elements(data: bytes) -> dict[int, bytes]:
    elements, offset = {}, 0
    while offset + 8 <= len(data):
        _group, number, length = struct.unpack_from("<HHI", data, offset)
        elements[number] = data[offset + 8 : offset + 8 + length]
        offset += 8 + length
    return elements


def read_exactly(sock: socket.socket, size: int, deadline: float) -> bytes:
    data = b""
    while len(data) < size:
        chunk = receive(sock, deadline, size - len(data))
        if not chunk:
            raise ConnectionResetError("the peer closed the connection")
        data += chunk
    return data


def read_pdu(sock: socket.socket, deadline: float) -> tuple[int, bytes]:
    kind, _reserved, length = struct.unpack(">BBI", read_exactly(sock, 6, deadline))
    if length > MAX_MESSAGE_BYTES:
        raise ProbeFailure("protocol_error", f"a PDU of {length} bytes (type {kind:#04x})")
    return kind, read_exactly(sock, length, deadline)


def abort_reason(body: bytes) -> str:
    source, reason = (body[2], body[3]) if len(body) >= 4 else (0, 0)
    return f"A-ABORT (source {source}, reason {reason})"


def associate(sock: socket.socket, identity: Mapping[str, str], deadline: float) -> None:
    sock.sendall(associate_request(identity["calling_ae"], identity["called_ae"]))
    try:
        kind, body = read_pdu(sock, deadline)
    except ConnectionError:
        raise ProbeFailure("association_rejected", "the peer closed the connection during association") from None
    if kind == ASSOCIATE_RJ and len(body) >= 4:
        result, source, reason = body[1], body[2], body[3]
        why = REJECT_REASONS.get((source, reason), f"source {source}, reason {reason}")
        kind_of = "permanently" if result == 1 else "transiently"
        raise ProbeFailure("association_rejected", f"A-ASSOCIATE-RJ {kind_of}: {why}")
    if kind == ABORT:
        raise ProbeFailure("association_rejected", f"{abort_reason(body)} during association")
    if kind != ASSOCIATE_AC:
        raise ProbeFailure("protocol_error", f"PDU type {kind:#04x} instead of A-ASSOCIATE-AC")
    contexts = [value for item, value in pdu_items(body[68:]) if item == 0x21 and len(value) >= 4]
    accepted = [value for value in contexts if value[0] == PRESENTATION_CONTEXT_ID]
    if not accepted or accepted[0][2] != 0:
        result = accepted[0][2] if accepted else -1
        why = PRESENTATION_RESULTS.get(result, "no answer for it")
        raise ProbeFailure("association_rejected", f"Verification presentation context not accepted: {why}")


def echo(sock: socket.socket, deadline: float) -> None:
    message_id = secrets.randbelow(0xFFFF) + 1
    sock.sendall(echo_request(message_id))
    command = b""
    while True:
        kind, body = read_pdu(sock, deadline)
        if kind == ABORT:
            # The peer refuses us on the association it accepted: Orthanc does so for a calling AE it does not know.
            raise ProbeFailure("association_rejected", f"{abort_reason(body)} in answer to the C-ECHO-RQ")
        if kind != P_DATA_TF:
            raise ProbeFailure("protocol_error", f"PDU type {kind:#04x} instead of P-DATA-TF")
        offset, last = 0, False
        while offset + 6 <= len(body):
            length, header = struct.unpack_from(">I", body, offset)[0], body[offset + 5]
            if header & 0x01:  # a command fragment
                command += body[offset + 6 : offset + 4 + length]
                last = last or bool(header & 0x02)
            offset += 4 + length
        if last:
            break
    elements = command_elements(command)

    def unsigned(number: int) -> int | None:
        value = elements.get(number, b"")
        return struct.unpack("<H", value[:2])[0] if len(value) >= 2 else None

    if unsigned(0x0100) != C_ECHO_RSP or unsigned(0x0120) != message_id:
        raise ProbeFailure("protocol_error", f"not the C-ECHO-RSP to message {message_id}")
    status = unsigned(0x0900)
    if status != 0:
        raise ProbeFailure("echo_failed", f"C-ECHO-RSP status {status:#06x}" if status is not None else "no status")


def release(sock: socket.socket, deadline: float) -> None:
    sock.sendall(pdu(RELEASE_RQ, bytes(4)))
    kind, _body = read_pdu(sock, deadline)
    if kind != RELEASE_RP:
        raise ProbeFailure("protocol_error", f"PDU type {kind:#04x} instead of A-RELEASE-RP")


def probe_dicom(interface: Interface, ca_file: str, deadline: float) -> float:
    with connect(interface, ca_file, deadline, client_certificate=True) as sock:
        started = time.monotonic()
        associate(sock, interface.identity, deadline)
        echo(sock, deadline)
        latency = time.monotonic() - started
        try:
            release(sock, deadline)
        except ProbeFailure as failure:
            raise ProbeFailure(failure.result, f"{failure} (after a successful C-ECHO)", latency) from None
        return latency


# ---------------------------------------------------------------- HTTP(S) and FHIR


def http_get(interface: Interface, ca_file: str, deadline: float, path: str, accept: str) -> tuple[int, bytes, float]:
    """(status, body, latency) of one GET; the body is bounded and the whole exchange keeps to the deadline."""
    sock = connect(interface, ca_file, deadline)
    default_port = 443 if interface.tls else 80
    host = interface.server_name + ("" if interface.port == default_port else f":{interface.port}")
    connection = http.client.HTTPConnection(interface.server_name, interface.port)
    connection.sock = sock
    try:
        started = time.monotonic()
        sock.settimeout(remaining(deadline))
        connection.request("GET", path, headers={"Host": host, "Accept": accept, "User-Agent": "medinfra-probe"})
        response = connection.getresponse()
        latency = time.monotonic() - started
        body = b""
        while len(body) <= MAX_MESSAGE_BYTES:
            sock.settimeout(remaining(deadline))
            chunk = response.read1(65536)
            if not chunk:
                return response.status, body, latency
            body += chunk
        raise ProbeFailure("protocol_error", f"a body larger than {MAX_MESSAGE_BYTES} bytes", latency)
    except http.client.HTTPException as exc:
        raise ProbeFailure("protocol_error", f"not an HTTP answer ({type(exc).__name__}: {exc})") from None
    finally:
        connection.close()


def probe_fhir(interface: Interface, ca_file: str, deadline: float) -> float:
    path = interface.identity["base_path"].rstrip("/") + "/metadata"
    status, body, latency = http_get(interface, ca_file, deadline, path, "application/fhir+json")
    if status != 200:
        raise ProbeFailure("http_status", f"GET {path}: HTTP {status}", latency)
    try:
        document = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError):
        why = f"GET {path}: the body is not JSON, so not a CapabilityStatement"
        raise ProbeFailure("fhir_version", why, latency) from None
    kind = document.get("resourceType") if isinstance(document, dict) else type(document).__name__
    if kind != "CapabilityStatement":
        raise ProbeFailure("fhir_version", f"GET {path}: a {kind!r}, not a CapabilityStatement", latency)
    expected, found = interface.identity["fhir_version"], document.get("fhirVersion")
    if found != expected:
        raise ProbeFailure("fhir_version", f"GET {path}: fhirVersion {found!r}, expected {expected!r}", latency)
    return latency


def probe_https(interface: Interface, ca_file: str, deadline: float) -> float:
    path = interface.identity.get("path", "/")
    status, _body, latency = http_get(interface, ca_file, deadline, path, "*/*")
    if not 200 <= status < 400:
        raise ProbeFailure("http_status", f"GET {path}: HTTP {status}", latency)
    return latency


# ---------------------------------------------------------------- SFTP (the SSH identification string)


def probe_sftp(interface: Interface, ca_file: str, deadline: float) -> float:
    with connect(interface, ca_file, deadline) as sock:
        started, data = time.monotonic(), b""
        # RFC 4253 4.2: the server may send other lines before its identification string.
        while len(data) < 8192:
            try:
                chunk = receive(sock, deadline, 8192 - len(data))
            except TimeoutError:
                if not data:
                    raise
                break  # it spoke, but not SSH: a wrong service rather than a slow one
            if not chunk:
                break
            data += chunk
            lines = data.split(b"\n")
            banner = next((line for line in lines[:-1] if line.startswith(b"SSH-")), None)
            if banner is not None:
                latency = time.monotonic() - started
                if banner.startswith((b"SSH-2.0-", b"SSH-1.99-")):
                    return latency
                raise ProbeFailure("protocol_error", f"SSH version {banner[:40]!r} is not 2.0", latency)
        raise ProbeFailure("protocol_error", f"no SSH identification string, got {data[:40]!r}")


# ---------------------------------------------------------------- the lab's MLLP listener


def standin_mode(path: str) -> str:
    """AA, AE or silent, read for each message so that a test can switch it while connections stay open."""
    try:
        mode = Path(path).read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return "AA"
    except (OSError, UnicodeDecodeError) as exc:
        print(f"mllp-standin: {path}: unreadable ({exc}); answering AA", file=sys.stderr)
        return "AA"
    if mode not in ("AA", "AE", "silent"):
        print(f"mllp-standin: {path}: {mode[:40]!r} is not AA, AE or silent; answering AA", file=sys.stderr)
        return "AA"
    return mode


def standin_answer(message: bytes, mode_file: str) -> bytes | None:
    """The stand-in's answer to one framed message: AR for an invalid message, else by the mode file."""
    decoded = message.decode("utf-8", "replace")
    try:
        header = msh_fields(decoded)
    except Hl7Error as exc:
        return frame(ack(lenient_fields(decoded), "AR", f"invalid HL7 v2 message: {exc}"))
    mode = standin_mode(mode_file)
    if mode == "silent":
        return None
    return frame(ack(header, mode, "" if mode == "AA" else "stand-in told to answer AE"))


class StandinHandler(socketserver.BaseRequestHandler):
    server: StandinServer

    def handle(self) -> None:
        if not self.server.slots.acquire(blocking=False):
            return  # too many connections: closed at once
        try:
            reader = MllpReader(self.request)
            while True:
                message = reader.next(time.monotonic() + STANDIN_IDLE_SECONDS)
                if message is None:
                    return
                answer = standin_answer(message, self.server.mode_file)
                if answer is not None:
                    self.request.settimeout(STANDIN_IDLE_SECONDS)
                    self.request.sendall(answer)
        except (OSError, Hl7Error):
            return  # idle, oversized or broken connection: closed, the listener goes on
        finally:
            self.server.slots.release()


class StandinServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], mode_file: str) -> None:
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.mode_file = mode_file
        self.slots = threading.BoundedSemaphore(STANDIN_MAX_CONNECTIONS)
        super().__init__(address, StandinHandler)


# ---------------------------------------------------------------- running probes

PROBES: dict[str, Callable[[Interface, str, float], float]] = {
    "hl7v2-mllp": probe_hl7,
    "dicom": probe_dicom,
    "fhir": probe_fhir,
    "https": probe_https,
    "sftp": probe_sftp,
}


def run_probe(interface: Interface, ca_file: str) -> Outcome:
    deadline = time.monotonic() + interface.timeout_seconds
    try:
        latency = PROBES[interface.protocol](interface, ca_file, deadline)
    except ProbeFailure as failure:
        return Outcome(interface.name, failure.result, microseconds(failure.latency), str(failure))
    except TimeoutError:
        return Outcome(interface.name, "timeout", None, f"no answer within {interface.timeout_seconds:g} s")
    except ssl.SSLError as exc:  # after the handshake: TLS 1.3 reports a refused client certificate here
        return Outcome(interface.name, "tls_failed", None, str(exc))
    except OSError as exc:
        return Outcome(interface.name, "protocol_error", None, f"connection failed: {exc.strerror or exc}")
    return Outcome(interface.name, "ok", microseconds(latency), "")


def microseconds(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds, 6)


# ---------------------------------------------------------------- the exporter

METRICS = {
    "medinfra_interface_up": ("gauge", "1 if the interface answered correctly in its own protocol, else 0"),
    "medinfra_interface_result": ("gauge", "The probe's result: one series, value 1, labelled with the result"),
    "medinfra_interface_latency_seconds": ("gauge", "Seconds of the protocol exchange, when an answer came"),
    "medinfra_interface_latency_budget_seconds": ("gauge", "The interface's latency budget in seconds"),
    "medinfra_interface_probes_total": ("counter", "Probes of the interface since the exporter started"),
    "medinfra_interface_failures_total": ("counter", "Probes of the interface that failed since the exporter started"),
}
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
HANDSHAKE_SECONDS = 10.0


def sample(value: float) -> str:
    """A metric value in full (`1`, `0.25`), never rounded to six digits."""
    number = float(value)
    return str(int(number)) if number.is_integer() else repr(number)


def metrics_text(interface: Interface, outcome: Outcome, probes: int, failures: int) -> str:
    """The metric contract for one probe, each family with its HELP and TYPE; latency only when an answer came."""
    samples: list[tuple[str, str, float]] = [
        ("medinfra_interface_up", "", float(outcome.up)),
        ("medinfra_interface_result", f'{{result="{outcome.result}"}}', 1),
    ]
    if outcome.latency_seconds is not None:
        samples.append(("medinfra_interface_latency_seconds", "", outcome.latency_seconds))
    samples += [
        ("medinfra_interface_latency_budget_seconds", "", interface.latency_budget_seconds),
        ("medinfra_interface_probes_total", "", probes),
        ("medinfra_interface_failures_total", "", failures),
    ]
    lines = []
    for name, labels, value in samples:
        kind, help_text = METRICS[name]
        lines += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}", f"{name}{labels} {sample(value)}"]
    return "\n".join(lines) + "\n"


class ExporterServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], config: Config, context: ssl.SSLContext, password: bytes) -> None:
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.config, self.context, self.password = config, context, password
        self.lock = threading.Lock()
        self.counts: dict[str, tuple[int, int]] = {}
        super().__init__(address, ExporterHandler)

    def server_bind(self) -> None:
        # HTTPServer's own looks the address up in DNS (getfqdn): slow or stuck on an isolated network.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = str(self.server_address[0]), int(self.server_address[1])

    def finish_request(self, request: Any, client_address: Any) -> None:
        # The TLS handshake runs in the request's thread: a slow client never holds up the others.
        request.settimeout(HANDSHAKE_SECONDS)
        try:
            connection = self.context.wrap_socket(request, server_side=True)
        except OSError:
            return  # a failed handshake (ssl.SSLError is an OSError): nothing to answer
        try:
            super().finish_request(connection, client_address)
        finally:
            connection.close()

    def count(self, name: str, up: bool) -> tuple[int, int]:
        """Counts one probe of `name`; (probes, failures) so far."""
        with self.lock:
            probes, failures = self.counts.get(name, (0, 0))
            self.counts[name] = (probes + 1, failures + (not up))
            return self.counts[name]


class ExporterHandler(BaseHTTPRequestHandler):
    server: ExporterServer
    timeout = 30  # seconds a client may take to send its request
    server_version = "medinfra-interface-probe"
    sys_version = ""

    def do_GET(self) -> None:
        if not self.authorized():
            headers = {"WWW-Authenticate": 'Basic realm="medinfra interface probes", charset="UTF-8"'}
            self.answer(401, "authentication required\n", headers)
            return
        url = urlsplit(self.path)
        if url.path != "/probe":
            self.answer(404, "only /probe?interface=NAME is served\n")
            return
        try:
            query = parse_qs(url.query, strict_parsing=True, max_num_fields=8)
        except ValueError:
            query = {}
        names = query.get("interface", [])
        if set(query) != {"interface"} or len(names) != 1:
            self.answer(400, "the query must be exactly interface=NAME\n")
            return
        interface = self.server.config.interfaces.get(names[0])
        if interface is None:
            self.answer(404, "no such interface\n")
            return
        outcome = run_probe(interface, self.server.config.ca_file)
        if not outcome.up:
            self.log_message("%s: %s: %s", interface.name, outcome.result, outcome.detail)
        probes, failures = self.server.count(interface.name, outcome.up)
        self.answer(200, metrics_text(interface, outcome, probes, failures), content_type=CONTENT_TYPE)

    def authorized(self) -> bool:
        """HTTP basic auth: any user name, the configured password (compared in constant time)."""
        scheme, _space, encoded = self.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            decoded = base64.b64decode(encoded.strip(), validate=True)
        except (binascii.Error, ValueError):
            return False
        _user, separator, password = decoded.partition(b":")
        return bool(separator) and hmac.compare_digest(password, self.server.password)

    def answer(
        self, status: int, body: str, headers: Mapping[str, str] | None = None, content_type: str = "text/plain"
    ) -> None:
        data = body.encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        # Successful scrapes are not logged (one line per interface per scrape interval otherwise); the request line
        # logged for the others never holds the credentials, which travel in a header.
        if code != 200:
            super().log_request(code, size)


def server_context(directory: Path) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(str(directory / "server.crt"), str(directory / "server.key"))
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"{directory}/server.crt, server.key: not a usable certificate and key ({exc})") from None
    return context


def exporter_password(directory: Path) -> bytes:
    path = directory / "password"
    try:
        password = path.read_bytes().strip()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    if not password:
        raise ConfigError(f"{path}: is empty")
    return password


def make_exporter(config_path: str, address: tuple[str, int]) -> ExporterServer:
    """The exporter, ready to serve; ConfigError when its configuration or credentials are missing or invalid."""
    config = load_config(config_path)
    directory = credentials_directory()
    return ExporterServer(address, config, server_context(directory), exporter_password(directory))


# ---------------------------------------------------------------- command line


def listen_address(value: str, default_port: int) -> tuple[str, int]:
    """ADDRESS[:PORT], [IPv6]:PORT or [IPv6]."""
    host, port = value, str(default_port)
    if value.startswith("["):
        host, _bracket, rest = value[1:].partition("]")
        if rest:
            port = rest.removeprefix(":")
    elif value.count(":") == 1:
        host, port = value.split(":")
    if not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ConfigError(f"--listen {value!r}: the port must be a number from 1 to 65535")
    return host or "0.0.0.0", int(port)


def command_probe(arguments: argparse.Namespace) -> int:
    config = load_config(arguments.config)
    if arguments.name not in config.interfaces:
        known = ", ".join(config.interfaces)
        raise ConfigError(f"{arguments.config}: no interface {arguments.name!r} (it has {known})")
    outcome = run_probe(config.interfaces[arguments.name], config.ca_file)
    print(json.dumps(outcome.as_dict(), sort_keys=True))
    return 0 if outcome.up else 1


def command_exporter(arguments: argparse.Namespace) -> int:
    address = listen_address(arguments.listen, EXPORTER_PORT)
    with make_exporter(arguments.config, address) as server:
        print(f"interface_probe: exporter listening on {address[0]}:{address[1]}", file=sys.stderr)
        server.serve_forever()
    return 0


def command_standin(arguments: argparse.Namespace) -> int:
    host, port = listen_address(arguments.listen, MLLP_PORT)
    with StandinServer((host, port), arguments.mode_file) as server:
        print(f"mllp-standin: listening on {host}:{port}, mode file {arguments.mode_file}", file=sys.stderr)
        server.serve_forever()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="interface_probe", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    probe_parser = commands.add_parser("probe", help="probe one interface, print the result as JSON")
    probe_parser.add_argument("--config", required=True, help="the probe configuration (JSON)")
    probe_parser.add_argument("name", help="the interface's name")
    exporter_parser = commands.add_parser("exporter", help="serve /probe?interface=NAME over TLS with basic auth")
    exporter_parser.add_argument("--config", required=True, help="the probe configuration (JSON)")
    exporter_parser.add_argument("--listen", default=f"127.0.0.1:{EXPORTER_PORT}", help="ADDRESS[:PORT]")
    standin_parser = commands.add_parser("mllp-standin", help="the lab's acknowledging HL7 v2 MLLP listener")
    standin_parser.add_argument("--listen", required=True, help=f"ADDRESS:PORT (default port {MLLP_PORT})")
    standin_parser.add_argument("--mode-file", required=True, help="holds AA, AE or silent (missing: AA)")
    arguments = parser.parse_args(argv)
    try:
        if arguments.command == "probe":
            return command_probe(arguments)
        if arguments.command == "exporter":
            return command_exporter(arguments)
        return command_standin(arguments)
    except ConfigError as exc:
        print(f"interface_probe: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"interface_probe: cannot listen: {exc.strerror or exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
