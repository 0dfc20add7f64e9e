"""Print the HTML report to PDF with headless Chromium (Debian's `chromium` package)."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from medinfra.problems import PrerequisiteError
from medinfra.safe_output import OutputDirectory

# Without the background-networking flags Chromium keeps trying to reach Google on a closed network.
CHROMIUM_FLAGS = (
    "--headless",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
PRINT_TIMEOUT = 180


def chromium_path() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        raise PrerequisiteError("printing PDF needs Chromium: install it with scripts/install-deps.sh (apt chromium)")
    return path


def chromium_flags() -> list[str]:
    # Chromium's sandbox cannot start as root; everywhere else it stays on.
    return [*CHROMIUM_FLAGS, *(["--no-sandbox"] if os.geteuid() == 0 else [])]


def pdf_name(html_name: str) -> str:
    return f"{Path(html_name).stem}.pdf"


def print_pdf(html: Path, directory: OutputDirectory) -> Path:
    """Render `html` (its script opens every section before printing) into its .pdf in `directory`, 0640.

    Chromium prints inside a private temporary directory; the PDF is then written like every result (a new file
    renamed into place), so a planted symlink or hard link in `directory` is replaced, never written through.
    """
    with tempfile.TemporaryDirectory(prefix="medinfra-chromium-") as scratch:
        printed = Path(scratch) / "report.pdf"
        command = [
            chromium_path(), *chromium_flags(), f"--user-data-dir={scratch}/profile", "--no-pdf-header-footer",
            f"--print-to-pdf={printed}", html.resolve().as_uri(),
        ]
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=PRINT_TIMEOUT, check=False)
        except subprocess.TimeoutExpired:
            raise PrerequisiteError(f"Chromium did not finish printing {html} within {PRINT_TIMEOUT} s") from None
        if done.returncode != 0 or not printed.exists():
            tail = done.stderr.strip().splitlines()[-1:] or ["no output"]
            raise PrerequisiteError(f"Chromium could not print {html} to PDF: {tail[0]}")
        return directory.write_bytes(pdf_name(html.name), printed.read_bytes())
