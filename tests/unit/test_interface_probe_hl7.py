"""HL7 v2 over MLLP: the probe against the lab's stand-in listener and against tiny fake peers, on loopback."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from plugins.module_utils import interface_probe as probe

IDENTITY = {
    "sending_application": "LIS",
    "sending_facility": "LAB",
    "receiving_application": "HIS",
    "receiving_facility": "LABHOSP",
}


def hl7_interface(port: int, timeout: float = 2.0) -> probe.Interface:
    return probe.Interface(
        name="lis-his-results",
        protocol="hl7v2-mllp",
        host="127.0.0.1",
        server_name="his-app",
        port=port,
        tls=False,
        identity=IDENTITY,
        timeout_seconds=timeout,
        latency_budget_seconds=0.5,
    )


@pytest.fixture
def standin(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    """The real stand-in on a loopback port, and its mode file (absent: AA)."""
    mode_file = tmp_path / "mode"
    server = probe.StandinServer(("127.0.0.1", 0), str(mode_file))
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield server.server_address[1], mode_file
    server.shutdown()
    server.server_close()


def exchange(port: int, payload: bytes, timeout: float = 2.0) -> bytes:
    """Send raw bytes to a listener and return its first framed answer (b'' when it closed)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(payload)
        return probe.MllpReader(sock).next(time.monotonic() + timeout) or b""


def fields_of(message: bytes) -> dict[str, list[str]]:
    """Segments by id, each as its fields split on '|' (an independent reading of the ACK)."""
    return {segment[:3]: segment.split("|") for segment in message.decode().split("\r") if segment}


def test_standin_acknowledges_the_probe_with_aa(standin: tuple[int, Path]) -> None:
    port, _ = standin
    outcome = probe.run_probe(hl7_interface(port), "")
    assert (outcome.result, outcome.up, outcome.detail) == ("ok", True, "")
    assert outcome.latency_seconds is not None and 0 < outcome.latency_seconds < 1


def test_standin_ack_swaps_identity_and_copies_processing_id(standin: tuple[int, Path]) -> None:
    port, _ = standin
    message = "MSH|^~\\&|LIS|LAB|HIS|LABHOSP|20261206120000||ORU^R01^ORU_R01|CTRL0001|T|2.5\rPID|1||123\r"
    ack = fields_of(exchange(port, probe.frame(message)))
    msh = ack["MSH"]
    # msh[0] is "MSH", msh[1] MSH-2 (the separator is MSH-1), so MSH-n is msh[n - 1].
    assert msh[1] == "^~\\&"
    assert (msh[2], msh[3], msh[4], msh[5]) == ("HIS", "LABHOSP", "LIS", "LAB")
    assert msh[8] == "ACK^R01^ACK"
    assert msh[9] and msh[9] != "CTRL0001"
    assert msh[10] == "T"
    assert ack["MSA"][:3] == ["MSA", "AA", "CTRL0001"]


def test_standin_mode_file_switches_to_ae_and_back(standin: tuple[int, Path]) -> None:
    port, mode_file = standin
    mode_file.write_text("AE\n")
    outcome = probe.run_probe(hl7_interface(port), "")
    assert outcome.result == "ack_negative" and not outcome.up
    assert outcome.detail.startswith("MSA-1 AE")
    assert outcome.latency_seconds is not None  # an answer came
    mode_file.write_text("AA")
    assert probe.run_probe(hl7_interface(port), "").result == "ok"


def test_silent_standin_is_ack_missing_at_the_deadline(standin: tuple[int, Path]) -> None:
    port, mode_file = standin
    mode_file.write_text("silent")
    started = time.monotonic()
    outcome = probe.run_probe(hl7_interface(port, timeout=0.4), "")
    elapsed = time.monotonic() - started
    assert outcome.result == "ack_missing" and outcome.latency_seconds is None
    assert "before the deadline" in outcome.detail
    assert 0.35 < elapsed < 1.5


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        ("PID|1||123\r", "does not start with MSH"),
        ("MSH^~\\&|LIS\r", "field separator"),
        ("MSH|^~|LIS|LAB|HIS|LABHOSP|20261206||ADT^A01|C1|P|2.5\r", "encoding characters"),
        ("MSH|^~\\&|LIS|LAB|HIS|LABHOSP|20261206||ADT^A01||P|2.5\r", "MSH-10"),
        ("MSH|^~\\&|LIS|LAB|HIS|LABHOSP|20261206||ADT^A01|C2\r", "MSH-11"),
    ],
)
def test_standin_rejects_invalid_messages_with_ar(standin: tuple[int, Path], message: str, reason: str) -> None:
    port, _ = standin
    ack = fields_of(exchange(port, probe.frame(message)))
    assert ack["MSA"][1] == "AR"
    assert reason in ack["MSA"][3]


def test_standin_answers_ar_even_in_silent_mode_and_survives_garbage(standin: tuple[int, Path]) -> None:
    port, mode_file = standin
    mode_file.write_text("silent")
    # Garbage outside any frame, then an invalid frame, on the same connection.
    assert fields_of(exchange(port, b"\x00\xff junk" + probe.frame("hello")))["MSA"][1] == "AR"
    with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
        sock.sendall(probe.MLLP_START + b"x" * 1000)  # an unfinished frame, then gone
    mode_file.write_text("AA")
    assert probe.run_probe(hl7_interface(port), "").result == "ok"


def test_standin_closes_an_oversized_frame(standin: tuple[int, Path]) -> None:
    port, _ = standin
    # The listener may close while we still send: a reset is the answer the test wants, as is EOF.
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as sock,
        contextlib.suppress(BrokenPipeError, ConnectionResetError),
    ):
        sock.sendall(probe.MLLP_START + b"A" * (probe.MAX_MESSAGE_BYTES + 70000))
        assert sock.recv(100) == b""


def test_standin_serves_connections_concurrently(standin: tuple[int, Path]) -> None:
    port, mode_file = standin
    mode_file.write_text("silent")
    idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(5)]
    for sock in idle:
        sock.sendall(probe.frame(probe.probe_message(IDENTITY, "SILENT1")))
    mode_file.write_text("AA")
    try:
        assert probe.run_probe(hl7_interface(port), "").result == "ok"
    finally:
        for sock in idle:
            sock.close()


def fake_peer(answer: Callable[[bytes], bytes | None]) -> tuple[int, threading.Thread]:
    """A one-connection MLLP peer answering the first message with `answer(message)` (None: close)."""
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        with listener:
            connection, _ = listener.accept()
            with connection:
                message = probe.MllpReader(connection).next(time.monotonic() + 3)
                reply = answer(message or b"")
                if reply is not None:
                    connection.sendall(reply)
                    time.sleep(3)  # stay open: the probe must decide by itself

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return listener.getsockname()[1], thread


def answering(code: str, control_id: Callable[[str], str] = lambda own: own) -> Callable[[bytes], bytes]:
    def answer(message: bytes) -> bytes:
        own = message.decode().split("\r")[0].split("|")[9]
        header = "MSH|^~\\&|HIS|LABHOSP|LIS|LAB|20261206||ACK^N02^ACK|X1|T|2.5"
        return probe.frame(f"{header}\rMSA|{code}|{control_id(own)}\r")

    return answer


def test_ack_for_another_control_id_is_ack_missing() -> None:
    port, _ = fake_peer(answering("AA", lambda own: "SOMEONE-ELSE"))
    outcome = probe.run_probe(hl7_interface(port, timeout=2.0), "")
    assert outcome.result == "ack_missing"
    assert "SOMEONE-ELSE" in outcome.detail


@pytest.mark.parametrize(("code", "result"), [("CA", "ok"), ("AR", "ack_negative"), ("CR", "ack_negative")])
def test_acknowledgement_codes(code: str, result: str) -> None:
    port, _ = fake_peer(answering(code))
    assert probe.run_probe(hl7_interface(port), "").result == result


def test_peer_closing_or_answering_garbage_is_ack_missing() -> None:
    port, _ = fake_peer(lambda message: None)
    closed = probe.run_probe(hl7_interface(port), "")
    assert closed.result == "ack_missing" and "closed" in closed.detail
    port, _ = fake_peer(lambda message: probe.MLLP_START + b"garbage" + probe.MLLP_END)
    garbage = probe.run_probe(hl7_interface(port), "")
    assert garbage.result == "ack_missing" and "not an HL7 ACK" in garbage.detail


def test_refused_connection_is_connect_failed() -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
    assert probe.run_probe(hl7_interface(port), "").result == "connect_failed"


def test_probe_message_is_a_test_nmd_with_the_configured_identity() -> None:
    message = probe.probe_message(IDENTITY, "MI0123")
    fields = probe.msh_fields(message)
    assert fields[3:13] == ["LIS", "LAB", "HIS", "LABHOSP", fields[7], "", "NMD^N02^NMD_N02", "MI0123", "T", "2.5"]
    assert probe.new_control_id() != probe.new_control_id()
    assert len(probe.new_control_id()) <= 20


def run_main(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = probe.main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_probe_command_prints_json_and_exit_code(
    standin: tuple[int, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    port, mode_file = standin
    config = tmp_path / "probe.json"
    entry = {"protocol": "hl7v2-mllp", "host": "127.0.0.1", "port": port, "tls": False, "identity": IDENTITY}
    config.write_text(json.dumps({"ca_file": "", "interfaces": {"lis-his-results": entry}}))
    code, out, _ = run_main(capsys, "probe", "--config", str(config), "lis-his-results")
    result = json.loads(out)
    assert code == 0
    assert set(result) == {"interface", "up", "result", "latency_seconds", "detail"}
    assert (result["interface"], result["up"], result["result"]) == ("lis-his-results", True, "ok")
    mode_file.write_text("AE")
    code, out, _ = run_main(capsys, "probe", "--config", str(config), "lis-his-results")
    assert (code, json.loads(out)["result"]) == (1, "ack_negative")


@pytest.mark.parametrize(
    ("content", "fault"),
    [
        (None, "cannot be read"),
        ("{not json", "is not JSON"),
        ('{"interfaces": []}', "`interfaces` object"),
        ('{"interfaces": {"x": {"protocol": "smtp", "host": "h", "port": 25}}}', "interfaces.x.protocol"),
        ('{"interfaces": {"x": {"protocol": "sftp", "host": "h", "port": 70000}}}', "interfaces.x.port"),
        ('{"interfaces": {"x": {"protocol": "hl7v2-mllp", "host": "h", "port": 1, "identity": {}}}}', "sending_app"),
        ('{"interfaces": {"x": {"protocol": "https", "host": "h", "port": 1, "tls": true}}}', "ca_file"),
        ('{"interfaces": {"x": {"protocol": "sftp", "host": "h", "port": 1, "timeout_seconds": 0}}}', "timeout"),
    ],
)
def test_bad_config_is_a_located_error_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str | None, fault: str
) -> None:
    config = tmp_path / "probe.json"
    if content is not None:
        config.write_text(content)
    code, out, err = run_main(capsys, "probe", "--config", str(config), "x")
    assert (code, out) == (2, "")
    assert str(config) in err and fault in err
    assert "Traceback" not in err


def test_unknown_interface_is_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "probe.json"
    config.write_text('{"interfaces": {"sftp-a": {"protocol": "sftp", "host": "h", "port": 22}}}')
    code, _, err = run_main(capsys, "probe", "--config", str(config), "nope")
    assert code == 2 and "no interface 'nope'" in err and "sftp-a" in err
