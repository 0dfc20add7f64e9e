"""`medinfra segmentation verify` without a lab: the plan, the probe script on real sockets, the matrix."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from medinfra.package_data import hostside_source
from medinfra.segmentation.rules import intended
from medinfra.segmentation.verify import Probe, host_observations, matrix_text, plan, probe_script, summary
from medinfra.topology.load import load_topology

LAB = load_topology(Path("inventories/lab/hospital.yml"))


def test_the_plan_tries_every_flow_and_samples_every_zone_pair():
    probes = [p for items in plan(LAB).values() for p in items]
    by_host = {h.name: h for h in LAB.hosts}
    assert "fw" not in {p.source for p in probes} | {p.destination for p in probes}  # the router is not an endpoint
    for flow in LAB.flows:
        assert any(p.expected == "allowed" and p.reason == flow.purpose and p.proto == flow.proto for p in probes), flow
    for probe in probes:
        source, destination = by_host[probe.source], by_host[probe.destination]
        assert bool(intended(LAB, source, destination, probe.proto, probe.port)) == (probe.expected == "allowed")
        assert not (destination.legacy and destination.zone == source.zone and probe.expected == "blocked")
    pairs = {(by_host[p.source].zone, by_host[p.destination].zone) for p in probes if p.expected == "blocked"}
    endpoints = [h for h in LAB.hosts if "zone_firewall" not in h.services]
    crowded = {z.name for z in LAB.zones if sum(h.zone == z.name for h in endpoints) > 1}
    assert pairs == {(a.name, b.name) for a in LAB.zones for b in LAB.zones if a != b or a.name in crowded}
    assert len({(p.source, p.address, p.proto, p.port) for p in probes}) == len(probes)


def run_probe_script(probes: list[Probe], record: str | None = None) -> dict:
    script = probe_script(hostside_source("reachability.py"), "here", probes, 0.5, record)
    done = subprocess.run([sys.executable, "-I", "-S", "-"], input=script, capture_output=True, text=True,
                          check=False, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_the_verdict_is_recorded_in_the_state_directory_the_collector_reads(tmp_path):
    """A site that moved medinfra_paths.state: verify records there, and the audit's collector finds it."""
    import socket

    from medinfra.collector import collector_module

    state = tmp_path / "srv" / "medinfra-state"
    closed = socket.create_server(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()
    run_probe_script([Probe("here", "there", "127.0.0.1", "tcp", port, "blocked", "refused")], str(state))
    assert (state / "segmentation.json").stat().st_mode & 0o777 == 0o640
    seen = collector_module().collect_segmentation(str(state))
    assert seen["recorded"] is True and seen["probes"] == 1 and seen["unexpected"] == 1
    run_probe_script([Probe("here", "there", "127.0.0.1", "tcp", port, "blocked", "refused")], None)
    assert sorted(p.name for p in state.iterdir()) == ["segmentation.json"]


def test_the_probe_script_tells_reached_from_refused():
    import socket

    listener = socket.create_server(("127.0.0.1", 0))
    closed = socket.create_server(("127.0.0.1", 0))
    closed_port = closed.getsockname()[1]
    closed.close()
    probes = [
        Probe("here", "there", "127.0.0.1", "tcp", listener.getsockname()[1], "allowed", "listener"),
        Probe("here", "there", "127.0.0.1", "tcp", closed_port, "blocked", "refused counts as reached"),
        Probe("here", "there", "127.0.0.1", "udp", closed_port, "allowed", "port unreachable counts as reached"),
    ]
    results = run_probe_script(probes)["results"]
    listener.close()
    assert [(r["observed"], r["verdict"]) for r in results] == [
        ("reached", "ok"), ("reached", "unexpected"), ("reached", "ok")
    ]


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("nft") is None, reason="needs root and nftables")
def test_dropped_packets_are_blocked_and_the_verdict_is_recorded(tmp_path):
    """In a private network namespace: nft drops one TCP and one UDP port on loopback."""
    probes = [
        Probe("here", "there", "127.0.0.1", "tcp", 4711, "blocked", "dropped"),
        Probe("here", "there", "127.0.0.1", "udp", 4712, "blocked", "dropped"),
        Probe("here", "there", "127.0.0.1", "icmp", None, "allowed", "loopback echo"),
    ]
    script = probe_script(hostside_source("reachability.py"), "here", probes, 0.5, None)
    rules = ("add table inet t; add chain inet t in { type filter hook input priority 0; }; "
             "add rule inet t in tcp dport 4711 drop; add rule inet t in udp dport 4712 drop")
    done = subprocess.run(
        ["unshare", "--net", "sh", "-c", f"ip link set lo up && nft '{rules}' && {sys.executable} -I -S -"],
        input=script, capture_output=True, text=True, check=False, timeout=60,
    )
    assert done.returncode == 0, done.stderr
    results = json.loads(done.stdout)["results"]
    assert [(r["observed"], r["verdict"]) for r in results] == [
        ("blocked", "ok"), ("silent", "ok"), ("reached", "ok")
    ]


def test_matrix_counts_and_marks_unexpected_attempts():
    items = plan(LAB)
    results = {
        source: [{**p.as_plan_item(), "observed": "reached" if p.expected == "allowed" else "blocked",
                  "verdict": "ok", "detail": ""} for p in probes]
        for source, probes in items.items()
    }
    first = results["ws-01"][0]
    first.update(observed="blocked" if first["expected"] == "allowed" else "reached", verdict="unexpected")
    found = [o for source, items in results.items() for o in host_observations(LAB, source, {"results": items})]
    text = matrix_text(LAB, found)
    assert text.splitlines()[0].split() == ["from/to", *(z.name for z in LAB.zones)]
    assert "!1" in text.splitlines()[[z.name for z in LAB.zones].index("clinical") + 1]
    assert summary(found) == {"ok": len(found) - 1, "unexpected": 1, "unconfirmed": 0}


def _reported(**changes: object) -> dict[str, object]:
    probe = plan(LAB)["ws-01"][0]
    return {**probe.as_plan_item(), "observed": "blocked", "verdict": "ok", "detail": "", **changes}


@pytest.mark.parametrize(
    ("evidence", "reason"),
    [
        ({}, "no list of results"),
        ({"results": {"a": 1}}, "no list of results"),
        ({"results": ["x"]}, "results[0] is not an object"),
        ({"results": [_reported(destination="nowhere")]}, "results[0].destination is not a host"),
        ({"results": [_reported(destination=["ws-01"])]}, "results[0].destination is not a host"),
        ({"results": [_reported(detail=["x"])]}, "must all be text"),
        ({"results": [_reported(port=10**5000)]}, "results[0].port is not a port number"),
        ({"results": [_reported(port=True)]}, "results[0].port is not a port number"),
        ({"results": [_reported(verdict="fine")]}, "verdict must be one of"),
    ],
)
def test_a_hosts_malformed_results_are_a_reason_not_a_crash(evidence: dict[str, object], reason: str) -> None:
    with pytest.raises(ValueError, match=re.escape(reason)):
        host_observations(LAB, "ws-01", evidence)


def test_reported_text_is_shown_on_one_safe_line() -> None:
    [found] = host_observations(LAB, "ws-01", {"results": [_reported(detail="\x1b[2K\rALL OK\nx")]})
    assert found.detail == "\\x1b[2K\\x0dALL OK\\x0ax"
