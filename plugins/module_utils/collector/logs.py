"""journald settings and where rsyslog forwards, from its configuration without comments."""

from __future__ import annotations

import os
import re

from .base import Json, at_root, key_values, read_text, sorted_files


def rsyslog_uncommented(text: str) -> str:
    """rsyslog configuration without its comments: `/* ... */` blocks (RainerScript, may span lines) and `#` to
    the end of a line, outside quoted strings."""
    kept = re.sub(r'("(?:[^"\\]|\\.)*")|/\*.*?\*/|#[^\n]*', lambda m: m.group(1) or "", text, flags=re.S)
    return "\n".join(line.strip() for line in kept.splitlines() if line.strip())


def rsyslog_forwards(root: str = "/") -> list[dict[str, Json]]:
    """Where rsyslog forwards, from its configuration without comments (omfwd actions and legacy @/@@ lines)."""
    files = ["/etc/rsyslog.conf", *sorted_files("/etc/rsyslog.d/*.conf", root)]
    uncommented = rsyslog_uncommented("\n".join(read_text(at_root(path, root)) or "" for path in files))
    forwards = []
    for action in re.findall(r'action\(([^)]*type="omfwd"[^)]*)\)', uncommented, flags=re.S):
        params = dict(re.findall(r'([\w.]+)="([^"]*)"', action))
        forwards.append(
            {
                "target": params.get("target", ""),
                "port": int(params.get("port", "514")),
                "protocol": params.get("protocol", "udp"),
                "tls": params.get("StreamDriverMode", params.get("streamdrivermode", "")) == "1",
            }
        )
    for proto, target, port in re.findall(
        r"^\S+\s+(@@?)\(?[^\s:]*\)?([\w.\-\[\]:]+?)(?::(\d+))?$", uncommented, flags=re.M
    ):
        forwards.append(
            {"target": target, "port": int(port or 514), "protocol": "tcp" if proto == "@@" else "udp", "tls": False}
        )
    return forwards


def collect_logging() -> Json:
    journald_files = ["/etc/systemd/journald.conf", *sorted_files("/etc/systemd/journald.conf.d/*.conf")]
    journald = key_values([at_root(path) for path in journald_files], separator="=")
    return {
        "journald": journald,
        "journal_persistent_dir": os.path.isdir(at_root("/var/log/journal")),
        "forwards": rsyslog_forwards(),
    }
