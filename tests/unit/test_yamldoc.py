"""load_yaml, the one loader of YAML files people send medinfra: every hostile shape is a located problem."""

from __future__ import annotations

import glob
import os
import signal
import time
import tracemalloc
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml

from medinfra import yamldoc
from medinfra.cli import main
from medinfra.problems import Problem, UserInputError
from medinfra.yamldoc import MAX_YAML_DEPTH, load_yaml
from tests.conftest import LAB_TOPOLOGY, ROOT


@contextmanager
def deadline(seconds: int) -> Iterator[None]:
    """Fail instead of hanging when a read blocks (a FIFO without a writer blocks open() forever)."""

    def expired(signum: int, frame: Any) -> None:
        raise TimeoutError(f"still blocked after {seconds} s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@pytest.fixture(params=["libyaml", "pure-python"])
def loader(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every bound holds with libyaml and with PyYAML's own parser (used where libyaml is missing)."""
    if request.param == "pure-python":
        monkeypatch.setattr(yamldoc, "_LOADER", yaml.SafeLoader)
    return str(request.param)


def problem_of(path: Path) -> Problem:
    with pytest.raises(UserInputError) as caught:
        load_yaml(path)
    assert len(caught.value.problems) == 1, caught.value.problems
    return caught.value.problems[0]


def write(tmp_path: Path, text: str, name: str = "doc.yml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def billion_laughs(levels: int, width: int, last: str) -> str:
    lines = [f"l0: &l0 [{', '.join(['lol'] * width)}]"]
    lines += [f"l{n}: &l{n} [{', '.join([f'*l{n - 1}'] * width)}]" for n in range(1, levels)]
    return "\n".join([*lines, last.format(top=f"*l{levels - 1}")]) + "\n"


# 9 levels of 10: 10^9 strings when expanded (the 1 KB topology of the issue took 8 GB).
TOPOLOGY_BOMB = billion_laughs(9, 10, "site: {{name: x, title: {top}}}")
# 8 levels of 9 in 319 bytes: the waivers file of the issue (2.4 GB and 30 s before any validation).
WAIVERS_BOMB = billion_laughs(8, 9, "waivers: [{{control: x, hosts: {top}}}]")


@pytest.mark.parametrize("text", [TOPOLOGY_BOMB, WAIVERS_BOMB], ids=["topology", "waivers"])
def test_alias_bombs_are_refused_at_once_with_flat_memory(tmp_path: Path, loader: str, text: str) -> None:
    assert len(text) < 1100
    path = write(tmp_path, text)
    tracemalloc.start()
    started = time.perf_counter()
    try:
        problem = problem_of(path)
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert time.perf_counter() - started < 1.0
    assert peak < 2_000_000
    assert (problem.line, problem.path) == (2, ("l1", 0))
    assert "alias *l0" in problem.message and "no use for anchors and aliases" in problem.message


def test_a_single_alias_is_refused_too(tmp_path: Path, loader: str) -> None:
    problem = problem_of(write(tmp_path, "a: &x 1\nb:\n  - *x\n"))
    assert (problem.line, problem.path) == (3, ("b", 0))


@pytest.mark.parametrize(
    "text",
    [
        "[" * 100_000,
        "{a: " * 100_000,
        "".join(f"{' ' * depth}- \n" for depth in range(0, 2 * 200, 2)) + " " * 400 + "x\n",
        "".join(f"{' ' * depth}k:\n" for depth in range(200)) + " " * 200 + "k: x\n",
    ],
    ids=["flow sequences", "flow mappings", "block sequences", "block mappings"],
)
def test_deep_nesting_is_a_located_problem_not_a_recursion_error(tmp_path: Path, loader: str, text: str) -> None:
    problem = problem_of(write(tmp_path, text))
    assert problem.line is not None
    assert "nest" in problem.message  # ours (nested deeper than 64 levels) or libyaml's (maximum nesting depth)


def test_nesting_is_capped_at_the_documented_depth(tmp_path: Path, loader: str) -> None:
    inside = "[" * MAX_YAML_DEPTH + "]" * MAX_YAML_DEPTH
    assert load_yaml(write(tmp_path, f"{inside}\n")).data is not None
    problem = problem_of(write(tmp_path, f"a:\n  {'[' * MAX_YAML_DEPTH}1{']' * MAX_YAML_DEPTH}\n"))
    assert problem.message == f"nested deeper than {MAX_YAML_DEPTH} levels"
    assert problem.line == 2 and problem.path[:2] == ("a", 0)


def test_duplicate_keys_name_the_line_of_the_second(tmp_path: Path, loader: str) -> None:
    problem = problem_of(write(tmp_path, "items:\n  - name: a\n    port: 1\n    'port': 2\n"))
    assert problem.line == 4
    assert problem.path == ("items", 0, "port")
    assert problem.message == "duplicate key 'port' (first at line 3): a second value would replace the first"


def test_all_duplicates_are_compared_as_values(tmp_path: Path) -> None:
    """`1` and `0x1` are the same key once read, as are `true` and `yes`."""
    assert "duplicate key 1" in problem_of(write(tmp_path, "1: a\n0x1: b\n")).message
    assert "duplicate key True" in problem_of(write(tmp_path, "true: a\nyes: b\n")).message


@pytest.mark.parametrize("kind", ["fifo", "/dev/zero", "directory"])
def test_only_regular_files_are_read_and_nothing_blocks(tmp_path: Path, loader: str, kind: str) -> None:
    if kind == "fifo":
        path = tmp_path / "hospital.yml"
        os.mkfifo(path)
    elif kind == "directory":
        path = tmp_path
    else:
        path = Path(kind)
    with deadline(5):
        problem = problem_of(path)
    assert problem.file == str(path)
    assert problem.message.startswith("not a regular file but a ")


def test_topology_validate_refuses_dev_zero_with_a_located_message(capsys: pytest.CaptureFixture[str]) -> None:
    with deadline(5):
        code = main(["topology", "validate", "/dev/zero"])
    assert code == 2
    assert "/dev/zero: (top level): not a regular file but a character device" in capsys.readouterr().err


def test_files_over_the_size_cap_are_refused_before_reading(tmp_path: Path) -> None:
    path = tmp_path / "big.yml"
    with path.open("wb") as sparse:
        sparse.truncate(yamldoc.MAX_YAML_BYTES + 1)
    problem = problem_of(path)
    assert f"{yamldoc.MAX_YAML_BYTES + 1:,} bytes: larger than" in problem.message


def test_too_many_values(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(yamldoc, "MAX_YAML_NODES", 100)
    problem = problem_of(write(tmp_path, "[" + "a, " * 200 + "a]\n"))
    assert problem.message == "more than 100 values in one file"


def test_a_5000_digit_number_is_a_located_problem(tmp_path: Path, loader: str) -> None:
    problem = problem_of(write(tmp_path, f"flows:\n  - ports: [22, {'9' * 5000}]\n"))
    assert (problem.line, problem.path) == (2, ("flows", 0, "ports", 1))
    assert problem.message == "int of 5,000 characters: longer than the 100 allowed"


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("expires: 2027-13-45\n", "'2027-13-45' is not a valid timestamp: month must be in 1..12"),
        ("ok: !!bool maybe\n", "'maybe' is not a valid bool"),
        ("n: !!int twelve\n", "'twelve' is not a valid int"),
        ("n: !!float 1:x\n", "'1:x' is not a valid float"),
        ("blob: !!binary aGVsbG8=\n", "tag tag:yaml.org,2002:binary is not allowed here"),
        ("x: !!python/object:os.system {}\n", "tag tag:yaml.org,2002:python/object:os.system is not allowed here"),
        ("x: !!set {a: null}\n", "tag tag:yaml.org,2002:set is not allowed here"),
        ("x: !vault |\n  $ANSIBLE_VAULT;1.1\n", "tag !vault is not allowed here"),
    ],
)
def test_values_no_constructor_can_read_are_located(tmp_path: Path, loader: str, text: str, words: str) -> None:
    problem = problem_of(write(tmp_path, text))
    assert problem.line == 1 and len(problem.path) == 1
    assert words in problem.message


@pytest.mark.parametrize(
    ("content", "line", "words"),
    [
        (b"a: 1\nb: caf\xe9\n", 2, "not UTF-8 text: byte 0xe9"),
        (b"a: 1\nb: x\x1b[2Jy\n", 2, "invalid YAML"),
        (b"a: 1\n---\nb: 2\n", 2, "a second YAML document"),
        (b"a: [1, 2\n", 2, "invalid YAML"),
        (b"? [a]\n: 1\n", 1, "a mapping key must be a plain value"),
    ],
    # Named: ids made of these bytes differ between pytest-xdist's workers.
    ids=["latin-1", "escape", "second-document", "unclosed", "complex-key"],
)
def test_malformed_text(tmp_path: Path, loader: str, content: bytes, line: int, words: str) -> None:
    path = tmp_path / "doc.yml"
    path.write_bytes(content)
    problem = problem_of(path)
    assert problem.line == line and words in problem.message


def shipped_yaml() -> list[Path]:
    patterns = ("inventories/*/*.yml", "compliance/controls/*.yml", "compliance/frameworks/*.yml", "roles/*/*/main.yml")
    return sorted(Path(p) for pattern in patterns for p in glob.glob(str(ROOT / pattern)))


def test_shipped_files_read_as_pyyaml_reads_them() -> None:
    """No shipped file needs aliases, tags or duplicate keys; each reads exactly as yaml.safe_load reads it."""
    files = shipped_yaml()
    assert len(files) > 100
    for path in files:
        assert load_yaml(path).data == yaml.safe_load(path.read_text(encoding="utf-8")), path


def test_lines_point_at_each_value(loader: str) -> None:
    document = load_yaml(LAB_TOPOLOGY)
    lines = LAB_TOPOLOGY.read_text(encoding="utf-8").splitlines()
    for path in (("site", "time_servers", 0), ("hosts", 3, "address"), ("flows", 2, "ports", 0)):
        line = document.line_of(path)
        assert line is not None
        value = document.data
        for part in path:
            value = value[part]
        assert str(value) in lines[line - 1], path


@pytest.mark.parametrize("hostile", ["his\udc80db", "his\x1b[2J\x1b[32mverified", "his\ndb", "his\u202edb"])
def test_problems_print_as_one_safe_line(hostile: str) -> None:
    text = str(Problem(f"/tmp/{hostile}.yml", ("hosts", 0, hostile), f"host {hostile} is bad", 3))
    assert "\n" not in text and "\x1b" not in text and "\u202e" not in text
    text.encode("utf-8")  # a lone surrogate would make this (and print) raise
    assert "\\x1b" in text or "\\udc80" in text or "\\x0a" in text or "\\u202e" in text


def test_a_huge_value_does_not_flood_the_terminal() -> None:
    text = str(Problem("hospital.yml", ("zones", "k" * 5000), f"'{'x' * 3_000_000}' is not of type 'array'", 29))
    assert len(text) < 2500
    assert text.endswith("... (2,999,025 more characters)")
