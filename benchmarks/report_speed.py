"""Report speed: every format for 1,000 hosts x 60 controls of synthetic findings, time and peak memory.

The findings document is made first (not timed). A fresh child process then does what `medinfra report`
does: read findings.json (and check it), build the report, write HTML (English and 中文), OSCAL, JUnit, CSV and the
findings JSON again. It prints per-format times; the parent prints the child's peak RSS (the whole
process: interpreter, libraries, document and report). Goals: <= 3 s and <= 300 MB. Prints figures,
asserts nothing. Usage: `make report-bench`.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

HOSTS, CONTROLS = 1000, 60
TIME_GOAL, MEMORY_GOAL_MB = 3.0, 300

CHILD = """
import json, sys, time
from pathlib import Path
clock = time.perf_counter()
from medinfra.report.findings_file import read_findings
from medinfra.report.html import write_html
from medinfra.report.model import build_report
from medinfra.report.publish import MACHINE_FORMATS, FINDINGS_FILE
from medinfra.safe_output import OutputDirectory
imported = time.perf_counter()
directory = OutputDirectory.open(Path(sys.argv[1]))
document = read_findings(directory.path / FINDINGS_FILE)
loaded = time.perf_counter()
report = build_report(document)
modelled = time.perf_counter()
times = {"import": imported - clock, "read findings.json": loaded - imported, "report model": modelled - loaded}
for lang in ("en", "zh"):
    start = time.perf_counter()
    write_html(report, directory, lang)
    times[f"html {lang}"] = time.perf_counter() - start
for name, write in MACHINE_FORMATS.items():
    start = time.perf_counter()
    write(report, directory, name)
    times[name] = time.perf_counter() - start
start = time.perf_counter()
directory.write_text("findings.json", json.dumps(document, indent=1, ensure_ascii=False) + "\\n")
times["findings.json"] = time.perf_counter() - start
print(json.dumps(times))
"""


def main() -> None:
    from benchmarks.synthetic import synthetic_document

    document = synthetic_document(HOSTS, CONTROLS)
    with tempfile.TemporaryDirectory(prefix="medinfra-report-bench-") as scratch:
        directory = Path(scratch)
        (directory / "findings.json").write_text(json.dumps(document, ensure_ascii=False), encoding="utf-8")
        print(f"{HOSTS} hosts x {CONTROLS} controls: {len(document['findings'])} findings")
        started = time.perf_counter()
        done = subprocess.run([sys.executable, "-c", CHILD, scratch], capture_output=True, text=True, check=True)
        wall = time.perf_counter() - started
        times = json.loads(done.stdout)
        peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        for name, seconds in times.items():
            output = directory / (f"report.{name[-2:]}.html" if name.startswith("html") else name)
            note = f"  {output.stat().st_size / 1e6:6.1f} MB" if output.is_file() else ""
            print(f"  {name:<32} {seconds:6.2f} s{note}")
        rendering = sum(v for k, v in times.items() if k not in ("import", "read findings.json"))
        print(f"rendering every format: {rendering:.2f} s (goal <= {TIME_GOAL} s)")
        print(f"whole process incl. start-up and reading: {wall:.2f} s")
        print(f"peak memory (child RSS): {peak_mb:.0f} MB (goal <= {MEMORY_GOAL_MB} MB)")


if __name__ == "__main__":
    main()
