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
import json
import os
import secrets
import socket
import socketserver
import ssl
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

PROTOCOLS = ("hl7v2-mllp", "dicom", "fhir", "https", "sftp")
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
    except (ssl.SSLError, ssl.CertificateError) as exc:
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


def test_message(identity: Mapping[str, str], control_id: str) -> str:
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
            sock.sendall(frame(test_message(interface.identity, control_id)))
        except TimeoutError:
            raise ProbeFailure("ack_missing", "the listener took no message before the deadline") from None
        except OSError as exc:
            raise ProbeFailure("ack_missing", f"sending failed: {exc.strerror or exc}") from None
        reader, others = MllpReader(sock), list[str]()
        # Wait for the ACK of our control id: an ACK for another one (a stale or foreign message) does not count.
        while True:
            try:
                answer = reader.next(deadline)
            except TimeoutError:
                seen = f" (only ACKs for control ids {', '.join(others)})" if others else ""
                raise ProbeFailure("ack_missing", f"no ACK for {control_id} before the deadline{seen}") from None
            except (Hl7Error, OSError) as exc:
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

PROBES: dict[str, Callable[[Interface, str, float], float]] = {"hl7v2-mllp": probe_hl7}


def run_probe(interface: Interface, ca_file: str) -> Outcome:
    deadline = time.monotonic() + interface.timeout_seconds
    try:
        latency = PROBES[interface.protocol](interface, ca_file, deadline)
    except ProbeFailure as failure:
        return Outcome(interface.name, failure.result, failure.latency, str(failure))
    except TimeoutError:
        return Outcome(interface.name, "timeout", None, f"no answer within {interface.timeout_seconds:g} s")
    except (ssl.SSLError, ssl.CertificateError) as exc:
        return Outcome(interface.name, "tls_failed", None, str(exc))
    except OSError as exc:
        return Outcome(interface.name, "protocol_error", None, f"connection failed: {exc.strerror or exc}")
    return Outcome(interface.name, "ok", round(latency, 6), "")


# ---------------------------------------------------------------- command line


def listen_address(value: str, default_port: int) -> tuple[str, int]:
    """ADDRESS[:PORT], [IPv6]:PORT or [IPv6]."""
    host, port = value, str(default_port)
    if value.startswith("["):
        host, _, rest = value[1:].partition("]")
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
    standin_parser = commands.add_parser("mllp-standin", help="the lab's acknowledging HL7 v2 MLLP listener")
    standin_parser.add_argument("--listen", required=True, help=f"ADDRESS:PORT (default port {MLLP_PORT})")
    standin_parser.add_argument("--mode-file", required=True, help="holds AA, AE or silent (missing: AA)")
    arguments = parser.parse_args(argv)
    try:
        if arguments.command == "probe":
            return command_probe(arguments)
        return command_standin(arguments)
    except ConfigError as exc:
        print(f"interface_probe: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"interface_probe: cannot listen: {exc.strerror or exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
