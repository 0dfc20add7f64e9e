"""A drill's evidence: one JSON document in a directory of its own under the evidence directory, signed like an
audit's reports when a key is given (so `medinfra verify` checks it), and recorded in the history.

Each drill gets its own directory, named after its kind, site, start and id: a signature then covers that drill
alone, and publishing a later drill never re-signs (and so never launders) an earlier one's files.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medinfra.history.store import DrillInfo, drill_time, open_history
from medinfra.problems import DocPath, PrerequisiteError, Problem, UserInputError
from medinfra.safe_output import OutputDirectory, file_name
from medinfra.safe_text import one_line
from medinfra.signing import load_private_key, sign_directory

DRILL_FORMAT = "medinfra-drill/1"
KINDS = ("failover", "plan")
DOCUMENT_FILE = "drill.json"
# What the messages call a document that came from a program rather than a file.
DOCUMENT = "drill document"


@dataclass(frozen=True)
class PublishedDrill:
    """Where a drill went: its evidence directory and file, the signed manifest (if signed), its history record
    (if recorded) and, when a history was given but could not take it, why (one line)."""

    drill_id: str
    directory: Path
    file: Path
    manifest: Path | None
    record: DrillInfo | None
    history_error: str | None = None


def _invalid(path: DocPath, message: str) -> UserInputError:
    return UserInputError([Problem(DOCUMENT, path, message)])


def _text(document: Mapping[str, Any], key: str) -> str:
    value = document.get(key)
    if not isinstance(value, str) or not value.strip():
        raise _invalid((key,), f"must be a non-empty text, got {type(value).__name__}")
    return value


def check_document(document: Any) -> None:
    """Refuse (located) anything that is not a drill document: format, kind, site, started, finished, passed,
    result, and optionally drill_id."""
    if not isinstance(document, dict):
        raise _invalid((), "is not a JSON object")
    if document.get("format") != DRILL_FORMAT:
        raise _invalid(("format",), f"expected {DRILL_FORMAT!r}, got {document.get('format')!r}")
    if document.get("kind") not in KINDS:
        raise _invalid(("kind",), f"expected one of {', '.join(KINDS)}, got {document.get('kind')!r}")
    _text(document, "site")
    if "drill_id" in document:
        _text(document, "drill_id")
    times = {}
    for key in ("started", "finished"):
        try:
            times[key] = drill_time(document.get(key))
        except ValueError as exc:
            raise _invalid((key,), f"is not an ISO-8601 time with a UTC offset: {exc}") from None
    if times["finished"] < times["started"]:
        raise _invalid(("finished",), "is before started")
    if not isinstance(document.get("passed"), bool):
        raise _invalid(("passed",), "must be true or false")
    if not isinstance(document.get("result"), dict):
        raise _invalid(("result",), "must be an object (what the drill measured)")
    try:
        json.dumps(document, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise _invalid((), f"is not JSON: {exc}") from None


def evidence_directory_name(document: Mapping[str, Any]) -> str:
    """<kind>-<site>-<start, compact UTC>-<drill id>: sorts by start within a kind and site, one safe name."""
    started = drill_time(document["started"]).strftime("%Y%m%dT%H%M%SZ")
    return file_name(f"{document['kind']}-{document['site']}-{started}-{document['drill_id']}")


def publish_drill(
    document: Mapping[str, Any], evidence_dir: Path, history: str | None, signing_key: Path | None
) -> PublishedDrill:
    """Check the document, write it (with a drill_id, a fresh UUID if it has none) to
    <evidence_dir>/<name>/drill.json, sign that directory when a key is given, then record the drill in the history
    (unless None). A history that cannot take it leaves the evidence in place: `history_error` says why."""
    check_document(document)
    if signing_key is not None:
        load_private_key(signing_key)  # a bad key is refused before anything is written
    published = {**document, "drill_id": document.get("drill_id") or str(uuid.uuid4())}
    text = json.dumps(published, indent=1, ensure_ascii=False, sort_keys=True) + "\n"
    with OutputDirectory.open(evidence_dir) as evidence, evidence.subdirectory(
        evidence_directory_name(published)
    ) as out:
        # Exclusive: a drill's evidence is never overwritten, not even by a rerun that reuses its id.
        file = out.write_bytes(DOCUMENT_FILE, text.encode("utf-8", "surrogatepass"), exclusive=True)
        manifest = sign_directory(out, signing_key) if signing_key is not None else None
        directory = out.path
    record, history_error = None, None
    if history is not None:
        try:
            with open_history(history) as store:
                record = store.record_drill(published, str(file))
        except (UserInputError, PrerequisiteError) as exc:
            history_error = one_line(str(exc))
    return PublishedDrill(str(published["drill_id"]), directory, file, manifest, record, history_error)
