"""The PACS stand-in on a live container: HTTPS and DICOM-over-TLS endpoints verified against the site CA, and the
interfaces of the scenario's hospital.yml answering in their own protocols (DICOM C-ECHO with the declared AEs,
HL7 v2 ACK over MLLP, FHIR CapabilityStatement)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.container import python_in

PKI = "/etc/medinfra/pki"

# Runs inside the container: connect with the site CA (hostname checked against the certificate's IP address).
CONNECT = r"""
import socket, ssl, sys
port, payload = int(sys.argv[2]), sys.argv[3].encode()
ctx = ssl.create_default_context(cafile="/etc/medinfra/pki/ca.crt")
with ctx.wrap_socket(socket.create_connection((sys.argv[1], port), timeout=5), server_hostname=sys.argv[1]) as s:
    s.sendall(payload)
    data = b""
    while chunk := s.recv(4096):
        data += chunk
    print(s.version(), data.decode(errors="replace").splitlines()[-1])
"""

# Runs inside the container: one HL7 v2 message over MLLP (0x0b ... 0x1c 0x0d), prints the ACK's segments.
MLLP = r"""
import socket, sys
message = ("MSH|^~\\&|WS|WARD|PACS|IMG|20261206120000||ADT^A01^ADT_A01|" + sys.argv[2] + "|T|2.5\r"
           "PID|1||4711^^^WARD||TEST^PATIENT\r")
with socket.create_connection((sys.argv[1], 2575), timeout=5) as s:
    s.sendall(b"\x0b" + message.encode() + b"\x1c\x0d")
    data = b""
    while not data.endswith(b"\x1c\x0d"):
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
print("\n".join(data.strip(b"\x0b\x1c\r").decode().split("\r")))
"""

# Runs inside the container: GET over HTTPS with the site CA; prints the content type, then the body.
GET = r"""
import ssl, sys, urllib.request
with urllib.request.urlopen(sys.argv[1], context=ssl.create_default_context(cafile="/etc/medinfra/pki/ca.crt")) as r:
    print(r.headers["Content-Type"])
    print(r.read().decode())
"""


def address(host: Any) -> str:
    return str(host.check_output("hostname -I").split()[0])


def connect(host: Any, port: int, payload: str) -> str:
    return python_in(host, CONNECT, address(host), str(port), payload)


def test_web_answers_over_verified_tls(host: Any) -> None:
    answer = connect(host, 443, "GET / HTTP/1.0\r\n\r\n")
    assert answer.startswith("TLSv1.3")
    assert answer.endswith("medinfra lab stand-in: pacs on " + host.check_output("hostname"))


def test_dicom_port_answers_over_verified_tls(host: Any) -> None:
    assert "medinfra lab stand-in: pacs" in connect(host, 104, "A-ASSOCIATE")


def test_key_readable_by_nginx_only(host: Any) -> None:
    key = host.file(f"{PKI}/clinical-standin.key")
    assert (key.user, key.group, key.mode) == ("root", "www-data", 0o640)
    assert host.service("nginx").is_enabled


def echoscu(host: Any, calling: str, called: str) -> Any:
    """A DICOM C-ECHO over TLS with the host's site-CA certificate as the client's (dcmtk comes with Orthanc)."""
    return host.run(
        f"echoscu -to 5 -ta 5 +tls {PKI}/clinical-standin.key {PKI}/clinical-standin.crt +cf {PKI}/ca.crt"
        f" -aet {calling} -aec {called} {address(host)} 11112"
    )


def test_dicom_echo_with_the_declared_aes(host: Any) -> None:
    result = echoscu(host, "WS-VIEWER", "STANDINPACS")
    assert result.rc == 0, result.stderr


@pytest.mark.parametrize(
    ("calling", "called", "reason"),
    [
        ("WS-VIEWER", "WRONGAE", "Called AE Title Not Recognized"),
        ("UNKNOWN", "STANDINPACS", "Calling AE Title Not Recognized"),
    ],
)
def test_dicom_association_rejected_for_undeclared_aes(host: Any, calling: str, called: str, reason: str) -> None:
    result = echoscu(host, calling, called)
    assert result.rc == 1, result.stderr  # dcmtk 3.6.7's echoscu: 1 for any failed association
    assert "Association Rejected" in result.stderr and f"Reason: {reason}" in result.stderr


def test_dicom_requires_tls(host: Any) -> None:
    plain = host.run(f"echoscu -to 5 -ta 5 -aet WS-VIEWER -aec STANDINPACS {address(host)} 11112")
    # Orthanc drops the plain connection without a DICOM answer (not a rejection it would send over TLS).
    assert plain.rc == 1 and "Peer aborted Association (or never connected)" in plain.stderr, plain.stderr


def test_orthanc_has_no_http_server(host: Any) -> None:
    assert not host.socket("tcp://0.0.0.0:8042").is_listening
    assert not host.socket("tcp://127.0.0.1:8042").is_listening
    assert host.service("orthanc").is_enabled


def test_mllp_acknowledges_with_the_control_id(host: Any) -> None:
    ack = python_in(host, MLLP, address(host), "MOLECULE0001").splitlines()
    assert ack[0].startswith("MSH|^~\\&|PACS|IMG|WS|WARD|")
    assert ack[1] == "MSA|AA|MOLECULE0001"


def test_mllp_mode_file_steers_the_answer(host: Any) -> None:
    mode = "/etc/medinfra/mllp-standin.mode"
    host.run_expect([0], f"echo AE > {mode}")
    try:
        ack = python_in(host, MLLP, address(host), "MOLECULE0002").splitlines()
    finally:
        host.run_expect([0], f"echo AA > {mode}")
    assert ack[1].startswith("MSA|AE|MOLECULE0002")


def test_fhir_capability_statement(host: Any) -> None:
    content_type, body = python_in(host, GET, f"https://{address(host)}:8443/fhir/r4/metadata").split("\n", 1)
    statement = json.loads(body)
    assert content_type == "application/fhir+json"
    assert statement["resourceType"] == "CapabilityStatement"
    assert (statement["status"], statement["kind"]) == ("active", "instance")
    assert statement["fhirVersion"] == "4.0.1"
    assert statement["format"] == ["json"]
    assert statement["rest"][0]["mode"] == "server"
    assert [r["type"] for r in statement["rest"][0]["resource"]] == ["Patient"]
