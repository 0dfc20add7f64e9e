"""Interfaces and routes (`ip -json`): the host's own addresses, and which interface a packet from or to an
address uses, so that the controller can give its firewall probes the interfaces the kernel would."""

from __future__ import annotations

import json

from .base import Json, command_failure, run

ADDRESS_COMMAND = ["ip", "-json", "address", "show"]
# IPv4 only: the zones are IPv4 networks. IPv6 probes then have no known interface, so a rule on an interface
# other than lo gives no verdict for them (a failure), never a pass; one process less on every host.
ROUTE_COMMAND = ["ip", "-json", "-4", "route", "show", "table", "main"]


def collect_network() -> Json:
    outputs = []
    for argv in (ADDRESS_COMMAND, ROUTE_COMMAND):
        rc, out, err = run(argv)
        if rc != 0:
            return command_failure(argv, rc, err)
        outputs.append(out)
    return network_facts(*outputs)


def network_facts(addresses_text: str, routes_text: str) -> Json:
    """`ip -json address show` and `ip -json -4 route show`: each interface with its
    addresses in CIDR form, and each route of the main table with its destination ("default", a network, or an
    address) and the device it leaves by (none for unreachable, blackhole and prohibit routes)."""
    interfaces = []
    for interface in json.loads(addresses_text or "[]"):
        addresses = [f"{info['local']}/{info['prefixlen']}" for info in interface.get("addr_info", [])
                     if isinstance(info, dict) and "local" in info and "prefixlen" in info]
        interfaces.append({"name": str(interface.get("ifname", "")), "state": str(interface.get("operstate", "")),
                           "addresses": addresses})
    routes = []
    for route in json.loads(routes_text or "[]"):
        routes.append({"destination": str(route.get("dst", "")), "type": str(route.get("type", "unicast")),
                       "device": route.get("dev"), "gateway": route.get("gateway")})
    return {"interfaces": interfaces, "routes": routes}


def local_addresses(network: Json) -> list[str]:
    """Every address of the host's interfaces (loopback included), without prefix lengths. Also read on the
    controller from a host's evidence, so items of the wrong shape are skipped."""
    if not isinstance(network, dict) or not isinstance(network.get("interfaces"), list):
        return []
    return sorted({str(address).split("/", maxsplit=1)[0]
                   for interface in network["interfaces"] if isinstance(interface, dict)
                   for address in interface.get("addresses") or ()})
