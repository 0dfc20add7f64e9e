"""Synthetic data for benchmarks and tests: a one-zone topology of N hosts for lab benchmarks, and audit runs (real
catalog texts, made-up hosts and results).

Findings go through the real pipeline (AuditRun -> findings_document), so reports are fed exactly
what an audit writes. Deterministic for a given seed.
"""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import UTC, date, datetime
from ipaddress import IPv4Network
from typing import Any

from medinfra.audit.results import AuditRun, HostResult, findings_document
from medinfra.compliance.catalog import load_catalog
from medinfra.compliance.model import Catalog, Finding, Status, Waiver
from medinfra.package_data import CATALOG_DIR

ZONES = ("his", "pacs", "clinical", "dmz", "mgmt")
STARTED = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)
# Roughly what a half-hardened estate looks like.
STATUS_WEIGHTS = {Status.PASS: 70, Status.FAIL: 18, Status.NOT_APPLICABLE: 8, Status.ERROR: 1, Status.WAIVED: 3}


def synthetic_topology(site: str, network: str, hosts: int) -> dict[str, Any]:
    """A topology document: one zone on ``network`` (a /24) with ``hosts`` workstations named ``bench-001``...,
    from the zone's tenth address on; the zone's last address is its gateway. The first host is the time server."""
    subnet = IPv4Network(network)
    addresses = list(subnet.hosts())[9:-1][:hosts]  # the last one is the gateway
    if len(addresses) < hosts:
        raise ValueError(f"{network} has room for {len(addresses)} benchmark hosts, not {hosts}")
    return {
        "site": {
            "name": site,
            "title": f"{site} benchmark",
            "domain": "bench.medinfra.test",
            "timezone": "UTC",
            "time_servers": [str(addresses[0])],
        },
        "sla_classes": {
            "standard": {
                "description": "benchmark hosts",
                "rpo_minutes": 60,
                "rto_minutes": 60,
                "support_hours": "24x7",
            }
        },
        "zones": [
            {
                "name": "bench",
                "cidr": str(subnet),
                "gateway": str(subnet.broadcast_address - 1),
                "trust": "medium",
                "purpose": "clinical",
                "description": "benchmark hosts",
            }
        ],
        "hosts": [
            {
                "name": f"bench-{index:03d}",
                "zone": "bench",
                "address": str(address),
                "services": ["workstation"],
                "sla": "standard",
                "data_classification": "internal",
            }
            for index, address in enumerate(addresses, start=1)
        ],
        "flows": [],
    }


def synthetic_run(hosts: int, controls: int, seed: int = 1, unreachable: int = 1) -> AuditRun:
    """`hosts` hosts (the last `unreachable` of them not reached) judged against the first `controls` controls."""
    rng = random.Random(seed)
    full = load_catalog(CATALOG_DIR)
    catalog = Catalog(full.controls[:controls], full.frameworks)
    waiver = Waiver(
        control=catalog.controls[0].id,
        hosts=("host-000*",),
        groups=("legacy",),
        justification="Vendor-managed device; the vendor patches it quarterly",
        approver="CISO 王医生",
        risk="medium",
        risk_acceptance="Accepted at the security committee, minutes 2026-10",
        compensating_control="Zone firewall allows only the vendor VPN",
        expires=date(2027, 6, 30),
    )
    expired = replace(waiver, control=catalog.controls[1].id, expires=date(2026, 1, 31))
    statuses, weights = zip(*STATUS_WEIGHTS.items(), strict=True)
    results, findings, views = [], [], {}
    for index in range(hosts):
        name = f"host-{index:04d}"
        zone = ZONES[index % len(ZONES)]
        views[name] = {"zone": zone, "groups": [f"zone_{zone}"], "site": "synthetic", "services": []}
        if index >= hosts - unreachable:
            results.append(HostResult(name, "unreachable", "SSH: connection timed out", None, 10.0))
            continue
        evidence: dict[str, Any] = {"collected_at": "2026-11-22T08:00:01Z", "collector_version": "1.0.0"}
        results.append(HostResult(name, "audited", "", evidence, 0.2))
        for control in catalog.controls:
            status = rng.choices(statuses, weights)[0]
            active = status is Status.WAIVED and control.id == waiver.control
            finding_status = status if status is not Status.WAIVED or active else Status.FAIL
            findings.append(
                Finding(
                    name,
                    control.id,
                    finding_status,
                    "" if finding_status is Status.PASS else f"sshd.maxauthtries is {rng.randint(5, 10)}, at most 4",
                    {"sshd.maxauthtries": rng.randint(3, 10), "sshd.permitrootlogin": "no"},
                    waiver=waiver if active else None,
                    expired_waiver=expired if finding_status is Status.FAIL and control.id == expired.control else None,
                )
            )
    return AuditRun("pyinfra", "inventories/synthetic", STARTED, results, findings, catalog, (waiver, expired),
                    seconds=12.5, views=views)


def synthetic_document(hosts: int, controls: int, seed: int = 1) -> dict[str, Any]:
    return findings_document(synthetic_run(hosts, controls, seed))
