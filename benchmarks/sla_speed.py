"""SLA report speed: a month of 30 s probe series for every host of the example-tertiary topology (59 hosts, two
probes each, a few outages and a gap), ALERTS and backup series; the pure computation and every format timed, and
the peak memory of the process. Prints figures, asserts nothing. Usage: `make sla-bench`.
"""

from __future__ import annotations

import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from medinfra.sla.compute import Series, StepValues, month_period, sla_report  # noqa: E402
from medinfra.sla.render import csv_text, html_text, json_text  # noqa: E402
from medinfra.sla.run import STEP_SECONDS  # noqa: E402
from medinfra.topology import load_topology  # noqa: E402

TOPOLOGY = ROOT / "inventories" / "example-tertiary" / "hospital.yml"
MONTH = "2026-11"
PROBES_PER_HOST = 2
OUTAGE_STEPS = 20  # 10 minutes
GAP_STEPS = 120  # an hour without data


def month_series(first: int, count: int, labels: dict[str, str], down_at: int, gap_at: int) -> Series:
    """Up everywhere but one outage and one gap (step indexes), one value per step from one step before the month."""
    values = StepValues(first, STEP_SECONDS, count)
    for index in range(count):
        if not gap_at <= index < gap_at + GAP_STEPS:
            values.set(first + index * STEP_SECONDS, 0.0 if down_at <= index < down_at + OUTAGE_STEPS else 1.0)
    return Series(labels, values)


def main() -> None:
    topology = load_topology(TOPOLOGY)
    zone = topology.site.timezone or "UTC"
    period = month_period(MONTH, zone, STEP_SECONDS, now=2**40)
    first, count = period.start - STEP_SECONDS, (period.end - period.start) // STEP_SECONDS + 1
    clock = time.perf_counter()
    probes, alerts, backups = [], [], []
    for n, host in enumerate(topology.hosts):
        down_at, gap_at = 1000 + 37 * n, 50_000 + 11 * n
        for probe in range(PROBES_PER_HOST):
            labels = {"host": host.name, "service": f"service-{probe}", "instance": f"{host.name}:{probe}"}
            probes.append(month_series(first, count, labels, down_at if probe == 0 else count, gap_at))
        firing = StepValues(first, STEP_SECONDS, count)
        for index in range(down_at + 4, down_at + OUTAGE_STEPS):
            firing.set(first + index * STEP_SECONDS, 1.0)
        alerts.append(Series({"alertname": "ServiceDown", "host": host.name}, firing))
        last_backup = StepValues(first, STEP_SECONDS, count)
        for index in range(count):
            at = first + index * STEP_SECONDS
            last_backup.set(at, float(at - at % 3600))
        backups.append(Series({"instance": host.name, "set": "system"}, last_backup))
    made = time.perf_counter()
    report = sla_report(topology, period, probes, alerts, [], backups)
    computed = time.perf_counter()
    times = {"series made (not part of a report)": made - clock, "computation (pure)": computed - made}
    for name, render in (("json", json_text), ("csv", csv_text)):
        start = time.perf_counter()
        render(report)
        times[name] = time.perf_counter() - start
    for lang in ("en", "zh"):
        start = time.perf_counter()
        html_text(report, lang, "other.html")
        times[f"html {lang}"] = time.perf_counter() - start
    steps = count * len(probes)
    print(f"{len(topology.hosts)} hosts, {len(probes)} probe series x {count} steps of {STEP_SECONDS} s "
          f"({steps / 1e6:.1f} M values), {len(report.systems)} systems, "
          f"{sum(len(s.outages) for s in report.systems)} outages")
    for name, seconds in times.items():
        print(f"  {name:<36} {seconds:6.2f} s")
    print(f"peak memory (RSS): {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    main()
