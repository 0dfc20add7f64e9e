"""The stdlib C-ECHO against real DICOM implementations (Debian's dcmtk: storescp, dcmqrscp) and a fake SCP for
the answers dcmtk cannot be told to give (a refused presentation context, a failed C-ECHO status)."""

from __future__ import annotations

import shutil
import socket
import struct
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from plugins.module_utils import interface_probe as probe


def dicom_interface(port: int, called_ae: str = "LABPACS01", timeout: float = 3.0) -> probe.Interface:
    return probe.Interface(
        name="ws-pacs-dicom",
        protocol="dicom",
        host="127.0.0.1",
        server_name="pacs-01",
        port=port,
        tls=False,
        identity={"calling_ae": "WS01-VIEWER", "called_ae": called_ae},
        timeout_seconds=timeout,
        latency_budget_seconds=1.0,
    )


def free_port() -> int:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port: int = listener.getsockname()[1]
        return port


def dcmtk(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        pytest.fail(f"{tool} (Debian package dcmtk) is not installed: run scripts/install-deps.sh")
    return path


def wait_for_port(port: int, process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"{process.args} exited with {process.returncode}: {process.communicate()[0]}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.02)
    pytest.fail(f"{process.args} did not listen on {port} within 5 s")


@pytest.fixture
def run_scp(tmp_path: Path) -> Iterator[Callable[..., tuple[int, subprocess.Popen[str]]]]:
    """Starts a dcmtk SCP on a free loopback port: run_scp(tool, *options) -> (port, process). With `config`, the
    port is written into that file (for PORT) instead of given as the last argument."""
    processes: list[subprocess.Popen[str]] = []

    def start(tool: str, *options: str, config: Path | None = None) -> tuple[int, subprocess.Popen[str]]:
        port = free_port()
        if config is None:
            options = (*options, str(port))
        else:
            config.write_text(config.read_text().replace("PORT", str(port)))
        command = [dcmtk(tool), *options]
        process = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        processes.append(process)
        wait_for_port(port, process)
        return port, process

    yield start
    for process in processes:
        process.terminate()
        process.communicate(timeout=5)


def test_echo_against_storescp(run_scp: Callable[..., tuple[int, subprocess.Popen[str]]], tmp_path: Path) -> None:
    port, scp = run_scp("storescp", "--debug", "--aetitle", "LABPACS01", "-od", str(tmp_path))
    outcome = probe.run_probe(dicom_interface(port), "")
    assert (outcome.result, outcome.detail) == ("ok", "")
    assert outcome.latency_seconds is not None and 0 < outcome.latency_seconds < 1
    scp.terminate()
    log = scp.communicate(timeout=5)[0]
    # What dcmtk understood of our association and command: the AE titles, our implementation, a clean release.
    assert "Called Application Name:     LABPACS01" in log
    assert "Calling Application Name:    WS01-VIEWER" in log
    assert f"Their Implementation Class UID:    {probe.IMPLEMENTATION_CLASS_UID}" in log
    assert "Received Echo Request" in log
    assert "Association Release" in log


def test_refused_association_is_association_rejected(run_scp: Callable[..., tuple[int, subprocess.Popen[str]]]) -> None:
    port, _ = run_scp("storescp", "--refuse")
    outcome = probe.run_probe(dicom_interface(port), "")
    assert outcome.result == "association_rejected"
    assert outcome.detail.startswith("A-ASSOCIATE-RJ permanently")


def test_unknown_called_ae_is_association_rejected(
    run_scp: Callable[..., tuple[int, subprocess.Popen[str]]], tmp_path: Path
) -> None:
    storage = tmp_path / "db"
    storage.mkdir()
    config = tmp_path / "dcmqrscp.cfg"
    # dcmqrscp checks the called AE title against its AE table (and crashes in --single-process mode: it forks).
    config.write_text(
        "NetworkTCPPort = PORT\nMaxPDUSize = 16384\nMaxAssociations = 4\n"
        "HostTable BEGIN\nHostTable END\nVendorTable BEGIN\nVendorTable END\n"
        f"AETable BEGIN\nLABPACS01 {storage} RW (10, 1024mb) ANY\nAETable END\n"
    )
    port, _ = run_scp("dcmqrscp", "-c", str(config), config=config)
    assert probe.run_probe(dicom_interface(port, called_ae="LABPACS01"), "").result == "ok"
    wrong = probe.run_probe(dicom_interface(port, called_ae="NOTLABPACS"), "")
    assert wrong.result == "association_rejected"
    assert wrong.detail == "A-ASSOCIATE-RJ permanently: called AE title not recognized"


# ---------------------------------------------------------------- a fake SCP for answers dcmtk will not give


def fake_scp(answers: Callable[[socket.socket], None]) -> int:
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        with listener:
            connection, _ = listener.accept()
            with connection:
                answers(connection)

    threading.Thread(target=serve, daemon=True).start()
    port: int = listener.getsockname()[1]
    return port


def read_pdu(connection: socket.socket) -> tuple[int, bytes]:
    return probe.read_pdu(connection, time.monotonic() + 3)


def accept_with(result: int) -> bytes:
    """A-ASSOCIATE-AC answering presentation context 1 with `result` (0 accepted)."""
    context = struct.pack(">BxBx", 1, result) + probe.pdu_item(0x40, probe.IMPLICIT_LITTLE_ENDIAN.encode())
    body = struct.pack(">H2x", 1) + b"LABPACS01".ljust(16) + b"WS01-VIEWER".ljust(16) + bytes(32)
    body += probe.pdu_item(0x10, probe.APPLICATION_CONTEXT.encode()) + probe.pdu_item(0x21, context)
    return probe.pdu(probe.ASSOCIATE_AC, body)


def test_refused_presentation_context_is_association_rejected() -> None:
    def answers(connection: socket.socket) -> None:
        read_pdu(connection)
        connection.sendall(accept_with(3))
        time.sleep(1)

    outcome = probe.run_probe(dicom_interface(fake_scp(answers)), "")
    assert outcome.result == "association_rejected"
    assert "abstract syntax (Verification) not supported" in outcome.detail


def test_abort_during_association_is_association_rejected() -> None:
    def answers(connection: socket.socket) -> None:
        read_pdu(connection)
        connection.sendall(probe.pdu(probe.ABORT, bytes([0, 0, 2, 0])))

    outcome = probe.run_probe(dicom_interface(fake_scp(answers)), "")
    assert outcome.result == "association_rejected" and "A-ABORT" in outcome.detail


def test_abort_in_answer_to_the_echo_is_association_rejected() -> None:
    def answers(connection: socket.socket) -> None:
        read_pdu(connection)
        connection.sendall(accept_with(0))
        read_pdu(connection)
        connection.sendall(probe.pdu(probe.ABORT, bytes([0, 0, 0, 0])))

    outcome = probe.run_probe(dicom_interface(fake_scp(answers)), "")
    assert outcome.result == "association_rejected"
    assert outcome.detail == "A-ABORT (source 0, reason 0) in answer to the C-ECHO-RQ"


def test_failed_echo_status_is_echo_failed() -> None:
    def answers(connection: socket.socket) -> None:
        kind, _ = read_pdu(connection)
        assert kind == probe.ASSOCIATE_RQ
        connection.sendall(accept_with(0))
        kind, data = read_pdu(connection)
        # The request, read independently: PDV header, then the command's elements.
        assert kind == probe.P_DATA_TF and data[4:6] == b"\x01\x03"
        elements = probe.command_elements(data[6:])
        assert elements[0x0000] == struct.pack("<I", len(data) - 6 - 12)
        assert elements[0x0002] == b"1.2.840.10008.1.1\0"
        assert elements[0x0100] == b"\x30\x00" and elements[0x0800] == b"\x01\x01"
        response = probe.element(0x0002, elements[0x0002]) + probe.element(0x0100, b"\x30\x80")
        response += probe.element(0x0120, elements[0x0110]) + probe.element(0x0800, b"\x01\x01")
        response += probe.element(0x0900, struct.pack("<H", 0x0110))
        connection.sendall(probe.pdu(probe.P_DATA_TF, struct.pack(">IBB", len(response) + 2, 1, 0x03) + response))
        time.sleep(1)

    outcome = probe.run_probe(dicom_interface(fake_scp(answers)), "")
    assert (outcome.result, outcome.detail) == ("echo_failed", "C-ECHO-RSP status 0x0110")


def test_silent_scp_is_timeout() -> None:
    outcome = probe.run_probe(dicom_interface(fake_scp(lambda connection: time.sleep(1)), timeout=0.3), "")
    assert (outcome.result, outcome.latency_seconds) == ("timeout", None)
