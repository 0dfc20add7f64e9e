"""Agreement of medinfra's verdicts with Lynis's on the checks both make, on the lab's his-app and lis-legacy.

Audits the two hosts with `medinfra audit` first (Lynis's PKGS-7392 runs `apt-get update` as its profile
asks, which must not change what medinfra sees), then runs `lynis audit system --quick --no-colors` in both
containers at once and reads /var/log/lynis-report.dat, as benchmarks/hardening_index.py does. Compares them
per compliance/lynis_overlap.yml (src/medinfra/compliance/lynis.py) and prints, per host, how many of the
comparable overlapping checks agree, then the table in Markdown and every disagreement with what Lynis
reported. Asserts nothing. `--record DIR` also writes the two reports and the two hosts' finding statuses
there (the unit tests' fixtures, tests/unit/fixtures/lynis/).

Usage: `.venv/bin/python benchmarks/lynis_agreement.py [--record DIR]` with the lab up and converged
(root, podman; about two minutes). Nothing on the hosts changes but what Lynis writes itself.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import yaml

from medinfra.compliance.lynis import (
    OverlapCatalog,
    Report,
    Row,
    compare,
    load_overlaps,
    parse_report,
    statuses_by_host,
    summarise,
)
from medinfra.lab.plan import container_name
from medinfra.lab.podman import podman
from medinfra.toolenv import run_tool

ROOT = Path(__file__).resolve().parent.parent
INVENTORY = ROOT / "inventories" / "lab"
SITE = "lab"
HOSTS = ("his-app", "lis-legacy")
REPORT = "/var/log/lynis-report.dat"


def audit(hosts: Sequence[str]) -> list[dict[str, Any]]:
    with tempfile.TemporaryDirectory(prefix="medinfra-lynis-") as out:
        done = run_tool(
            ROOT, "medinfra", "audit", "-i", str(INVENTORY), "-l", ",".join(hosts), "-o", out, "-q", "--no-history"
        )
        if done.returncode not in (0, 1):  # 1: some control failed, which is expected
            raise RuntimeError(f"medinfra audit exited {done.returncode}:\n{done.stdout[-3000:]}{done.stderr[-3000:]}")
        findings: list[dict[str, Any]] = json.loads((Path(out) / "findings.json").read_text(encoding="utf-8"))[
            "findings"
        ]
    return findings


def lynis_report(host: str) -> str:
    name = container_name(SITE, host)
    podman("exec", name, "lynis", "audit", "system", "--quick", "--no-colors", check=False)
    text = podman("exec", name, "cat", REPORT).stdout
    if "tests_executed=" not in text:
        raise RuntimeError(f"no tests_executed in {host}'s Lynis report")
    return text


def record(directory: Path, host: str, report: str, findings: Sequence[Mapping[str, Any]]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{host}.lynis-report.dat").write_text(report, encoding="utf-8")
    kept = sorted(
        ({"host": f["host"], "control": f["control"], "status": f["status"]} for f in findings if f["host"] == host),
        key=lambda finding: str(finding["control"]),
    )
    (directory / f"{host}.findings.json").write_text(findings_document(kept), encoding="utf-8")


def findings_document(findings: Sequence[Mapping[str, Any]]) -> str:
    """The recorded statuses as findings.json has them, one finding a line so that a re-recording diffs well."""
    source = json.dumps(f"medinfra audit -i inventories/lab -l {','.join(HOSTS)}")
    lines = ",\n".join("  " + json.dumps(dict(finding)) for finding in findings)
    return f'{{"recorded_from": {source},\n "findings": [\n{lines}\n]}}\n'


def cell(row: Row) -> tuple[str, str, str]:
    mark = {True: "yes", False: "**no**", None: "-"}[row.agree]
    return row.medinfra, row.lynis, mark


def markdown(catalog: OverlapCatalog, rows: Mapping[str, Sequence[Row]]) -> str:
    header = ["control", "Lynis test", "setting"]
    for host in rows:
        header += [f"{host} medinfra", f"{host} Lynis", "agree"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for index, overlap in enumerate(catalog.overlaps):
        cells = [overlap.control, overlap.lynis_test, overlap.setting or ""]
        for host_rows in rows.values():
            cells += cell(host_rows[index])
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def disagreements(rows: Mapping[str, Sequence[Row]]) -> list[str]:
    lines = []
    for host, host_rows in rows.items():
        for row in host_rows:
            if row.agree is False:
                said = "; ".join(row.lynis_evidence) or "nothing"
                lines.append(
                    f"- {host} {row.overlap.control} / {row.overlap.lynis_test}"
                    f"{' (' + row.overlap.setting + ')' if row.overlap.setting else ''}: medinfra {row.medinfra},"
                    f" Lynis {row.lynis}; Lynis reported {said}"
                )
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--record", type=Path, help="also write the reports and finding statuses here")
    args = parser.parse_args(argv)
    catalog = load_overlaps(yaml.safe_load((ROOT / "compliance" / "lynis_overlap.yml").read_text(encoding="utf-8")))

    started = time.monotonic()
    findings = audit(HOSTS)
    audited = time.monotonic()
    with ThreadPoolExecutor(max_workers=len(HOSTS)) as pool:
        texts = dict(zip(HOSTS, pool.map(lynis_report, HOSTS), strict=True))
    scanned = time.monotonic()

    statuses = statuses_by_host(findings)
    reports: dict[str, Report] = {host: parse_report(text) for host, text in texts.items()}
    rows = {host: compare(host, reports[host], statuses.get(host, {}), catalog.overlaps) for host in HOSTS}
    if args.record:
        for host in HOSTS:
            record(args.record, host, texts[host], findings)

    version = reports[HOSTS[0]].value("lynis_version") or "?"
    controls = len({overlap.control for overlap in catalog.overlaps})
    print(
        f"Lynis {version} against medinfra on the lab: {len(catalog.overlaps)} overlapping checks"
        f" ({controls} controls), {len(catalog.unreported)} more that Lynis only scores;"
        f" audit {audited - started:.1f} s, Lynis {scanned - audited:.1f} s"
    )
    for host in HOSTS:
        summary = summarise(host, rows[host])
        print(
            f"  {host:12} {summary.agree} of {summary.compared} comparable checks agree"
            f" ({summary.disagree()} disagree; {summary.total - summary.compared} of {summary.total} not comparable:"
            f" not applicable, error or Lynis did not run the test); hardening index"
            f" {reports[host].value('hardening_index')}"
        )
    print()
    print(markdown(catalog, rows))
    print()
    print("Disagreements:")
    print("\n".join(disagreements(rows)) or "- none")
    return 0


if __name__ == "__main__":
    sys.exit(main())
