"""Listening sockets with their process, and systemd units enabled or masked by the administrator."""

from __future__ import annotations

import glob
import os
import socket

from .base import Json, at_root, command_failure, read_text, run


def socket_owners() -> dict[str, str]:
    """Socket inode -> process name, from /proc/<pid>/fd."""
    owners: dict[str, str] = {}
    proc = at_root("/proc")
    for pid in os.listdir(proc):
        if not pid.isdigit():
            continue
        comm = (read_text(f"{proc}/{pid}/comm") or "?").strip()
        try:
            fds = os.listdir(f"{proc}/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(f"{proc}/{pid}/fd/{fd}")
            except OSError:
                continue
            if target.startswith("socket:["):
                owners.setdefault(target[8:-1], comm)
    return owners


def decode_address(hex_address: str, ipv6: bool) -> str:
    raw = bytes.fromhex(hex_address)
    if ipv6:
        words = b"".join(raw[i : i + 4][::-1] for i in range(0, 16, 4))
        return socket.inet_ntop(socket.AF_INET6, words)
    return socket.inet_ntop(socket.AF_INET, raw[::-1])


def collect_sockets() -> Json:
    owners = socket_owners()
    listeners = []
    for proto, listen_state in (("tcp", "0A"), ("tcp6", "0A"), ("udp", "07"), ("udp6", "07")):
        text = read_text(at_root(f"/proc/net/{proto}"))
        for line in (text or "").splitlines()[1:]:
            fields = line.split()
            if len(fields) < 10 or fields[3] != listen_state:
                continue
            address_hex, port_hex = fields[1].split(":")
            if proto.startswith("udp") and fields[2].split(":")[0].strip("0") != "":
                continue  # connected UDP socket, not a listener
            address = decode_address(address_hex, proto.endswith("6"))
            listeners.append(
                {
                    "protocol": proto.rstrip("6"),
                    "family": "ipv6" if proto.endswith("6") else "ipv4",
                    "address": address,
                    "port": int(port_hex, 16),
                    "process": owners.get(fields[9], "?"),
                    "uid": int(fields[7]),
                    "loopback_only": address.startswith("127.") or address == "::1",
                }
            )
    listeners.sort(key=lambda s: (s["protocol"], s["port"], s["family"], s["address"]))
    return {"listening": listeners}


UNIT_DIRS = ("/etc/systemd/system", "/run/systemd/system", "/usr/lib/systemd/system", "/lib/systemd/system")


def enabled_units() -> dict[str, str]:
    """Units enabled or masked by the administrator, read from the symlinks `systemctl enable` makes.

    `systemctl list-unit-files` gives the same answer but costs systemd ~0.3 s of CPU per call,
    which dominates an audit of a hundred hosts sharing a few cores.
    """
    states: dict[str, str] = {}
    for base, state in (("/etc/systemd/system", "enabled"), ("/run/systemd/system", "enabled-runtime")):
        for link in glob.glob(at_root(f"{base}/*.wants/*")) + glob.glob(at_root(f"{base}/*.requires/*")):
            states.setdefault(os.path.basename(link), state)
        for entry in glob.glob(at_root(f"{base}/*")):
            if os.path.islink(entry) and os.path.realpath(entry) == "/dev/null":
                states[os.path.basename(entry)] = "masked"
    return states


def unit_file_state(name: str) -> str:
    """disabled (installable, not enabled), static (no [Install]) or generated (no unit file)."""
    for directory in UNIT_DIRS:
        text = read_text(at_root(f"{directory}/{name}"))
        if text is not None:
            return "disabled" if "[Install]" in text else "static"
    return "generated"


def collect_services() -> Json:
    argv = ["systemctl", "list-units", "--all", "--type=service,socket,timer", "--plain", "--no-legend", "--no-pager"]
    rc, out, err = run(argv)
    if rc != 0:
        return command_failure(argv, rc, err)
    enabled = enabled_units()
    units: dict[str, dict[str, str]] = {}
    for line in out.splitlines():
        fields = line.split()
        if len(fields) >= 4 and fields[0].endswith((".service", ".socket", ".timer")):
            load = fields[1]
            state = load if load in ("masked", "not-found") else enabled.get(fields[0]) or unit_file_state(fields[0])
            units[fields[0]] = {"enabled": state, "active": fields[2], "sub": fields[3]}
    for name, state in enabled.items():
        if name.endswith((".service", ".socket", ".timer")):
            units.setdefault(name, {"enabled": state, "active": "inactive", "sub": "dead"})
    return {"units": dict(sorted(units.items()))}
