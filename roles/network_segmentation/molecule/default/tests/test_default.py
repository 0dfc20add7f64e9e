"""Real packets across the scenario's zones after network_segmentation: the matrix, the table, other tables."""

from __future__ import annotations

import json
import os
import re
import subprocess

import pytest

PROBE = """
import socket, sys
proto, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
try:
    if proto == "tcp":
        socket.create_connection((host, port), timeout=2).close()
    else:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.settimeout(2)
        s.sendto(b"ping", (host, port))
        s.recv(16)
    print("open")
except ConnectionRefusedError:
    print("refused")
except OSError:
    print("blocked")
"""

DB, PC, ADMIN = "10.235.30.10", "10.235.20.10", "10.235.10.10"


def podman(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["podman", *args], capture_output=True, text=True, check=False, timeout=60)


def probe(source: str, proto: str, address: str, port: int) -> str:
    done = podman("exec", source, "python3", "-c", PROBE, proto, address, str(port))
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@pytest.mark.parametrize(
    ("source", "proto", "address", "port", "expected"),
    [
        ("seg-ward-pc", "tcp", DB, 5432, "open"),  # declared: ward -> records-db 5432
        ("seg-ward-pc", "tcp", DB, 5433, "blocked"),  # a listener, but no flow
        ("seg-ward-pc", "udp", DB, 5140, "open"),  # declared UDP, answered by the echo listener
        ("seg-ward-pc", "udp", DB, 5141, "blocked"),
        ("seg-ward-pc", "tcp", DB, 22, "blocked"),  # SSH only from management
        ("seg-admin", "tcp", DB, 22, "open"),
        ("seg-admin", "tcp", DB, 5432, "blocked"),  # management may administer, not query the database
        ("seg-records-db", "tcp", PC, 5432, "blocked"),  # nothing declared towards the ward
        # Another role's opening on the admin host, from the router (same zone): let in, nobody listens there.
        ("seg-router", "tcp", ADMIN, 8080, "refused"),
        ("seg-router", "tcp", ADMIN, 8081, "blocked"),
        ("seg-ward-pc", "tcp", ADMIN, 8080, "blocked"),  # the opening names its source; others stay out
    ],
)
def test_reachability_matrix(source, proto, address, port, expected):
    assert probe(source, proto, address, port) == expected


def ruleset(container: str) -> dict:
    done = podman("exec", container, "nft", "-j", "list", "ruleset")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def chains(container: str) -> dict[str, dict]:
    return {
        item["chain"]["name"]: item["chain"]
        for item in ruleset(container)["nftables"]
        if "chain" in item and item["chain"]["table"] == "medinfra"
    }


def test_every_host_drops_by_default_and_only_the_router_filters_forwarding():
    for container in ("seg-router", "seg-admin", "seg-ward-pc", "seg-records-db"):
        found = chains(container)
        assert found["input"]["policy"] == "drop" and found["input"]["hook"] == "input"
        assert ("forward" in found) == (container == "seg-router")
    assert chains("seg-router")["forward"]["policy"] == "drop"


def test_other_tables_survive(host):
    tables = {item["table"]["name"] for item in ruleset("seg-records-db")["nftables"] if "table" in item}
    assert tables == {"medinfra", "othertool"}  # ours, and the one prepare.yml made for another tool


def test_the_table_is_loaded_at_boot_and_private(host):
    assert host.service("medinfra-nftables.service").is_enabled
    ruleset_file = host.file("/etc/medinfra/nftables.nft")
    assert ruleset_file.mode == 0o640 and ruleset_file.user == "root"
    rollback = host.file("/etc/medinfra/nftables.rollback.nft")
    assert rollback.mode == 0o600 and rollback.user == "root"


def test_drops_are_counted_and_no_rollback_is_left_armed(host):
    chain = host.check_output("nft list chain inet medinfra input")
    # What each counted drop matches: invalid packets, then whatever no rule accepted (the chain's last rule).
    drops = re.findall(r"^[ \t]*(.*?)[ \t]*counter packets \d+ bytes \d+ drop$", chain, flags=re.M)
    assert drops == ["ct state invalid", ""], chain
    assert not host.service("medinfra-nft-rollback.timer").is_running


def test_check_mode_shows_the_change_without_applying_it(host):
    """A new flow under --check --diff: the diff names it, the table in force does not have it."""
    env = {**os.environ, "ANSIBLE_FORCE_COLOR": "0"}
    scenario = os.path.join(os.environ["MOLECULE_SCENARIO_DIRECTORY"])
    done = subprocess.run(
        # The inventory directory: Molecule's instances and the scenario's hospital.yml.
        ["ansible-playbook", "-i", os.path.dirname(os.environ["MOLECULE_INVENTORY_FILE"]), "--check", "--diff",
         "-l", "seg-records-db",
         "-e", json.dumps({"network_segmentation_openings": [{"proto": "tcp", "ports": [6000], "from": ["ward"]}]}),
         os.path.join(scenario, "converge.yml")],
        capture_output=True, text=True, check=False, env=env, timeout=300,
    )
    assert done.returncode == 0, done.stdout[-3000:]
    assert "tcp dport 6000" in done.stdout
    # The recap's changes on the one host ("changed=" alone is in every recap, changed or not): the table file
    # written, and the report that the table in force differs from it (changed_when: true); nothing applied.
    changed = re.findall(r"^seg-records-db\s+: ok=\d+\s+changed=(\d+)", done.stdout, flags=re.M)
    assert [int(n) for n in changed] == [2], done.stdout[-3000:]
    assert "6000" not in host.check_output("nft list table inet medinfra")
