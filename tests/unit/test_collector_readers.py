"""The collector's readers, in process (so coverage sees them), on hosts recorded from the lab
(tests/fixtures/hostroots, written by scripts/record-host-root.py, which ran the collector on each host and recorded
what it read and ran).

Three kinds of test: every section the readers compute from a recording equals what the collector reported on the
host itself (so the recording is complete and the seam reads it as the host); the facts the controls rely on have the
values the hardened hosts and the legacy host really have; and the bundled program's parsers (what `medinfra audit`
sends to hosts), fed the recorded outputs and files directly, agree with the readers.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from medinfra.collector import collector_module, default_paths
from medinfra.hostside.collector import HOST_PATHS, base
from medinfra.hostside.collector import collect as collect_document
from tests.conftest import ROOT

HOSTROOTS = ROOT / "tests" / "fixtures" / "hostroots"
HARDENED = ("his-db", "his-app", "turn", "monitor-01")
LEGACY = "lis-legacy"
HOSTS = (*HARDENED, LEGACY)
bundled = collector_module()

# Facts that differ between the host and the recording by nature: the interpreter that ran the collector, ages
# counted from "now", and what live connections answered (TLS handshakes, Prometheus' API), which no file records.
VOLATILE = (
    ("host", "python"),
    ("backup", "sets", "*", "last_success_age_minutes"),
    ("backup", "sets", "*", "within_rpo"),
    ("turn", "tls_endpoints"),
    ("monitoring", "prometheus", "interfaces"),
)


@dataclass(frozen=True)
class Recording:
    root: Path
    commands: dict[tuple[str, ...], tuple[int, str, str]]
    files: dict[str, dict[str, Any]]
    digests: dict[str, str]
    collected: dict[str, Any]  # the document the collector printed on the host, without its TLS handshakes

    def output(self, *argv: str) -> str:
        rc, stdout, _stderr = self.commands[argv]
        assert rc == 0, f"{argv} failed on the host"
        return stdout

    def output_starting(self, *argv: str) -> str:
        """The output of the one recorded command whose argv starts so (sshd's -C spec, psql's query)."""
        (found,) = [command for command in self.commands if command[: len(argv)] == argv]
        return self.output(*found)

    def text(self, path: str) -> str:
        return (self.root / path.lstrip("/")).read_text(encoding="utf-8")


def load(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


@cache
def recording(host: str) -> Recording:
    directory = HOSTROOTS / host
    commands = {tuple(item["argv"]): (item["rc"], item["stdout"], item["stderr"])
                for item in load(directory / "commands.json")}
    return Recording(directory / "root", commands, load(directory / "files.json"), load(directory / "digests.json"),
                     load(directory / "collected.json"))


@contextmanager
def reading(host: str) -> Iterator[Recording]:
    """The in-process readers read this recorded host while it lasts."""
    recorded = recording(host)
    with base.recorded_host(str(recorded.root), recorded.commands, recorded.files, recorded.digests):
        yield recorded


@cache
def document(host: str) -> dict[str, Any]:
    """The whole evidence document, every reader run in process on the recording (once per host)."""
    with reading(host):
        collected: dict[str, Any] = collect_document(default_paths())
    return collected


def facts(host: str) -> dict[str, Any]:
    return copy.deepcopy(document(host)["facts"])


def without(tree: Any, path: tuple[str, ...]) -> None:
    """Remove one (possibly wildcard `*` over a list) key path from a nested document, where it is present."""
    if not path:
        return
    if path[0] == "*" and isinstance(tree, list):
        for item in tree:
            without(item, path[1:])
    elif isinstance(tree, dict) and path[0] in tree:
        if len(path) == 1:
            del tree[path[0]]
        else:
            without(tree[path[0]], path[1:])


def comparable(all_facts: dict[str, Any]) -> dict[str, Any]:
    kept = copy.deepcopy(all_facts)
    kept.pop("tls", None)
    for path in VOLATILE:
        without(kept, path)
    return kept


def test_the_recordings_are_the_lab_hosts_the_tests_name() -> None:
    assert sorted(path.name for path in HOSTROOTS.iterdir() if path.is_dir()) == sorted(HOSTS)
    assert default_paths() == dict(HOST_PATHS)  # what the recorder handed the collector on every host


@pytest.mark.parametrize("host", HOSTS)
def test_every_reader_on_the_recording_reports_what_it_reported_on_the_host(host: str) -> None:
    on_host = comparable(recording(host).collected["facts"])
    here = comparable(facts(host))
    assert sorted(here) == sorted(on_host)
    for section in sorted(on_host):
        assert here[section] == on_host[section], f"{host}: section {section} differs from the host's"


@pytest.mark.parametrize("host", HOSTS)
def test_what_a_recording_cannot_answer_is_unavailable_not_guessed(host: str) -> None:
    assert facts(host)["tls"] == {"unavailable": f"TLS handshakes: {base.NOT_RECORDED}"}
    with reading(host):
        assert base.run(["sshd", "-V"])[0] == 127  # a command not recorded is not there, never run here
    assert base.HOST.root == "/" and base.HOST.commands is None  # left as on a host
