"""The SFTP probe reads the SSH identification string (RFC 4253 4.2) from fake servers on loopback."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from plugins.module_utils import interface_probe as probe


def banner_server(data: bytes) -> int:
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        with listener:
            connection, _ = listener.accept()
            with connection:
                connection.sendall(data)
                time.sleep(0.5)

    threading.Thread(target=serve, daemon=True).start()
    port: int = listener.getsockname()[1]
    return port


def sftp(port: int, timeout: float = 2.0) -> probe.Interface:
    # tls: true in a config is ignored for SFTP (SSH is its own transport); run_probe sees what load_config gives.
    return probe.Interface("lis-sftp", "sftp", "127.0.0.1", "lis-legacy", port, False, {}, timeout, 1.0)


@pytest.mark.parametrize(
    ("data", "result"),
    [
        (b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n", "ok"),
        (b"Welcome to the LIS gateway\r\nSSH-2.0-Gateway\r\n", "ok"),
        (b"SSH-1.5-ancient\r\n", "protocol_error"),
        (b"220 ftp.example.test FTP server ready\r\n", "protocol_error"),
    ],
)
def test_ssh_banner(data: bytes, result: str) -> None:
    outcome = probe.run_probe(sftp(banner_server(data)), "")
    assert outcome.result == result


def test_silent_server_is_timeout() -> None:
    assert probe.run_probe(sftp(banner_server(b""), timeout=0.2), "").result == "timeout"


def test_sftp_never_uses_tls(tmp_path) -> None:
    config = tmp_path / "probe.json"
    config.write_text('{"interfaces": {"s": {"protocol": "sftp", "host": "127.0.0.1", "port": 22, "tls": true}}}')
    assert probe.load_config(str(config)).interfaces["s"].tls is False
