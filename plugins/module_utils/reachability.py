"""Reachability probes that `medinfra segmentation verify` runs on a host: Python standard library only.

The controller appends `main({...})` with the plan: this host's name, the connections to try (each with
the outcome the topology intends) and whether to record the verdict for the audit. Outcomes:
- TCP: connected, or refused by the destination host (no listener) = reached; no answer = blocked.
- UDP: an answer, or ICMP port-unreachable from the destination = reached; silence = silent (a
  listener that does not answer looks the same as a drop, so silence never counts as reached).
- ICMP: an echo reply = reached; none = blocked (a raw socket: the probe runs as root).
Prints one JSON document; with PLAN["record"] (the host's medinfra_paths.state directory), also writes
segmentation.json there (0640), where the audit's collector reads it.
"""

from __future__ import annotations

import json
import os
import socket
import struct
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

RECORD_FILE = "segmentation.json"
RECORD_FORMAT = "medinfra-segmentation/1"
PAYLOAD = b"medinfra-segmentation-probe"


def probe_tcp(address: str, port: int, timeout: float) -> tuple[str, str]:
    try:
        socket.create_connection((address, port), timeout=timeout).close()
        return "reached", "connected"
    except ConnectionRefusedError:
        return "reached", "refused by the destination (nothing listens)"
    except TimeoutError:
        return "blocked", "no answer"
    except OSError as exc:
        return "blocked", exc.strerror or str(exc)


def probe_udp(address: str, port: int, timeout: float) -> tuple[str, str]:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.connect((address, port))
            sock.send(PAYLOAD)
            sock.recv(512)
            return "reached", "answered"
        except ConnectionRefusedError:
            return "reached", "port unreachable from the destination (nothing listens)"
        except TimeoutError:
            return "silent", "no answer (dropped, or a listener that stays silent)"
        except OSError as exc:
            return "blocked", exc.strerror or str(exc)


def checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF


def probe_icmp(address: str, sequence: int, timeout: float) -> tuple[str, str]:
    ident = os.getpid() & 0xFFFF
    header = struct.pack("!BBHHH", 8, 0, 0, ident, sequence)
    packet = struct.pack("!BBHHH", 8, 0, checksum(header + PAYLOAD), ident, sequence) + PAYLOAD
    with socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP) as sock:
        sock.sendto(packet, (address, 0))
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            sock.settimeout(left)
            try:
                data, peer = sock.recvfrom(1024)
            except TimeoutError:
                break
            start = (data[0] & 0x0F) * 4
            kind, _code, _sum, reply_ident, reply_sequence = struct.unpack("!BBHHH", data[start : start + 8])
            if peer[0] == address and kind == 0 and (reply_ident, reply_sequence) == (ident, sequence):
                return "reached", "echo reply"
    return "blocked", "no echo reply"


def run_probe(index: int, probe: dict[str, Any], timeout: float) -> dict[str, Any]:
    proto, address, port = probe["proto"], probe["address"], int(probe.get("port") or 0)
    if proto == "tcp":
        observed, detail = probe_tcp(address, port, timeout)
    elif proto == "udp":
        observed, detail = probe_udp(address, port, timeout)
    else:
        observed, detail = probe_icmp(address, index & 0xFFFF, timeout)
    return {**probe, "observed": observed, "detail": detail}


def verdict(result: dict[str, Any]) -> str:
    """ok, unexpected, or unconfirmed (a silent UDP port the topology allows)."""
    if result["observed"] == "silent":
        return "ok" if result["expected"] == "blocked" else "unconfirmed"
    reached = result["observed"] == "reached"
    return "ok" if reached == (result["expected"] == "allowed") else "unexpected"


def record(results: list[dict[str, Any]], host: str, directory: str) -> None:
    counts = {name: sum(1 for r in results if r["verdict"] == name) for name in ("ok", "unexpected", "unconfirmed")}
    document = {
        "format": RECORD_FORMAT,
        "host": host,
        "verified_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "probes": len(results),
        **counts,
        "unexpected_probes": [r for r in results if r["verdict"] == "unexpected"],
    }
    os.makedirs(directory, mode=0o750, exist_ok=True)
    path = os.path.join(directory, RECORD_FILE)
    temporary = path + ".tmp"
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        json.dump(document, handle, indent=1)
    os.replace(temporary, path)


def main(plan: dict[str, Any]) -> None:
    probes, timeout = plan["probes"], float(plan.get("timeout", 2.0))
    with ThreadPoolExecutor(max_workers=min(32, max(1, len(probes)))) as pool:
        results = list(pool.map(lambda item: run_probe(item[0], item[1], timeout), enumerate(probes)))
    for result in results:
        result["verdict"] = verdict(result)
    if plan.get("record"):
        record(results, plan["host"], plan["record"])
    json.dump({"format": RECORD_FORMAT, "host": plan["host"], "results": results}, sys.stdout)
