"""TURN relay capacity: `medinfra turn loadtest` against the lab's relay at a few session counts, as a table.

From the guest vantage host (guest-01) through the zone firewall to the relay (turn) and on to the media server's
UDP echo (media-01, port 40001, role rtc_probe): for each transport and session count, the allocation rate,
sessions allocated and held, loss, RTT p50/p95, jitter, and coturn's CPU (percent of one core) and peak resident
memory on the relay host, and the client's own CPU (near 100 % of its one thread, the figures measure the client,
not the relay). The machine's other work shares its cores: compare runs, not single figures. Prints
figures; asserts nothing about speed.
Usage: `make turn-bench` with the lab up and converged (`make demo`, or `medinfra lab up` and
`ansible-playbook -i inventories/lab --vault-password-file inventories/lab/.lab/vault-password playbooks/site.yml`).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
LAB_NOT_UP = 2
COLUMNS = (
    ("transport", "transport", "{}"), ("sessions", "sessions", "{}"),
    ("alloc/s", "allocations_per_second", "{:.0f}"), ("allocated", "allocated", "{}"), ("held", "held", "{}"),
    ("refused", "refused", "{}"), ("loss %", "loss_ratio", "{:.2%}"), ("RTT p50 ms", "rtt_p50_seconds", "ms"),
    ("RTT p95 ms", "rtt_p95_seconds", "ms"), ("jitter ms", "jitter_seconds", "ms"),
    ("relay CPU %", "relay_cpu_percent", "{:.1f}"), ("relay RSS MiB", "relay_peak_rss_mib", "{:.1f}"),
    ("client CPU %", "client_cpu_percent", "{:.1f}"),
)


def medinfra(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "medinfra.cli", *args], capture_output=True, text=True,
                          check=False, cwd=ROOT, timeout=900)


def cell(value: Any, style: str) -> str:
    if value is None:
        return "n/a"
    if style == "ms":
        return f"{value * 1000:.2f}"
    return style.format(value).removesuffix("%") if style.endswith("%}") else style.format(value)


def table(rows: list[dict[str, Any]]) -> str:
    cells = [[title for title, _, _ in COLUMNS]] + [[cell(row.get(key), style) for _, key, style in COLUMNS]
                                                   for row in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(COLUMNS))]
    return "\n".join("  ".join(text.rjust(width) for text, width in zip(line, widths, strict=True)) for line in cells)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-i", "--inventory", type=Path, default=ROOT / "inventories" / "lab")
    parser.add_argument("--from", dest="vantage", default="guest-01")
    parser.add_argument("--sessions", type=int, nargs="+", default=[10, 50, 100])
    parser.add_argument("--transports", nargs="+", choices=("udp", "tcp", "tls"), default=["udp", "tls"])
    parser.add_argument("--duration", type=int, default=3)
    args = parser.parse_args()
    vault = args.inventory / ".lab" / "vault-password"
    status = medinfra("lab", "status", "-i", str(args.inventory)) if vault.exists() else None
    if status is None or status.returncode != 0:
        print(f"the lab of {args.inventory} is not up: run `make demo` (or `medinfra lab up -i {args.inventory}` "
              "and converge playbooks/site.yml) first", file=sys.stderr)
        return LAB_NOT_UP
    rows = []
    for transport in args.transports:
        for sessions in args.sessions:
            run = medinfra("turn", "loadtest", "-i", str(args.inventory), "--from", args.vantage, "--sessions",
                           str(sessions), "--duration", str(args.duration), "--transport", transport,
                           "--vault-password-file", str(vault), "--format", "json")
            if run.returncode not in (0, 1) or not run.stdout.strip():  # 1 with no report: the engine did not run
                print(f"{transport} x {sessions}: the loadtest did not run (exit {run.returncode}): "
                      f"{run.stderr.strip()[-1000:]}\nIs the lab converged (the relay, and the media server's echo "
                      "on port 40001 from role rtc_probe)?", file=sys.stderr)
                return LAB_NOT_UP
            rows.append(json.loads(run.stdout))
            print(f"{transport} x {sessions}: done", file=sys.stderr)
    print(f"TURN relay capacity, {args.duration} s of 1000-byte packets at 50/s per session, from {args.vantage}")
    print(table(rows))
    refused = [r for r in rows if r["refused"]]
    for row in refused:
        code = f"{row['first_refused_code']} " if row["first_refused_code"] else ""
        print(f"{row['transport']} x {row['sessions']}: not allocated from session {row['first_refused']} "
              f"({code}{row['first_refused_reason']})")
    if any(row["held"] == 0 for row in rows):
        print("no session held: is the media server's UDP echo on port 40001 running (role rtc_probe)?")
    return 0


if __name__ == "__main__":
    sys.exit(main())
