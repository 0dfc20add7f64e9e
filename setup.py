"""The Python package takes its version from the collection: galaxy.yml's `version:` is its one home."""

import re
from pathlib import Path

from setuptools import setup

GALAXY = Path(__file__).resolve().with_name("galaxy.yml")
# A plain `version: X.Y.Z` line (galaxy.yml's own form); read without PyYAML, which the build may not have.
VERSION = re.compile(r"^version:\s*[\"']?([0-9][0-9A-Za-z.+-]*)[\"']?\s*$", re.MULTILINE)

match = VERSION.search(GALAXY.read_text(encoding="utf-8"))
if match is None:
    raise SystemExit(f"{GALAXY}: no `version: X.Y.Z` line")
setup(version=match.group(1))
