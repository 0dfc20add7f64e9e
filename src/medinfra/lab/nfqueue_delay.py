"""Hold the packets of one NFQUEUE queue for a delay plus a random jitter, then let them go (NF_ACCEPT).

`medinfra lab netem` ships this file into the lab's zone firewall container and runs it there as a transient systemd
unit, where the kernel has no netem qdisc. Standard library only (python3-netfilterqueue is not in Debian 12): a raw
AF_NETLINK socket speaking nfnetlink_queue. It binds the queue in copy-packet mode with a small copy range (only the
packet id is needed; the first bytes of the IP header help when debugging), and answers each NFQNL_MSG_PACKET with an
NFQNL_MSG_VERDICT once the packet's time is due.

Each packet's delay is drawn on its own from a normal distribution (mean DELAY, standard deviation JITTER, cut at
4 standard deviations either side and at 0), as netem's `delay DELAY JITTER distribution normal` does. Packets are
released in the order their times fall due, not the order they came in: like netem, jitter reorders packets.
On SIGTERM every packet still held is let go at once, so replacing the settings loses nothing.
"""

from __future__ import annotations

import argparse
import heapq
import os
import random
import select
import signal
import socket
import struct
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from types import FrameType

NETLINK_NETFILTER = 12
SOL_NETLINK = 270
NETLINK_NO_ENOBUFS = 5
NLMSG_HEADER = struct.Struct("=IHHII")  # length, type, flags, sequence, port id (host byte order)
NLA_HEADER = struct.Struct("=HH")  # length, type
NLA_TYPE_MASK = 0x3FFF  # without NLA_F_NESTED and NLA_F_NET_BYTEORDER
NLM_F_REQUEST = 0x1
NLM_F_ACK = 0x4
NLMSG_ERROR = 2
NFGENMSG = struct.Struct("!BBH")  # family, version, resource id (the queue number, big-endian)
NFNETLINK_V0 = 0
NFNL_SUBSYS_QUEUE = 3
NFQNL_MSG_PACKET = 0
NFQNL_MSG_VERDICT = 1
NFQNL_MSG_CONFIG = 2
NFQA_PACKET_HDR = 1
NFQA_VERDICT_HDR = 2
NFQA_PAYLOAD = 10
NFQA_CFG_CMD = 1
NFQA_CFG_PARAMS = 2
NFQA_CFG_QUEUE_MAXLEN = 3
NFQNL_CFG_CMD_BIND = 1
NFQNL_COPY_PACKET = 2
PACKET_HEADER = struct.Struct("!IHB")  # packet id, hardware protocol, hook
NF_ACCEPT = 1
# Bytes of each packet copied to us: the IPv4 header and the ports, for debugging; the verdict needs only the id.
COPY_RANGE = 64
# Packets the kernel holds for us before it drops new ones (netem's `limit`, default 1000): 10000 lets 200 ms of
# delay carry 50,000 packets a second, more than a lab relay test sends.
QUEUE_MAXLEN = 10000
# A normal draw is cut here, as netem's distribution tables stop near 4 standard deviations.
JITTER_CUT = 4.0
RECEIVE_BUFFER = 4 * 1024 * 1024
RECEIVE_SIZE = 256 * 1024


@dataclass(frozen=True)
class QueuedPacket:
    """One NFQNL_MSG_PACKET: what the kernel asks a verdict for."""

    queue: int
    packet_id: int
    hw_protocol: int  # the EtherType: 0x0800 for IPv4
    hook: int  # the netfilter hook: 4 is postrouting
    payload: bytes  # the first COPY_RANGE bytes of the packet


def attribute(kind: int, value: bytes) -> bytes:
    """One netlink attribute, padded to 4 bytes."""
    return NLA_HEADER.pack(NLA_HEADER.size + len(value), kind) + value + b"\0" * (-len(value) % 4)


def nfqueue_message(kind: int, queue: int, flags: int, sequence: int, attributes: bytes) -> bytes:
    """A netlink message of the nfnetlink_queue subsystem: header, nfgenmsg (naming the queue), attributes."""
    body = NFGENMSG.pack(socket.AF_UNSPEC, NFNETLINK_V0, queue) + attributes
    message_type = (NFNL_SUBSYS_QUEUE << 8) | kind
    return NLMSG_HEADER.pack(NLMSG_HEADER.size + len(body), message_type, flags, sequence, 0) + body


def bind_message(queue: int, sequence: int) -> bytes:
    """Bind the queue to this socket, copy COPY_RANGE bytes of each packet, hold up to QUEUE_MAXLEN (acknowledged)."""
    attributes = (
        attribute(NFQA_CFG_CMD, struct.pack("!BxH", NFQNL_CFG_CMD_BIND, socket.AF_UNSPEC))
        + attribute(NFQA_CFG_PARAMS, struct.pack("!IB", COPY_RANGE, NFQNL_COPY_PACKET))
        + attribute(NFQA_CFG_QUEUE_MAXLEN, struct.pack("!I", QUEUE_MAXLEN))
    )
    return nfqueue_message(NFQNL_MSG_CONFIG, queue, NLM_F_REQUEST | NLM_F_ACK, sequence, attributes)


def verdict_message(queue: int, packet_id: int, verdict: int = NF_ACCEPT) -> bytes:
    """Decide one packet's fate (not acknowledged: an error would come back as NLMSG_ERROR)."""
    attributes = attribute(NFQA_VERDICT_HDR, struct.pack("!II", verdict, packet_id))
    return nfqueue_message(NFQNL_MSG_VERDICT, queue, NLM_F_REQUEST, 0, attributes)


def netlink_messages(data: bytes) -> Iterator[tuple[int, bytes]]:
    """The (type, body) of each netlink message in one datagram the kernel sent."""
    offset = 0
    while offset + NLMSG_HEADER.size <= len(data):
        length, kind, _, _, _ = NLMSG_HEADER.unpack_from(data, offset)
        if length < NLMSG_HEADER.size or offset + length > len(data):
            raise ValueError(f"netlink message of length {length} at offset {offset} overruns {len(data)} bytes")
        yield kind, data[offset + NLMSG_HEADER.size : offset + length]
        offset += (length + 3) & ~3


def attributes_of(data: bytes) -> dict[int, bytes]:
    """The attributes of a message body, by type (the last one of a type wins)."""
    found: dict[int, bytes] = {}
    offset = 0
    while offset + NLA_HEADER.size <= len(data):
        length, kind = NLA_HEADER.unpack_from(data, offset)
        if length < NLA_HEADER.size:
            raise ValueError(f"netlink attribute of length {length} at offset {offset}")
        found[kind & NLA_TYPE_MASK] = data[offset + NLA_HEADER.size : offset + length]
        offset += (length + 3) & ~3
    return found


def decode_packet(body: bytes) -> QueuedPacket:
    """An NFQNL_MSG_PACKET's body (after the netlink header)."""
    _, _, queue = NFGENMSG.unpack_from(body)
    found = attributes_of(body[NFGENMSG.size :])
    if NFQA_PACKET_HDR not in found:
        raise ValueError("NFQNL_MSG_PACKET without NFQA_PACKET_HDR")
    packet_id, hw_protocol, hook = PACKET_HEADER.unpack_from(found[NFQA_PACKET_HDR])
    return QueuedPacket(queue, packet_id, hw_protocol, hook, found.get(NFQA_PAYLOAD, b""))


def netlink_error(body: bytes) -> int:
    """The (negative) errno of an NLMSG_ERROR; 0 is an acknowledgement."""
    error: int = struct.unpack_from("=i", body)[0]
    return error


def draw_delay(delay: float, jitter: float, rng: random.Random) -> float:
    """One packet's delay in seconds: normal around ``delay``, cut at JITTER_CUT standard deviations and at 0."""
    if jitter <= 0:
        return delay
    low, high = max(0.0, delay - JITTER_CUT * jitter), delay + JITTER_CUT * jitter
    return min(max(rng.gauss(delay, jitter), low), high)


def open_queue(queue: int) -> socket.socket:
    """A netlink socket bound to ``queue``; raises OSError naming the kernel's refusal."""
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
    # A full receive buffer drops packets (as a full netem queue does) instead of failing our next recv.
    sock.setsockopt(SOL_NETLINK, NETLINK_NO_ENOBUFS, 1)
    sock.bind((0, 0))
    sock.send(bind_message(queue, 1))
    for kind, body in netlink_messages(sock.recv(RECEIVE_SIZE)):
        if kind == NLMSG_ERROR and (error := netlink_error(body)) != 0:
            sock.close()
            raise OSError(-error, f"binding NFQUEUE {queue}: {os.strerror(-error)}")
    return sock


def notify_ready() -> None:
    """Tell systemd (Type=notify) the queue is bound, so `systemd-run` returns only once packets are taken."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return
    if address.startswith("@"):
        address = "\0" + address[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify:
        notify.sendto(b"READY=1", address)


def stop(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)


def run(queue: int, delay: float, jitter: float) -> None:
    """Hold each packet of ``queue`` for its drawn delay; on exit let every held packet go."""
    sock = open_queue(queue)
    rng = random.Random()
    held: list[tuple[float, int, int]] = []  # (due, arrival order, packet id): a heap by due time
    arrivals = 0
    signal.signal(signal.SIGTERM, stop)
    notify_ready()
    print(f"NFQUEUE {queue}: delay {delay * 1000:g} ms, jitter {jitter * 1000:g} ms (normal)", flush=True)
    try:
        while True:
            wait = max(held[0][0] - time.monotonic(), 0.0) if held else None
            if select.select([sock], [], [], wait)[0]:
                now = time.monotonic()
                for kind, body in netlink_messages(sock.recv(RECEIVE_SIZE)):
                    if kind == (NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_PACKET:
                        packet = decode_packet(body)
                        arrivals += 1
                        heapq.heappush(held, (now + draw_delay(delay, jitter, rng), arrivals, packet.packet_id))
            now = time.monotonic()
            while held and held[0][0] <= now:
                sock.send(verdict_message(queue, heapq.heappop(held)[2]))
    finally:
        for _, _, packet_id in held:
            sock.send(verdict_message(queue, packet_id))
        sock.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queue", type=int, required=True, help="the NFQUEUE number to bind")
    parser.add_argument("--delay-ms", type=float, required=True, help="mean delay in milliseconds")
    parser.add_argument("--jitter-ms", type=float, default=0.0, help="standard deviation in milliseconds")
    args = parser.parse_args(argv)
    try:
        run(args.queue, args.delay_ms / 1000, args.jitter_ms / 1000)
    except OSError as error:
        print(f"nfqueue_delay: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
