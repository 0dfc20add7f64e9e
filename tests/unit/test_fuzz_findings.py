"""Fuzzing what medinfra reads back: findings.json (`medinfra report`), signed manifests, history locations.

Random and mutated documents (starting from a real one) may only end in a rendered report or a located problem
(exit 2, UserInputError): never another exception.
"""

from __future__ import annotations

import json
import os
import string
from collections.abc import Iterator
from contextlib import suppress
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from benchmarks.synthetic import synthetic_document
from medinfra.audit.results import findings_document
from medinfra.cli import main
from medinfra.history import open_history
from medinfra.history.store import parse_location, redact
from medinfra.problems import PrerequisiteError, UserInputError
from medinfra.report.findings_file import finding_validator, plainly_valid
from medinfra.report.publish import publish
from medinfra.signing import MANIFEST, generate_keypair, verify_directory
from tests.unit.test_report import two_host_run

FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
TEXTS = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)) | st.sampled_from("\0\x1b\u202e\ud800"))
SCALARS = (
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False, allow_infinity=False)
    | TEXTS | st.sampled_from(["pass", "waived", "fail", "2026-11-22T08:00:00Z", "root_login_off", "lis-01", ""])
)
JSON = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXTS, inner, max_size=4),
                    max_leaves=12)
REAL = findings_document(two_host_run())
# The real catalog's frameworks and clauses, which the two-host run leaves out.
SYNTHETIC = synthetic_document(3, 6)


def paths(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every path to a value inside a JSON document, the document itself first."""
    yield path
    children = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, child in children:
        yield from paths(child, (*path, key))


@st.composite
def mutated(draw: st.DrawFn, base: Any = REAL) -> Any:
    """The real document with one to three parts replaced, removed, added to or duplicated."""
    document = json.loads(json.dumps(base))
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(list(paths(document))))
        if not path:
            continue
        parent = document
        for key in path[:-1]:
            parent = parent[key]
        key = path[-1]
        action = draw(st.sampled_from(["replace", "remove", "add", "duplicate"]))
        if action == "replace":
            parent[key] = draw(JSON)
        elif action == "remove":
            del parent[key]
        elif action == "add" and isinstance(parent[key], dict):
            parent[key][draw(TEXTS)] = draw(JSON)
        elif action == "add" and isinstance(parent[key], list):
            parent[key].append(draw(JSON))
        elif isinstance(parent, list):
            parent.append(json.loads(json.dumps(parent[key])))
    return document


def render(tmp_path: Path, document: Any, capsys: pytest.CaptureFixture[str]) -> int:
    """`medinfra report` on the document; only exit 0 or a located problem (exit 2) may come of it."""
    source = tmp_path / "findings.json"
    source.write_text(json.dumps(document, ensure_ascii=False), encoding="utf-8", errors="surrogatepass")
    code = main(["report", str(source), "-o", str(tmp_path / "out"), "--lang", "en", "--no-history"])
    err = capsys.readouterr().err
    assert code in (0, 2), err
    assert code == 0 or all(line.startswith(f"{source}:") for line in err.splitlines()), err
    return code


@FUZZ
@given(document=JSON)
def test_random_documents_are_refused_with_located_problems(tmp_path, capsys, document):
    assert render(tmp_path, document, capsys) == 2


@FUZZ
@given(document=st.sampled_from([REAL, SYNTHETIC]).flatmap(mutated))
def test_mutated_real_documents_render_or_are_refused(tmp_path, capsys, document):
    render(tmp_path, document, capsys)


@settings(max_examples=300, deadline=None)
@given(record=mutated(REAL["findings"][0]))
def test_the_quick_finding_check_never_passes_what_the_schema_refuses(record):
    if plainly_valid(record):
        assert list(finding_validator().iter_errors(record)) == []


@pytest.fixture(scope="module")
def signed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    directory = tmp_path_factory.mktemp("signed")
    private, public = generate_keypair(directory / "keys" / "audit")
    publish(two_host_run(), directory / "reports", None, private)
    return directory / "reports", public


MANIFEST_LINES = st.lists(
    st.binary(max_size=80)
    | st.builds(lambda digest, name: digest + b"  " + name, st.sampled_from([b"0" * 64, b"\\" + b"f" * 64]),
                st.binary(max_size=30) | st.sampled_from([b"findings.json", b"../x", b"/etc/shadow", b"a\\nb", b"."])),
    max_size=6,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lines=MANIFEST_LINES, ending=st.sampled_from([b"\n", b"", b"\r\n"]))
def test_any_manifest_is_verified_without_an_exception(signed, lines, ending):
    directory, public = signed
    original = (directory / MANIFEST).read_bytes()
    try:
        (directory / MANIFEST).write_bytes(b"\n".join(lines) + ending)
        result = verify_directory(directory, public)
    finally:
        (directory / MANIFEST).write_bytes(original)
    assert not result.ok


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(location=st.text() | st.builds(lambda scheme, rest: scheme + rest, st.sampled_from(
    ["postgresql://", "POSTGRES://", "host=", "password=", "mysql://", "~/", "/dev/", "file:"]), st.text()))
def test_any_history_location_is_a_location_or_a_located_problem(tmp_path, monkeypatch, location):
    monkeypatch.chdir(tmp_path)
    try:
        parsed = parse_location(location)
    except UserInputError:
        return
    assert redact(location) == parsed.shown
    if not parsed.postgres:  # a server named by random text would be looked up; a file is only read
        with suppress(UserInputError, PrerequisiteError):
            open_history(location, read_only=True).close()
    assert os.listdir(tmp_path) == []


SECRETS = st.text(string.ascii_letters + string.digits + "-_.~!$*,;", min_size=8, max_size=20)
TEMPLATES = [
    "postgresql://audit:{}@db:5432/history",
    "POSTGRES://audit:{}@db/history?sslmode=require",
    "postgresql://audit@db/history?sslmode=require&password={}",
    "postgres://audit@db/history?PassWord={}&x=1",
    "host=db user=audit password={} dbname=history",
    "host=db password = '{}' dbname=history",
    "password={}",
    "host=db password='{} unterminated",
    "mysql://audit:{}@db/history",
]


@settings(max_examples=300, deadline=None)
@given(template=st.sampled_from(TEMPLATES), secret=SECRETS)
def test_no_password_is_ever_shown(template, secret):
    location = template.format(secret)
    assume(secret not in template.format(""))
    # A secret that is a word of the message itself ("postgres", "location") is shown for any password: not a leak.
    assume(secret not in shown_location(template.format("Zq-9.Xw~7")))
    assert secret not in shown_location(location) and secret not in redact(location)


def shown_location(location: str) -> str:
    """What medinfra prints for a history location: its redacted form, or the error about it."""
    try:
        return parse_location(location).shown
    except UserInputError as exc:
        return str(exc)
