"""A loopback SSH server standing in for a host's sshd in unit tests: password login, and each `exec` request run
with `sh -c` as sshd would (stdin, stdout, stderr and the exit status carried over the channel).

Run as a program: `python sshd_standin.py PASSWORD [USER=COMMAND]...`; it prints its port on the first line of
stdout and serves until killed. A USER=COMMAND pair makes a hostile host of that login: whatever it is asked to
run, it runs COMMAND instead (with the same stdin, so it sees what a real host would, passwords included).
"""

from __future__ import annotations

import contextlib
import logging
import socket
import subprocess
import sys
import threading
from typing import IO, Any

import paramiko


class Server(paramiko.ServerInterface):
    def __init__(self, password: str, replacements: dict[str, str]) -> None:
        self.password = password
        self.replacements = replacements
        self.user = ""
        self.command: bytes | None = None
        self.asked = threading.Event()

    def get_allowed_auths(self, username: str) -> str:
        return "password"

    def check_auth_password(self, username: str, password: str) -> int:
        self.user = username
        return paramiko.AUTH_SUCCESSFUL if password == self.password else paramiko.AUTH_FAILED

    def check_channel_request(self, kind: str, chanid: int) -> int:
        return paramiko.OPEN_SUCCEEDED if kind == "session" else paramiko.OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED

    def check_channel_exec_request(self, channel: Any, command: bytes) -> bool:
        self.command = self.replacements[self.user].encode() if self.user in self.replacements else command
        self.asked.set()
        return True


def pump(stream: IO[bytes], send: Any, process: subprocess.Popen[bytes]) -> None:
    try:
        while data := stream.read1(65536):  # type: ignore[attr-defined]
            send(data)
    except OSError:  # the client closed the channel (it read enough): stop the command too
        process.kill()


def feed(channel: paramiko.Channel, process: subprocess.Popen[bytes]) -> None:
    assert process.stdin is not None
    with contextlib.suppress(OSError):  # the command stopped reading, or the client went
        while data := channel.recv(65536):
            process.stdin.write(data)
        process.stdin.close()


def run(channel: paramiko.Channel, command: bytes) -> None:
    process = subprocess.Popen(
        ["sh", "-c", command.decode()], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert process.stdout is not None and process.stderr is not None
    threads = [
        threading.Thread(target=feed, args=(channel, process), daemon=True),
        threading.Thread(target=pump, args=(process.stdout, channel.sendall, process)),
        threading.Thread(target=pump, args=(process.stderr, channel.sendall_stderr, process)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads[1:]:
        thread.join()
    status = process.wait()
    with contextlib.suppress(OSError):  # the client may have gone already
        channel.send_exit_status(status)
    channel.close()


def serve(connection: socket.socket, key: paramiko.PKey, password: str, replacements: dict[str, str]) -> None:
    transport = paramiko.Transport(connection)
    transport.add_server_key(key)
    server = Server(password, replacements)
    try:
        transport.start_server(server=server)
    except paramiko.SSHException:
        return
    while transport.is_active():
        channel = transport.accept(1)
        if channel is None:
            continue
        if server.asked.wait(10) and server.command is not None:
            run(channel, server.command)
        server.asked.clear()


def main() -> None:
    # The honest host's collector probes every local TLS port, this one too: no tracebacks for its handshakes.
    logging.getLogger("paramiko").setLevel(logging.CRITICAL)
    password = sys.argv[1]
    replacements = dict(pair.split("=", 1) for pair in sys.argv[2:])
    key = paramiko.ECDSAKey.generate()
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    print(listener.getsockname()[1], flush=True)
    while True:
        connection, _ = listener.accept()
        threading.Thread(target=serve, args=(connection, key, password, replacements), daemon=True).start()


if __name__ == "__main__":
    main()
