"""The SFTP probe reads the SSH identification string (RFC 4253 4.2) from fake servers on loopback."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import pytest

from plugins.module_utils import interface_probe as probe


def banner_server(data: bytes, linger: float = 3.0) -> int:
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        with listener:
            connection, _ = listener.accept()
            with connection:
                connection.sendall(data)
                time.sleep(linger)

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
    started = time.monotonic()
    outcome = probe.run_probe(sftp(banner_server(data), timeout=0.3), "")
    assert outcome.result == result
    assert time.monotonic() - started < 2  # the FTP greeting ends at the deadline, not when the peer closes


def test_silent_server_is_timeout() -> None:
    assert probe.run_probe(sftp(banner_server(b""), timeout=0.2), "").result == "timeout"


def test_closing_server_is_protocol_error() -> None:
    outcome = probe.run_probe(sftp(banner_server(b"", linger=0)), "")
    assert outcome.result == "protocol_error" and "no SSH identification string" in outcome.detail


def test_sftp_never_uses_tls(tmp_path: Path) -> None:
    config = tmp_path / "probe.json"
    config.write_text('{"interfaces": {"s": {"protocol": "sftp", "host": "127.0.0.1", "port": 22, "tls": true}}}')
    assert probe.load_config(str(config)).interfaces["s"].tls is False
