"""STUN Binding round trips from a lab host: run there as `python3 -c SOURCE SERVER PORT COUNT INTERVAL_MS WAIT_S`.

Sends COUNT Binding requests (RFC 5389, no credentials: a relay answers them to anyone) every INTERVAL_MS without
waiting for answers, then waits up to WAIT_S for the last ones; prints {"sent": COUNT, "rtt_ms": [...]} with one
round-trip time per answered request. Standard library only: it runs on the lab hosts.
"""

import json
import select
import socket
import struct
import sys
import time

MAGIC_COOKIE = 0x2112A442
BINDING_REQUEST, BINDING_SUCCESS = 0x0001, 0x0101


def main() -> None:
    server, port_text, count_text, interval_text, wait_text = sys.argv[1:6]
    port, count, interval, wait = int(port_text), int(count_text), float(interval_text), float(wait_text)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.connect((server, port))
    sock.setblocking(False)
    sent: dict[bytes, float] = {}
    answered: dict[bytes, float] = {}
    next_send = time.monotonic()
    deadline = float("inf")
    while len(answered) < count:
        now = time.monotonic()
        if len(sent) < count and now >= next_send:
            transaction = struct.pack("!4xQ", len(sent))
            sock.send(struct.pack("!HHI", BINDING_REQUEST, 0, MAGIC_COOKIE) + transaction)
            sent[transaction] = now
            next_send += interval / 1000
            if len(sent) == count:
                deadline = now + wait
        if now >= deadline:
            break
        timeout = next_send - now if len(sent) < count else deadline - now
        if select.select([sock], [], [], max(timeout, 0))[0]:
            try:
                data = sock.recv(2048)
            except ConnectionRefusedError:
                continue
            kind, _, cookie = struct.unpack_from("!HHI", data) if len(data) >= 20 else (0, 0, 0)
            transaction = data[8:20]
            if kind == BINDING_SUCCESS and cookie == MAGIC_COOKIE and transaction in sent:
                answered.setdefault(transaction, (time.monotonic() - sent[transaction]) * 1000)
    print(json.dumps({"sent": count, "rtt_ms": sorted(answered.values())}))


main()
