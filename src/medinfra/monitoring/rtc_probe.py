"""What a vantage host's media-quality probe measures, from the topology alone (pure).

A vantage host (service ``rtc_probe``: a workstation in the clinical zone, a small box on the guest Wi-Fi) streams
RTP-sized packets through each TURN relay to an echo on a media server, over every transport its zone's flows let
it use: UDP and TCP on the listening port, TLS on the TLS port and on the 443 fallback. A transport the firewall must
drop would only raise a false alarm, so it is left out and listed with the reason, as the interface probe does.

The probe holds time-limited TURN credentials, never the relay's secret. They expire on a weekly boundary plus
``credential_days``, so every converge within a week writes the same credentials (idempotent) and a site that
converges at least weekly never lets them lapse; the probe exports their expiry so an alert says when it would.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from medinfra.segmentation.rules import intended
from medinfra.topology.model import Host, Topology

PROBE_SERVICE = "rtc_probe"
RELAY_SERVICE = "turn_relay"
MEDIA_SERVICE = "media_server"
WEEK_SECONDS = 7 * 86400
DAY_SECONDS = 86400


@dataclass(frozen=True)
class RelayPorts:
    """A relay's listening ports as its role rtc_relay sets them; ``alt_tls`` 0 means no 443 fallback."""

    listening: int = 3478
    tls: int = 5349
    alt_tls: int = 0

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RelayPorts:
        return cls(int(data.get("listening", 3478)), int(data.get("tls", 5349)), int(data.get("alt_tls") or 0))

    def candidates(self) -> list[tuple[str, str, int]]:
        """(transport, IP protocol, port) in the order a WebRTC client tries them: UDP first, the 443 fallback last."""
        found = [("udp", "udp", self.listening), ("tcp", "tcp", self.listening), ("tls", "tcp", self.tls)]
        return found + ([("tls", "tcp", self.alt_tls)] if self.alt_tls else [])


def probe_transports(
    topology: Topology, vantage: Host, relay: Host, ports: RelayPorts
) -> tuple[list[dict[str, Any]], list[str]]:
    """The transports a flow lets the vantage use to reach the relay, and why each other one is left out."""
    reachable: list[dict[str, Any]] = []
    skipped: list[str] = []
    for transport, proto, port in ports.candidates():
        if intended(topology, vantage, relay, proto, port):
            reachable.append({"transport": transport, "port": port})
        else:
            skipped.append(f"{transport} to {relay.name}:{port}: no {proto} flow from {vantage.name}")
    return reachable, skipped


def echo_peer(topology: Topology, relays: list[Host], port: int) -> Host:
    """The first media server every relay may send UDP to on the echo port (ValueError if none)."""
    for host in topology.hosts:
        if MEDIA_SERVICE in host.services and all(intended(topology, r, host, "udp", port) for r in relays):
            return host
    names = ", ".join(r.name for r in relays)
    raise ValueError(f"no host with the {MEDIA_SERVICE} service that the relays ({names}) may reach on udp {port}")


def credential_expiry(now: float, days: int) -> int:
    """When the probe's credentials expire: ``days`` after the next weekly boundary, the same all week."""
    return (int(now) // WEEK_SECONDS + 1) * WEEK_SECONDS + days * DAY_SECONDS


def probe_config(
    topology: Topology,
    vantage: Host,
    relay_ports: Mapping[str, RelayPorts],
    credentials: tuple[str, str],
    *,
    ca_file: str,
    echo_port: int,
    seconds: int,
    rate: int,
    size: int,
) -> tuple[dict[str, Any], list[str]]:
    """The probe's JSON configuration (its shape is `medinfra-turn-probe media --config`'s) and what it leaves out.

    ``relay_ports`` names the relays (hosts with the turn_relay service) and their ports; ``credentials`` is the
    (username, password) pair the vantage uses on all of them."""
    relays = [topology.host(name) for name in sorted(relay_ports)]
    missing = [r.name for r in relays if RELAY_SERVICE not in r.services]
    if missing:
        raise ValueError(f"{', '.join(missing)} has no {RELAY_SERVICE} service")
    if not relays:
        raise ValueError(f"the topology has no host with the {RELAY_SERVICE} service to probe")
    peer = echo_peer(topology, relays, echo_port)
    entries: list[dict[str, Any]] = []
    skipped: list[str] = []
    for relay in relays:
        transports, left_out = probe_transports(topology, vantage, relay, relay_ports[relay.name])
        skipped += left_out
        if transports:
            address = str(relay.address)
            entries.append({"name": relay.name, "address": address, "server_name": address, "transports": transports})
    if not entries:
        raise ValueError(f"no flow lets {vantage.name} reach a relay: " + "; ".join(skipped))
    username, password = credentials
    config = {
        "relays": entries,
        "ca_file": ca_file,
        "username": username,
        "password": password,
        "peer": {"address": str(peer.address), "port": echo_port},
        "seconds": seconds,
        "rate": rate,
        "size": size,
    }
    return config, skipped
