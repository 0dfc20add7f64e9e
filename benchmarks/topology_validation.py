"""Topology validation speed: load and validate generated hospitals of 1,000 and 10,000 zones.

Each zone is a /24 with a gateway, HOSTS_PER_ZONE hosts (one of them a PHI database with a data path)
and FLOWS_PER_ZONE flows to the next zone. The YAML is written first (not timed); then `load_yaml`
(read, bounded parse, line map) and `validate_document` (schema and semantic checks) are timed
separately. Prints figures; asserts nothing. Usage: `make topology-bench`.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from medinfra.topology.load import validate_document
from medinfra.yamldoc import MAX_YAML_BYTES, load_yaml

SIZES = (1_000, 10_000)
HOSTS_PER_ZONE = 3
FLOWS_PER_ZONE = 2


def zone_name(index: int) -> str:
    return f"zone-{index:05d}"


def zone_prefix(index: int) -> str:
    return f"10.{index // 256}.{index % 256}"


def bench_topology(zones: int) -> dict[str, Any]:
    """A valid topology of `zones` zones; deterministic."""
    hosts: list[dict[str, Any]] = []
    flows: list[dict[str, Any]] = []
    for index in range(zones):
        name, prefix = zone_name(index), zone_prefix(index)
        hosts.append(
            {
                "name": f"{name}-fw",
                "zone": name,
                "address": f"{prefix}.254",
                "services": ["zone_firewall"],
                "sla": "standard",
                "data_classification": "internal",
            }
        )
        for number in range(1, HOSTS_PER_ZONE):
            hosts.append(
                {
                    "name": f"{name}-db{number}",
                    "zone": name,
                    "address": f"{prefix}.{10 + number}",
                    "services": ["his_db"],
                    "sla": "critical",
                    "data_classification": "phi",
                    "data_paths": [f"/srv/his/{index}"],
                    "description": "HIS database replica",
                }
            )
        target = zone_name((index + 1) % zones)
        flows.append({"from": name, "to": f"{target}-db1", "proto": "tcp", "ports": [5432], "purpose": "HIS SQL"})
        flows.extend(
            {"from": name, "to": target, "proto": "udp", "ports": [f"{40000 + n}-{40010 + n}"], "purpose": "Media"}
            for n in range(FLOWS_PER_ZONE - 1)
        )
    return {
        "site": {
            "name": "bench",
            "title": "topology benchmark",
            "domain": "bench.medinfra.test",
            "time_servers": ["10.0.0.254"],
        },
        "sla_classes": {
            "critical": {"rpo_minutes": 15, "rto_minutes": 60, "support_hours": "24x7"},
            "standard": {"rpo_minutes": 240, "rto_minutes": 240},
        },
        "zones": [
            {
                "name": zone_name(i),
                "cidr": f"{zone_prefix(i)}.0/24",
                "gateway": f"{zone_prefix(i)}.254",
                "trust": "high",
                "purpose": "his",
                "description": f"ward block {i}",
            }
            for i in range(zones)
        ],
        "hosts": hosts,
        "flows": flows,
    }


def measure(path: Path) -> tuple[float, float, int]:
    """Seconds to load, seconds to validate, number of problems."""
    started = time.perf_counter()
    document = load_yaml(path)
    loaded = time.perf_counter()
    problems = validate_document(document)
    return loaded - started, time.perf_counter() - loaded, len(problems)


def main() -> int:
    print(f"size cap {MAX_YAML_BYTES / 2**20:.0f} MiB; {HOSTS_PER_ZONE} hosts and {FLOWS_PER_ZONE} flows per zone")
    with tempfile.TemporaryDirectory() as scratch:
        for zones in SIZES:
            path = Path(scratch) / f"hospital-{zones}.yml"
            data = bench_topology(zones)
            path.write_text(yaml.safe_dump(data, sort_keys=False, default_flow_style=None, width=200), "utf-8")
            load, validate, problems = measure(path)
            print(
                f"{zones:>6} zones, {len(data['hosts']):>6} hosts, {len(data['flows']):>6} flows, "
                f"{path.stat().st_size / 2**20:5.1f} MiB: load {load:6.2f} s, validate {validate:6.2f} s, "
                f"total {load + validate:6.2f} s ({problems} problems)"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
