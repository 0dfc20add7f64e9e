"""The media-quality probe's echo on a media server: every UDP datagram from an allowed relay goes back unchanged.

Standard library only. It answers only the TURN relays' addresses (the host firewall admits only them as well), and
a reply is never larger than the request, so it cannot amplify anything.
"""

from __future__ import annotations

import argparse
import ipaddress
import socket
import sys


def echo(sock: socket.socket, allowed: frozenset[str]) -> None:
    while True:
        data, peer = sock.recvfrom(65535)
        if peer[0] in allowed:
            sock.sendto(data, peer)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", required=True, help="the address to listen on")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--allow", nargs="+", required=True, help="the relays' addresses")
    arguments = parser.parse_args(argv)
    allowed = frozenset(str(ipaddress.ip_address(address)) for address in arguments.allow)
    family = socket.AF_INET6 if ipaddress.ip_address(arguments.listen).version == 6 else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    sock.bind((arguments.listen, arguments.port))
    echo(sock, allowed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
