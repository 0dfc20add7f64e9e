"""A findings.json someone sent (`medinfra report DIR`): read within bounds and checked before anything uses it.

Every way the file can be wrong becomes located problems (`file: path: reason`), never a traceback: it is not a
regular file or too large, not UTF-8 or JSON, nested too deeply, not what compliance/schemas/findings.schema.json
describes, or inconsistent in ways a schema cannot say (a finding on a host or control the document does not
list, a waiver index past the end of `waivers`). A document that passes can be rendered by every format.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Mapping
from functools import cache
from itertools import islice
from pathlib import Path
from typing import Any

import jsonschema
from jsonschema import Draft202012Validator

from medinfra.audit.results import FINDINGS_MAX_BYTES
from medinfra.compliance.catalog import schema, schema_registry
from medinfra.history.store import parse_started
from medinfra.problems import DocPath, Problem, UserInputError
from medinfra.safe_input import read_regular_file
from medinfra.safe_text import one_line

# The document nests six levels; evidence values are bounded copies of what a host reported.
MAX_DEPTH = 64
# OSCAL times must fall in 1900-2999; a run lasting longer than this is not one medinfra made.
YEARS = range(1900, 3000)
MAX_RUN_SECONDS = 30 * 86400
MAX_PROBLEMS = 20
MESSAGE_WIDTH = 200


def read_findings(path: Path) -> dict[str, Any]:
    """The findings document in `path`, checked; UserInputError naming every problem found."""
    document = parse(path, read_regular_file(path, FINDINGS_MAX_BYTES, follow_symlinks=False))
    problems = document_problems(one_line(str(path)), document)
    if problems:
        raise UserInputError(problems)
    return document  # type: ignore[no-any-return]


def _problem(path: Path, message: str, line: int | None = None) -> UserInputError:
    return UserInputError([Problem(one_line(str(path)), (), message, line)])


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def parse(path: Path, data: bytes) -> Any:
    """JSON from `data`: strict UTF-8, no NaN or Infinity, no deeper than MAX_DEPTH."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _problem(path, f"not UTF-8 (byte {exc.start})") from None
    try:
        document = json.loads(text, parse_constant=_refuse_constant)
    except json.JSONDecodeError as exc:
        raise _problem(path, f"not JSON: {exc.msg}", exc.lineno) from None
    except RecursionError:
        raise _problem(path, f"nested deeper than {MAX_DEPTH} levels") from None
    except ValueError as exc:  # NaN, Infinity, an integer of more than 4,300 digits
        raise _problem(path, f"not JSON medinfra reads: {one_line(str(exc))[:MESSAGE_WIDTH]}") from None
    if not within_depth(document, MAX_DEPTH):
        raise _problem(path, f"nested deeper than {MAX_DEPTH} levels")
    return document


def within_depth(value: Any, limit: int) -> bool:
    """Whether no container in `value` is nested more than `limit` deep (iteratively: no recursion to exhaust)."""
    pending = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else ()
        for child in children:
            if isinstance(child, dict | list):
                if depth + 1 > limit:
                    return False
                pending.append((child, depth + 1))
    return True


@cache
def validator() -> Draft202012Validator:
    return Draft202012Validator(
        schema("findings"), registry=schema_registry(), format_checker=Draft202012Validator.FORMAT_CHECKER
    )


@cache
def finding_validator() -> Draft202012Validator:
    """The schema's own definition of one finding, to explain a finding the quick check did not pass."""
    return Draft202012Validator(
        {"$ref": f"{schema('findings')['$id']}#/$defs/finding"},
        registry=schema_registry(),
        format_checker=Draft202012Validator.FORMAT_CHECKER,
    )


@cache
def finding_shape() -> tuple[frozenset[str], frozenset[str], frozenset[str], re.Pattern[str]]:
    """Required keys, allowed keys, statuses and the control id pattern of a finding, as the schemas say."""
    definitions = schema("findings")["$defs"]
    finding = definitions["finding"]
    control_id = re.compile(schema("control")["properties"]["id"]["pattern"])
    return (
        frozenset(finding["required"]), frozenset(finding["properties"]), frozenset(definitions["status"]["enum"]),
        control_id,
    )


def plainly_valid(record: Any) -> bool:
    """A quick check that `record` is a finding the schema accepts (never passes one it refuses).

    Validating 60,000 findings with jsonschema takes seconds; this takes milliseconds. A finding it does not pass
    is validated by the schema itself, which says what is wrong.
    """
    required, allowed, statuses, control_id = finding_shape()
    if type(record) is not dict or not required <= record.keys() <= allowed:
        return False
    host, control, status = record["host"], record["control"], record["status"]
    indexes_ok = all(type(record[key]) is int and record[key] >= 0 for key in ("waiver", "expired_waiver")
                     if key in record)
    return (
        type(host) is str
        and bool(host)
        and type(control) is str
        and control_id.search(control) is not None
        and type(status) is str
        and status in statuses
        and type(record["reason"]) is str
        and type(record["evidence"]) is dict
        and indexes_ok
        and ("waiver" not in record or status == "waived")
    )


def message(error: jsonschema.ValidationError) -> str:
    """A schema error in one line of bounded length (it quotes the offending value, which may be huge)."""
    text = one_line(error.message)
    return text if len(text) <= MESSAGE_WIDTH else text[: MESSAGE_WIDTH - 1] + "…"


def located(path: Iterable[str | int]) -> DocPath:
    """A path inside the document as it may be shown: its keys come from the file too."""
    return tuple(one_line(part) if isinstance(part, str) else part for part in path)


def schema_problems(file: str, document: Any) -> Iterator[Problem]:
    findings = document.get("findings") if isinstance(document, dict) else None
    if not isinstance(findings, list):
        for error in validator().iter_errors(document):
            yield Problem(file, located(error.absolute_path), message(error))
        return
    for error in validator().iter_errors({**document, "findings": []}):
        yield Problem(file, located(error.absolute_path), message(error))
    for index, record in enumerate(findings):
        if not plainly_valid(record):
            for error in finding_validator().iter_errors(record):
                yield Problem(file, located(("findings", index, *error.absolute_path)), message(error))


def consistency_problems(file: str, document: Mapping[str, Any]) -> Iterator[Problem]:
    """What the schema cannot say: references between parts of a schema-valid document, and time bounds."""

    def problem(path: DocPath, text: str) -> Problem:
        return Problem(file, path, text)

    started = parse_started(document["started_at"]) if _parses(document["started_at"]) else None
    if started is None or started.year not in YEARS:
        yield problem(("started_at",), f"not a time between {YEARS.start} and {YEARS.stop - 1}")
    if document["seconds"] > MAX_RUN_SECONDS:
        yield problem(("seconds",), f"more than {MAX_RUN_SECONDS} s: not the length of an audit")
    hosts = {host["name"] for host in document["hosts"]}
    controls, waivers = document["controls"], len(document["waivers"])
    for index, record in enumerate(document["findings"]):
        if record["control"] not in controls:
            yield problem(("findings", index, "control"), "is not one of the document's controls")
        if record["host"] not in hosts:
            yield problem(("findings", index, "host"), "is not one of the document's hosts")
        for key in ("waiver", "expired_waiver"):
            value = record.get(key)
            if value is not None and (type(value) is not int or value >= waivers):
                yield problem(("findings", index, key), f"{value!r} is not an index of the {waivers} waiver(s)")


def _parses(text: str) -> bool:
    try:
        parse_started(text)
    except ValueError:
        return False
    return True


def document_problems(file: str, document: Any) -> list[Problem]:
    """Located problems of a findings document, the first MAX_PROBLEMS of them; none if it is valid."""
    problems = list(islice(schema_problems(file, document), MAX_PROBLEMS + 1))
    if not problems:
        problems = list(islice(consistency_problems(file, document), MAX_PROBLEMS + 1))
    if len(problems) > MAX_PROBLEMS:
        problems = [*problems[:MAX_PROBLEMS], Problem(file, (), "more problems not shown")]
    return problems
