"""The PACS stand-in on a live container: HTTPS and DICOM-over-TLS endpoints verified against the site CA."""

from __future__ import annotations

from typing import Any

from tests.container import python_in

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


def connect(host: Any, port: int, payload: str) -> str:
    address = host.check_output("hostname -I").split()[0]
    return python_in(host, CONNECT, address, str(port), payload)


def test_web_answers_over_verified_tls(host: Any) -> None:
    answer = connect(host, 443, "GET / HTTP/1.0\r\n\r\n")
    assert answer.startswith("TLSv1.3")
    assert answer.endswith("medinfra lab stand-in: pacs on " + host.check_output("hostname"))


def test_dicom_port_answers_over_verified_tls(host: Any) -> None:
    assert "medinfra lab stand-in: pacs" in connect(host, 104, "A-ASSOCIATE")


def test_key_readable_by_nginx_only(host: Any) -> None:
    key = host.file("/etc/medinfra/pki/clinical-standin.key")
    assert (key.user, key.group, key.mode) == ("root", "www-data", 0o640)
    assert host.service("nginx").is_enabled
