"""The TURN client's media engine without sockets: ChannelData framing, the statistics, the media probe's
configuration and metrics, and the loadtest's figures (plugins/module_utils/turn.py, src/medinfra/turn_load.py)."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import socket
import stat
import struct
import threading
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from medinfra.problems import UserInputError
from medinfra.turn import turn_module
from medinfra.turn_load import (
    LoadOptions,
    host_program,
    load_report,
    option_problems,
    report_text,
    run_loadtest,
    session_credentials,
    usage_figures,
)

turn: ModuleType = turn_module()

# The configuration the lead's role rtc_probe writes (the exact shape).
CONFIG: dict[str, Any] = {
    "relays": [{"name": "turn", "address": "10.231.40.10", "server_name": "10.231.40.10",
                "transports": [{"transport": "udp", "port": 3478}, {"transport": "tcp", "port": 3478},
                               {"transport": "tls", "port": 5349}, {"transport": "tls", "port": 443}]}],
    "ca_file": "/etc/medinfra/pki/ca.crt", "username": "1800000000:medinfra-rtc-probe-ws-01",
    "password": "c2VjcmV0LXBhc3N3b3Jk", "peer": {"address": "10.231.40.20", "port": 40001},
    "seconds": 3, "rate": 50, "size": 1000,
}


def stun_message() -> bytes:
    return bytes(turn.encode(turn.Message(turn.ALLOCATE | turn.REQUEST, secrets.token_bytes(12), ())))


# --- ChannelData framing ---

def test_channel_data_over_udp_is_header_and_payload_unpadded() -> None:
    assert turn.channel_data(0x4000, b"abcde", stream=False) == bytes.fromhex("40000005") + b"abcde"


def test_channel_data_over_tcp_is_padded_to_four_but_counts_the_payload_only() -> None:
    frame = turn.channel_data(0x7FFE, b"abcde", stream=True)
    assert frame == bytes.fromhex("7ffe0005") + b"abcde\0\0\0" and len(frame) % 4 == 0
    assert turn.channel_data(0x4001, b"abcd", stream=True) == bytes.fromhex("40010004") + b"abcd"


@pytest.mark.parametrize("channel", [0x3FFF, 0x7FFF, 0x8000])
def test_channel_numbers_outside_the_range_are_refused(channel: int) -> None:
    with pytest.raises(ValueError, match="outside 0x4000-0x7ffe"):
        turn.channel_data(channel, b"x", stream=False)


def test_a_datagram_is_told_stun_or_channel_data_by_its_first_two_bits() -> None:
    message = stun_message()
    assert turn.datagram_frame(message) == (0, message)
    assert turn.datagram_frame(turn.channel_data(0x4abc, b"media", stream=False)) == (0x4ABC, b"media")
    with pytest.raises(turn.TurnError, match="says 9 bytes, has 5"):
        turn.datagram_frame(bytes.fromhex("40000009") + b"media")


def test_a_tcp_stream_splits_into_stun_messages_and_padded_channel_data() -> None:
    message = stun_message()
    stream = (turn.channel_data(0x4001, b"xyz", stream=True) + message
              + turn.channel_data(0x4001, b"12345678", stream=True) + turn.channel_data(0x4002, b"tail", True))
    frames, rest = turn.split_stream(stream[:-3])
    assert frames == [(0x4001, b"xyz"), (0, message), (0x4001, b"12345678")]
    assert rest == stream[-8:-3]  # the last frame (8 bytes), incomplete, kept for the next read
    assert turn.split_stream(rest + stream[-3:]) == ([(0x4002, b"tail")], b"")


def test_a_stream_read_one_byte_at_a_time_gives_the_same_frames() -> None:
    message = stun_message()
    stream = turn.channel_data(0x4001, b"a" * 1001, True) + message + turn.channel_data(0x4001, b"b", True)
    frames, buffer = [], b""
    for byte in stream:
        found, buffer = turn.split_stream(buffer + bytes([byte]))
        frames += found
    assert frames == [(0x4001, b"a" * 1001), (0, message), (0x4001, b"b")] and buffer == b""


def test_a_stream_that_lost_its_framing_is_an_error() -> None:
    with pytest.raises(turn.TurnError, match="lost its framing: a frame starts with 0x8000"):
        turn.split_stream(bytes.fromhex("80000004") + b"abcd")


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_a_response_arriving_after_media_is_found_behind_the_channel_data(transport: str) -> None:
    """Relay.receive skips media still in flight (ChannelData) to the STUN message behind it."""
    kind = socket.SOCK_DGRAM if transport == "udp" else socket.SOCK_STREAM
    with socket.socket(socket.AF_INET, kind) as server:
        server.bind(("127.0.0.1", 0))
        if transport == "tcp":
            server.listen(1)
        relay = turn.Relay("127.0.0.1", server.getsockname()[1], transport, timeout=2)
        try:
            message = stun_message()
            media = turn.channel_data(0x4000, b"late media", stream=transport == "tcp")
            if transport == "tcp":
                peer, _ = server.accept()
                with peer:
                    peer.sendall(media + message[:7])
                    peer.sendall(message[7:])
                    assert relay.receive() == turn.decode(message)
            else:
                relay.sock.send(b"hello")  # for the server to learn the client's address
                client = server.recvfrom(16)[1]
                server.sendto(media, client)
                server.sendto(message, client)
                assert relay.receive() == turn.decode(message)
        finally:
            relay.close()


def test_a_lost_udp_request_is_sent_again_until_answered() -> None:
    """Over UDP the relay never sees the first two copies here (dropped as a lossy network would): the client
    sends the same transaction again after 0.5 s and 1 s more, and takes the answer to the third copy."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as server:
        server.bind(("127.0.0.1", 0))
        relay = turn.Relay("127.0.0.1", server.getsockname()[1], "udp", timeout=4)

        def answer_the_third() -> None:
            copies = [server.recvfrom(2048) for _ in range(3)]
            assert len({data for data, _ in copies}) == 1  # the same request, byte for byte
            request = turn.decode(copies[2][0])
            server.sendto(turn.encode(turn.Message(turn.ALLOCATE | turn.SUCCESS, request.transaction)), copies[2][1])

        worker = threading.Thread(target=answer_the_third)
        worker.start()
        try:
            response = relay.transact(turn.ALLOCATE)
        finally:
            worker.join(timeout=5)
            relay.close()
    assert response.kind == turn.SUCCESS


def test_a_udp_request_nobody_answers_fails_at_the_timeout() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as server:
        server.bind(("127.0.0.1", 0))
        relay = turn.Relay("127.0.0.1", server.getsockname()[1], "udp", timeout=1.2)
        try:
            with pytest.raises(turn.TurnError, match="no response to method 0x3"):
                relay.transact(turn.ALLOCATE)
            copies = 0
            server.settimeout(0.1)
            with contextlib.suppress(TimeoutError):
                while server.recvfrom(2048):
                    copies += 1
        finally:
            relay.close()
    assert copies == 2  # at 0 s and 0.5 s; the next would have been at 1.5 s


def test_once_a_session_cannot_reach_the_relay_the_rest_are_not_tried() -> None:
    """A relay that does not answer would cost every later session the same timeout: one try, then a reason."""
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]  # bound, never listening: connections are refused
        spec = turn.SessionSpec("turn", "127.0.0.1", port, "tcp", "", "", "1:u", "p", "127.0.0.1", 40001)
        result = turn.run_sessions([spec] * 3, 1, 50, 100)
    errors = [s["error"] for s in result["sessions"]]
    assert errors[0].startswith("ConnectionRefusedError"), errors
    assert errors[1:] == [f"not tried: session 1 could not reach 127.0.0.1:{port} over tcp"] * 2
    assert [s["allocated"] for s in result["sessions"]] == [False] * 3 and result["client_cpu_percent"] is None


def test_a_port_that_does_not_answer_does_not_stop_the_other_ports() -> None:
    """UDP blocked, TLS on 443 let through: each relay port is tried on its own."""
    with socket.socket() as closed, socket.socket() as other:
        closed.bind(("127.0.0.1", 0))
        other.bind(("127.0.0.1", 0))
        ports = closed.getsockname()[1], other.getsockname()[1]
        specs = [turn.SessionSpec("turn", "127.0.0.1", port, "tcp", "", "", "1:u", "p", "127.0.0.1", 40001)
                 for port in ports]
        result = turn.run_sessions(specs, 1, 50, 100)
    assert [s["error"].split(":")[0] for s in result["sessions"]] == ["ConnectionRefusedError"] * 2, result


def test_channel_bind_carries_the_channel_number_and_the_peer() -> None:
    transaction = secrets.token_bytes(12)
    request = turn.Message(turn.CHANNEL_BIND | turn.REQUEST, transaction,
                           ((turn.CHANNEL_NUMBER, struct.pack("!HH", 0x4000, 0)),
                            (turn.XOR_PEER_ADDRESS, turn.xor_address("10.231.40.20", 40001, transaction))))
    decoded = turn.decode(turn.encode(request))
    assert decoded.type == 0x0009 and decoded.get(0x000C) == bytes.fromhex("40000000")
    assert turn.parse_xor_address(decoded.get(turn.XOR_PEER_ADDRESS), transaction) == ("10.231.40.20", 40001)


# --- Statistics ---

def test_jitter_follows_rfc3550_by_hand() -> None:
    # Transits 10, 12, 11, 15 ms: D = 2, 1, 4 ms.
    # J1 = 2/16 = 0.125; J2 = 0.125 + (1 - 0.125)/16 = 0.1796875; J3 = 0.1796875 + (4 - 0.1796875)/16 = 0.41845703125
    assert turn.interarrival_jitter([0.010, 0.012, 0.011, 0.015]) == pytest.approx(0.00041845703125, abs=1e-15)


def test_jitter_of_a_steady_stream_is_zero_and_of_nothing_is_none() -> None:
    assert turn.interarrival_jitter([0.02] * 50) == 0.0
    assert turn.interarrival_jitter([0.02]) == 0.0
    assert turn.interarrival_jitter([]) is None


def test_percentiles_are_nearest_rank() -> None:
    values = [float(v) for v in range(20, 0, -1)]  # 20 .. 1, unsorted on purpose
    assert turn.percentile(values, 95) == 19.0  # rank ceil(0.95 * 20) = 19, not 20 through float rounding
    assert turn.percentile(values, 50) == 10.0
    assert turn.percentile([1.0, 2.0, 3.0, 4.0, 5.0], 50) == 3.0
    assert turn.percentile([7.0], 95) == 7.0
    assert turn.percentile([], 50) is None


def test_loss_counts_packets_never_echoed() -> None:
    assert turn.loss_ratio(150, 147) == pytest.approx(0.02)
    assert turn.loss_ratio(150, 150) == 0.0
    assert turn.loss_ratio(0, 0) is None


def session(transport: str, rtts: list[float], sent: int, allocated: bool = True) -> Any:
    spec = turn.SessionSpec("turn", "10.231.40.10", 3478, transport, "", "", "1:u", "p", "10.231.40.20", 40001)
    result = turn.Session(spec, allocated=allocated, ready=allocated, sent=sent, last_sequence=sent - 1)
    result.rtts = rtts
    result.echoed = set(range(len(rtts)))
    return result


def test_per_transport_summary_pools_rtts_averages_jitter_and_sums_loss() -> None:
    udp = [session("udp", [0.001, 0.002, 0.003], 4), session("udp", [0.010, 0.010], 2)]
    summary = turn.transport_summaries([*udp, session("tls", [0.005], 1)])
    assert summary["udp"]["rtt_p50"] == 0.003 and summary["udp"]["rtt_p95"] == 0.010
    assert summary["udp"]["loss_ratio"] == pytest.approx(1 / 6)
    jitters = [turn.interarrival_jitter(s.rtts) for s in udp]
    assert summary["udp"]["jitter"] == pytest.approx(sum(jitters) / 2)
    assert summary["tls"]["sent"] == 1 and summary["tls"]["loss_ratio"] == 0.0


def test_a_session_is_held_when_an_echo_of_its_last_second_came_back() -> None:
    early = session("udp", [0.001] * 100, 150)  # echoes of packets 0-99 only
    assert early.summary(150, 50)["held"] is False
    early.echoed.add(149)
    assert early.summary(150, 50)["held"] is True


def test_a_media_packet_carries_its_sequence_and_send_time() -> None:
    packet = turn.media_packet(7, 1234.5, 1000)
    assert len(packet) == 1000 and turn.MEDIA_HEADER.unpack_from(packet) == (7, 1234.5)


# --- The media probe's configuration ---

def test_the_role_s_configuration_gives_one_session_per_relay_port() -> None:
    specs, figures = turn.media_specs(CONFIG)
    assert [(s.transport, s.port) for s in specs] == [("udp", 3478), ("tcp", 3478), ("tls", 5349), ("tls", 443)]
    assert {s.peer for s in specs} == {"10.231.40.20"} and figures == {"seconds": 3, "rate": 50, "size": 1000}
    assert turn.credentials_expiry(specs[0].username) == 1800000000


def changed(path: str, value: Any) -> dict[str, Any]:
    """CONFIG with the value at a dotted path replaced (`relays.0.transports.1.port`); None deletes it."""
    config = json.loads(json.dumps(CONFIG))
    *parents, last = path.split(".")
    node: Any = config
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    if value is None:
        del node[last]
    else:
        node[last] = value
    return config


@pytest.mark.parametrize(("path", "value", "message"), [
    ("password", None, "password: missing"),
    ("password", "", "password: empty"),
    ("username", "medinfra-rtc-probe", "username: must be TURN REST credentials, EXPIRY:NAME"),
    ("relays", [], "relays: empty"),
    ("relays.0.address", "turn.example", "relays[0].address: 'turn.example' is not an IP address"),
    ("relays.0.transports.1.port", 70000, "relays[0].transports[1].port: 70000 is not a port number"),
    ("relays.0.transports.1.port", "3478", "relays[0].transports[1].port: must be int, not str"),
    ("relays.0.transports.2.transport", "dtls", "relays[0].transports[2].transport: 'dtls' is not one of"),
    ("ca_file", None, "ca_file: missing (needed to verify relays[0].transports[2], TLS)"),
    ("peer.port", True, "peer.port: must be int, not bool"),
    ("size", 8, "size: '8' is not a whole number from 12 to 1400"),
    ("rate", 0, "rate: '0' is not a whole number from 1 to 500"),
])
def test_a_wrong_configuration_names_the_key_and_never_the_password(path: str, value: Any, message: str) -> None:
    with pytest.raises(turn.ConfigError) as raised:
        turn.media_specs(changed(path, value))
    assert str(raised.value).startswith(message), str(raised.value)
    assert CONFIG["password"] not in str(raised.value)


def test_the_media_command_refuses_a_wrong_configuration_with_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "media.json"
    config.write_text(json.dumps(changed("peer.address", "media-01")))
    textfile = tmp_path / "medinfra_rtc.prom"
    assert turn.main(["media", "--config", str(config), "--textfile", str(textfile)]) == 2
    error = capsys.readouterr().err
    assert "media.json: peer.address: 'media-01' is not an IP address" in error and CONFIG["password"] not in error
    assert not textfile.exists()


def test_media_exercise_reports_a_wrong_request_as_an_error_entry() -> None:
    assert turn.media_exercise(changed("relays", None)) == {"error": "configuration: relays: missing"}
    assert turn.load_exercise({**CONFIG, "credentials": []})["error"].startswith("configuration: credentials")
    two_ports = turn.load_exercise({**CONFIG, "credentials": [["1:u", "p"]]})
    assert two_ports == {"error": "configuration: relays: a loadtest runs against one relay port, not 4"}


# --- Metrics ---

def summary(transport: str, port: int, allocated: bool, rtts: list[float], sent: int) -> dict[str, Any]:
    result = session(transport, rtts, sent, allocated)
    result.spec = turn.SessionSpec("turn", "10.231.40.10", port, transport, "", "", "1:u", "p", "10.231.40.20", 1)
    result.connect_seconds = 0.0021 if allocated else None
    return dict(result.summary(sent, 50))


def test_metrics_have_labels_per_port_and_nothing_made_up_for_a_failed_port(tmp_path: Path) -> None:
    sessions = [summary("udp", 3478, True, [0.001, 0.002, 0.004], 4), summary("tls", 443, False, [], 0)]
    path = tmp_path / "medinfra_rtc.prom"
    turn.write_textfile(str(path), turn.media_metrics(sessions, 1765000000.4, 1800000000), turn.MEDIA_HELP)
    text = path.read_text()
    udp = 'relay="turn",transport="udp",port="3478"'
    assert f"medinfra_rtc_probe_success{{{udp}}} 1\n" in text
    assert f'medinfra_rtc_rtt_seconds{{{udp},quantile="0.5"}} 0.002\n' in text
    assert f'medinfra_rtc_rtt_seconds{{{udp},quantile="0.95"}} 0.004\n' in text
    assert f"medinfra_rtc_loss_ratio{{{udp}}} 0.25\n" in text
    assert f"medinfra_rtc_connect_seconds{{{udp}}} 0.0021\n" in text
    assert f"medinfra_rtc_jitter_seconds{{{udp}}} " in text and f"medinfra_rtc_packets_sent{{{udp}}} 4\n" in text
    tls = 'relay="turn",transport="tls",port="443"'
    assert f"medinfra_rtc_probe_success{{{tls}}} 0\n" in text
    assert [line for line in text.splitlines() if tls in line and "success" not in line and "sent" not in line] == []
    assert "medinfra_rtc_probe_timestamp_seconds 1765000000\n" in text
    assert "medinfra_rtc_probe_credentials_expiry_timestamp_seconds 1800000000\n" in text
    # One HELP and TYPE per metric, before all its series.
    assert text.count("# TYPE medinfra_rtc_probe_success gauge") == 1
    lines = text.splitlines()
    assert lines.index("# TYPE medinfra_rtc_probe_success gauge") < min(
        i for i, line in enumerate(lines) if line.startswith("medinfra_rtc_probe_success{"))
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o644


def test_label_values_are_escaped() -> None:
    assert turn.label_text({"relay": 'a"b\\c\nd'}) == '{relay="a\\"b\\\\c\\nd"}'


# --- The relay's usage (recorded from coturn 4.6.1 in the lab) and the loadtest's figures ---

STAT = ("326 (turnserver) S 1 326 326 0 -1 4194560 18917 0 0 0 290 869 0 0 20 0 7 0 54313 486932480 5749 "
        "18446744073709551615 1 1 0 0 0 0 0 4096 2048 0 0 0 17 1 0 0 0 0 0 0 0 0 0 0 0 0 0")


def test_proc_usage_reads_utime_stime_and_rss() -> None:
    status = "Name:\tturnserver\nVmRSS:\t   23156 kB\n"
    assert turn.proc_usage(STAT, status) == (290 + 869, 23156)
    # A command name with blanks and parentheses does not shift the fields.
    assert turn.proc_usage(STAT.replace("(turnserver)", "(a) b (c)"), status) == (1159, 23156)


def test_usage_figures_use_only_the_samples_inside_the_engine_s_run() -> None:
    samples = [[99.0, 0.0, 1000], [100.0, 1.0, 2048], [102.0, 1.5, 4096], [104.0, 2.0, 3072], [110.0, 9.0, 9000]]
    figures = usage_figures(samples, 100.0, 104.5)
    assert figures == {"cpu_percent": 25.0, "peak_rss_mib": 4.0, "sampled_seconds": 4.0}
    assert usage_figures(samples[:1], 0, 200)["cpu_percent"] is None


def engine_session(allocated: bool, held: bool, code: int = 0, error: str = "") -> dict[str, Any]:
    return {"allocated": allocated, "held": held, "code": code, "error": error}


def test_the_report_names_the_first_refused_session_and_its_code() -> None:
    options = LoadOptions(Path("inv"), "guest-01", 14, 3, one_user=True)
    sessions = [engine_session(True, True)] * 12 + [engine_session(False, False, 486, "Allocation Quota Reached")] * 2
    engine = {"sessions": sessions, "started": 100.0, "media_ended": 104.0, "allocations_per_second": 250.0,
              "allocation_phase_seconds": 0.056, "transports": {"udp": {"loss_ratio": 0.0, "rtt_p50": 0.0004,
                                                                        "rtt_p95": 0.0009, "jitter": 0.0001}}}
    usage = {"samples": [[100.5, 1.0, 20480], [103.5, 1.3, 22528]]}
    report = load_report(options, "turn", engine, usage)
    assert (report["allocated"], report["held"], report["refused"], report["first_refused"]) == (12, 12, 2, 13)
    assert report["first_refused_code"] == 486 and not report["passed"]
    assert report["relay_cpu_percent"] == pytest.approx(10.0) and report["relay_peak_rss_mib"] == 22.0
    text = report_text(report)
    assert "2 not allocated from session 13 (486 Allocation Quota Reached)" in text
    assert "RTT p50 0.40 ms, p95 0.90 ms" in text and text.endswith("FAIL: not every session was held")


def test_loadtest_options_are_checked_before_any_host_is_read() -> None:
    options = LoadOptions(Path("/nonexistent"), "guest-01", 0, 1000, rate=0, transport="sctp", peer_port=0)
    assert [str(p).split(":")[0] for p in option_problems(options)] == [
        "--sessions", "--duration", "--rate", "--transport", "--peer-port"]
    with pytest.raises(UserInputError):
        run_loadtest(options)


def test_one_user_gives_every_session_the_same_credentials_else_one_each() -> None:
    secret = "x" * 48
    shared = session_credentials(secret, 3, True, 600, 1765000000)
    assert len({tuple(c) for c in shared}) == 1 and shared[0][0] == "1765000600:medinfra-loadtest"
    each = session_credentials(secret, 3, False, 600, 1765000000)
    assert [c[0] for c in each] == [f"1765000600:medinfra-loadtest-{n}" for n in (1, 2, 3)]
    assert each[0][1] == turn.rest_credentials(secret, 600, "medinfra-loadtest-1", 1765000000)[1]


def test_the_host_program_runs_turn_py_as_a_module_with_its_arguments() -> None:
    program = host_program("percentile", values=[3.0, 1.0, 2.0], percent=50)
    printed: list[str] = []
    exec(compile(program, "<program>", "exec"), {"print": printed.append, "__name__": "__main__"})
    assert printed == ["2.0"]  # nearest rank: the 2nd of 3
