"""Random and mutated topologies, controls and waivers: the loaders return or raise UserInputError, nothing else.

Mutations start from real files (the lab hospital, shipped controls, the lab's waivers) and change bytes,
lines or single values, so most inputs are nearly valid and reach the schema and semantic checks.
"""

from __future__ import annotations

import functools
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from medinfra.compliance.catalog import load_catalog, load_waivers
from medinfra.compliance.model import Catalog
from medinfra.problems import DocPath, UserInputError
from medinfra.topology import load_topology
from tests.conftest import LAB_TOPOLOGY, ROOT

CONTROLS = ("host_firewall_default_drop", "sshd_root_login_disabled", "backup_within_rpo", "audit_rules_phi_access")
WAIVERS = ROOT / "inventories" / "lab" / "waivers.yml"
FUZZ = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Bytes that change what YAML means, and bytes no file should carry.
SPECIAL = [
    b"[", b"]", b"{", b"}", b":", b": ", b",", b"- ", b"&a ", b"*a", b"!!", b"!!binary ", b"!!python/object ",
    b"|", b">", b"'", b'"', b"\n", b"  ", b"#", b"%YAML 1.1\n", b"@", b"`", b"?", b"<<: ", b"\n---\n", b"\t",
    b"\x00", b"\x1b[2J", b"\xff", b"\xed\xa0\x80", b"\\udc80", b"\xe2\x80\xae", b"9" * 5000, b"1:2" * 50,
    b"[" * 200, b"2027-13-45", b".inf", b"0x", b"~",
]
HOSTILE_VALUES: list[Any] = [
    None, True, 0, -1, 65536, 10**5000 // 10**4000, 1.5, float("inf"), "", " ", "a\nb", "\x1b[31m", "\u202e",
    "his-db\n", "/srv/his\n-w /etc/shadow", "10.231.20.11\n", "x" * 5000, [], {}, [[[[]]]], {"a": {"b": {}}},
    "2027-06-30", "zone_firewall", "firewall", "his_x", "phi", "all", "0.0.0.0/0", "10.231.0.0/16", "1-70000",
]


# Written into the YAML text as they are (a value cannot carry them): each once gave a traceback or worse.
RAW_VALUES = [
    "9" * 5000, "*a", "&a [1, 2]", "!!binary aGk=", "!!python/object:os.system x", "[" * 100 + "]" * 100, "2027-13-45",
    "!!bool maybe", "!!timestamp soon", "!!float x", "{a: 1, a: 2}", '"\\udc80"', '"\\x1b[2J"', '"\\u202e"',
    "0b" + "1" * 200, "1:2:3", ".nan", "!!set {a}", "? [a]\n  : b", "<<: {a: 1}",
]
PLACEHOLDER = "fuzz-placeholder"


@st.composite
def some_path(draw: st.DrawFn, data: Any) -> DocPath:
    """A path into the (trusted, real) document, shallow ones as likely as deep ones."""
    path: DocPath = ()
    while isinstance(data, dict | list) and data and draw(st.integers(0, 2)):
        key = draw(st.sampled_from(list(data) if isinstance(data, dict) else list(range(len(data)))))
        path, data = (*path, key), data[key]
    return path


def replaced(data: Any, path: DocPath, value: Any) -> Any:
    if not path:
        return value
    head, *rest = path
    copy = dict(data) if isinstance(data, dict) else list(data)
    copy[head] = replaced(data[head], tuple(rest), value)  # type: ignore[index]
    return copy


@st.composite
def byte_mutation(draw: st.DrawFn, original: bytes) -> bytes:
    data = bytearray(original)
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(data)))
        insert = draw(st.sampled_from(SPECIAL) | st.binary(min_size=1, max_size=8))
        action = draw(st.sampled_from(["insert", "overwrite", "delete"]))
        if action == "insert":
            data[at:at] = insert
        elif action == "overwrite":
            data[at : at + len(insert)] = insert
        else:
            del data[at : at + draw(st.integers(1, 40))]
    return bytes(data)


@st.composite
def line_mutation(draw: st.DrawFn, original: bytes) -> bytes:
    lines = original.split(b"\n")
    for _ in range(draw(st.integers(1, 3))):
        at = draw(st.integers(0, len(lines) - 1))
        action = draw(st.sampled_from(["duplicate", "delete", "swap", "indent", "dedent"]))
        if action == "duplicate":
            lines.insert(at, lines[at])
        elif action == "delete" and len(lines) > 1:
            del lines[at]
        elif action == "swap":
            other = draw(st.integers(0, len(lines) - 1))
            lines[at], lines[other] = lines[other], lines[at]
        elif action == "indent":
            lines[at] = b"  " + lines[at]
        else:
            lines[at] = lines[at][2:]
    return b"\n".join(lines)


@st.composite
def value_mutation(draw: st.DrawFn, original: bytes) -> bytes:
    data = yaml.safe_load(original)
    raw = draw(st.sampled_from(RAW_VALUES))
    data = replaced(data, draw(some_path(data)), PLACEHOLDER)
    for _ in range(draw(st.integers(0, 2))):
        data = replaced(data, draw(some_path(data)), draw(st.sampled_from(HOSTILE_VALUES) | st.text(max_size=20)))
    text = yaml.safe_dump(data, allow_unicode=True, sort_keys=False, width=draw(st.sampled_from([80, 10_000])))
    return text.replace(PLACEHOLDER, raw).encode("utf-8", "surrogatepass")


json_like = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)
random_documents = st.binary(max_size=300) | json_like.map(
    lambda value: yaml.safe_dump(value, allow_unicode=True).encode("utf-8", "surrogatepass")
)


def documents(original: bytes) -> st.SearchStrategy[bytes]:
    # Value mutations twice: they keep the document nearly valid, so they reach the checks behind the schema.
    values = value_mutation(original)
    return st.one_of(values, values, byte_mutation(original), line_mutation(original), random_documents)


def assert_only_located_problems(load: Callable[[], object]) -> None:
    try:
        load()
    except UserInputError as exc:
        for problem in exc.problems:
            text = str(problem)
            text.encode("utf-8")  # no lone surrogate reaches the terminal
            assert "\n" not in text and "\x1b" not in text


def written(directory: str, name: str, content: bytes) -> Path:
    path = Path(directory) / name
    path.write_bytes(content)
    return path


@FUZZ
@given(documents(LAB_TOPOLOGY.read_bytes()))
def test_topologies(content: bytes) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        path = written(scratch, "hospital.yml", content)
        assert_only_located_problems(lambda: load_topology(path))


@FUZZ
@given(st.sampled_from(CONTROLS).flatmap(lambda name: st.tuples(st.just(name), documents(control_bytes(name)))))
def test_controls(named: tuple[str, bytes]) -> None:
    name, content = named
    with tempfile.TemporaryDirectory() as scratch:
        (Path(scratch) / "controls").mkdir()
        (Path(scratch) / "frameworks").mkdir()  # no frameworks: one more problem, and a fast load
        written(scratch, f"controls/{name}.yml", content)
        assert_only_located_problems(lambda: load_catalog(Path(scratch)))


@FUZZ
@given(documents(WAIVERS.read_bytes()))
def test_waivers(content: bytes) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        path = written(scratch, "waivers.yml", content)
        assert_only_located_problems(lambda: load_waivers(path, shipped_catalog()))


def control_bytes(name: str) -> bytes:
    return (ROOT / "compliance" / "controls" / f"{name}.yml").read_bytes()


@functools.cache
def shipped_catalog() -> Catalog:
    return load_catalog()
