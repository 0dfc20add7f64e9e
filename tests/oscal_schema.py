"""NIST's OSCAL 1.0.6 JSON schemas (assessment results, POA&M) as ready validators, for every test of OSCAL output.

The schema's patterns use Unicode property classes (\\p{L}, \\p{N}) that Python's `re` rejects, so the `pattern`
keyword and the `regex` format (checked when the schema itself is checked) use the `regex` package, which
implements them; every pattern is still applied.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import regex
from jsonschema import Draft7Validator, FormatChecker, ValidationError, validators
from jsonschema.protocols import Validator

SCHEMA_NAME = "oscal_assessment-results_schema.json"
POAM_SCHEMA_NAME = "oscal_poam_schema.json"
# Copies kept in the repository (tests/data/oscal/README.md says where each came from), so a bare clone validates.
SCHEMA_DIR = Path(__file__).resolve().parent / "data" / "oscal"
SCHEMA_PATH = SCHEMA_DIR / SCHEMA_NAME
# The assessment-results schema's original in ../shared/conformance/oscal/.
SHARED_SCHEMA_PATH = Path(__file__).resolve().parents[2] / "shared" / "conformance" / "oscal" / SCHEMA_NAME


def unicode_pattern(
    validator: Validator, pattern: str, instance: Any, schema: dict[str, Any]
) -> Iterator[ValidationError]:
    # Like Draft 7's own `pattern` (a search, not a full match), with `regex` instead of `re`.
    if validator.is_type(instance, "string") and not regex.search(pattern, instance):
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


FORMATS = FormatChecker(Draft7Validator.FORMAT_CHECKER.checkers)
FORMATS.checks("regex", raises=regex.error)(regex.compile)
OscalValidator = validators.extend(Draft7Validator, {"pattern": unicode_pattern}, format_checker=FORMATS)


@cache
def oscal_validator(name: str = SCHEMA_NAME) -> Validator:
    """A Draft 7 validator for one OSCAL model (assessment results unless named); formats are checked where
    jsonschema can."""
    schema = json.loads((SCHEMA_DIR / name).read_text(encoding="utf-8"))
    OscalValidator.check_schema(schema, format_checker=FORMATS)
    return OscalValidator(schema, format_checker=FORMATS)
