"""A test listener: TCP accepts and greets, UDP echoes. Usage: python3 -c "$(cat listener.py)" tcp|udp PORT."""

import socket
import sys

proto, port = sys.argv[1], int(sys.argv[2])
if proto == "tcp":
    server = socket.create_server(("0.0.0.0", port))
    while True:
        connection, _ = server.accept()
        connection.sendall(b"hello\n")
        connection.close()
else:
    server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    server.bind(("0.0.0.0", port))
    while True:
        data, peer = server.recvfrom(512)
        server.sendto(data, peer)
