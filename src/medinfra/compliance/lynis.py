"""Cross-validation of medinfra's verdicts with Lynis's, on the checks both make.

Lynis (CISOfy, GPL) is the auditor most operators already know. Where it tests what a medinfra control tests,
the two are independent implementations of the same check: when they agree, each confirms the other; when they
disagree, one of them reads something else, holds a different threshold or is wrong, and the difference has to
be explained (compliance/README.md, "Cross-validation with Lynis").

Lynis writes what it found to /var/log/lynis-report.dat, one `key=value` a line; the lines used here:

- `tests_executed=ID|ID|...|` and `tests_skipped=...`: every test Lynis registered, run or skipped;
- `suggestion[]=ID|text|details|solution|` and `warning[]=...` (a details or solution of `-` means none);
- `details[]=ID|service|desc:...;field:...;prefval:...;value:...;|`: one record per setting for the tests that
  check several (SSH-7408 per sshd option, KRNL-6000 per sysctl key; KRNL-6000's own suggestion names none).

`compliance/lynis_overlap.yml` says which control overlaps which test and how to pick the setting out of a test
that reports several. Lynis's verdict on one overlap: `not_run` when the test was skipped or never registered,
`fail` when it reported a selected suggestion or warning, `pass` otherwise. A test that only scores (hardening
points) reports nothing either way, so it cannot be compared and is listed apart (`unreported`).

Pure: no I/O; the callers read the files.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

LynisVerdict = Literal["pass", "fail", "not_run"]
ItemKind = Literal["suggestion", "warning", "details"]

_FINDING_KINDS: Mapping[str, ItemKind] = {"suggestion[]": "suggestion", "warning[]": "warning"}
_OVERLAP_KEYS = frozenset({"control", "lynis_test", "setting", "details", "text", "medinfra", "lynis"})
_UNREPORTED_KEYS = frozenset({"control", "lynis_test", "note"})
_TEST_ID = re.compile(r"^[A-Z]{2,5}-\d{4}$")
# medinfra's finding statuses, as the comparison sees them: a waived finding is a failure someone accepted.
_MEDINFRA_VERDICTS = {"pass": "pass", "fail": "fail", "waived": "fail"}


@dataclass(frozen=True)
class Item:
    """One thing Lynis reported against a test.

    For a suggestion or warning, `text` and `details` are its second and third columns (`-` becomes empty).
    For a `details[]` record, `text` is its description and `details` the setting it names (`field`), with
    the value found and the one Lynis prefers, so a table can say what Lynis saw.
    """

    kind: ItemKind
    test: str
    text: str
    details: str
    found: str = ""
    wanted: str = ""

    def describe(self) -> str:
        """One line for a table: the setting with both values, or the suggestion's text and details."""
        if self.kind == "details":
            return f"{self.details}={self.found} (Lynis wants {self.wanted or 'another value'})"
        return f"{self.kind}: {self.text}" + (f" [{self.details}]" if self.details else "")


@dataclass(frozen=True)
class Report:
    """What one run of Lynis says: the tests it ran and skipped, and what each reported."""

    executed: frozenset[str]
    skipped: frozenset[str]
    items: tuple[Item, ...]
    values: Mapping[str, tuple[str, ...]]

    def items_for(self, test: str) -> tuple[Item, ...]:
        return tuple(item for item in self.items if item.test == test)

    def value(self, key: str) -> str | None:
        """The last value of a key (`hardening_index`, `lynis_version`); None when the report lacks it."""
        found = self.values.get(key)
        return found[-1] if found else None


@dataclass(frozen=True)
class Overlap:
    """One medinfra control against one Lynis test, narrowed to a setting when the test reports several."""

    control: str
    lynis_test: str
    setting: str
    details: re.Pattern[str] | None
    text: re.Pattern[str] | None
    medinfra_checks: str
    lynis_checks: str


@dataclass(frozen=True)
class Unreported:
    """An overlap whose Lynis test only scores or logs, so its report holds no verdict."""

    control: str
    lynis_test: str
    note: str


@dataclass(frozen=True)
class OverlapCatalog:
    overlaps: tuple[Overlap, ...]
    unreported: tuple[Unreported, ...]
    lynis_version: str

    def controls(self) -> frozenset[str]:
        return frozenset(entry.control for entry in self.overlaps) | {entry.control for entry in self.unreported}

    def tests(self) -> frozenset[str]:
        return frozenset(entry.lynis_test for entry in self.overlaps) | {entry.lynis_test for entry in self.unreported}


@dataclass(frozen=True)
class Verdict:
    """Lynis's verdict on one overlap, with the items that decided a failure (or why it did not run)."""

    verdict: LynisVerdict
    evidence: tuple[str, ...]


@dataclass(frozen=True)
class Row:
    """One overlap on one host: both verdicts and whether they agree (None: at least one side cannot say)."""

    host: str
    overlap: Overlap
    medinfra: str
    lynis: LynisVerdict
    lynis_evidence: tuple[str, ...]
    agree: bool | None


@dataclass(frozen=True)
class Agreement:
    """How many of a host's overlaps agree, of those where both sides gave pass or fail."""

    host: str
    agree: int
    compared: int
    total: int

    def disagree(self) -> int:
        return self.compared - self.agree


# --- the report ---------------------------------------------------------------------------------------------------


def parse_report(text: str) -> Report:
    """Read a lynis-report.dat. Lines that are not `key=value` (the `#` header) are ignored, never an error:
    the report is Lynis's, and a line this reader does not know says nothing about the checks compared."""
    values: dict[str, list[str]] = {}
    items: list[Item] = []
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if not sep or line.startswith("#"):
            continue
        values.setdefault(key, []).append(value)
        if key in _FINDING_KINDS:
            items.append(_finding(_FINDING_KINDS[key], value))
        elif key == "details[]":
            items.append(_details_record(value))
    return Report(
        executed=_test_list(values.get("tests_executed")),
        skipped=_test_list(values.get("tests_skipped")),
        items=tuple(items),
        values={key: tuple(found) for key, found in values.items()},
    )


def _test_list(values: Sequence[str] | None) -> frozenset[str]:
    return frozenset(test for value in values or () for test in value.split("|") if test)


def _column(fields: Sequence[str], index: int) -> str:
    value = fields[index].strip() if index < len(fields) else ""
    return "" if value == "-" else value


def _finding(kind: ItemKind, value: str) -> Item:
    fields = value.split("|")
    return Item(kind=kind, test=fields[0], text=_column(fields, 1), details=_column(fields, 2))


def _details_record(value: str) -> Item:
    """`ID|service|desc:...;field:...;prefval:...;value:...;|`: the record's parts split on `;`, each on its
    first `:` (descriptions hold colons, e.g. "perf_event_open() system call.")."""
    fields = value.split("|")
    parts: dict[str, str] = {}
    for part in _column(fields, 2).split(";"):
        name, sep, content = part.partition(":")
        if sep:
            parts[name.strip()] = content
    return Item(
        kind="details",
        test=fields[0],
        text=parts.get("desc", ""),
        details=parts.get("field", ""),
        found=parts.get("value", ""),
        wanted=parts.get("prefval", ""),
    )


# --- the overlap file ---------------------------------------------------------------------------------------------


def load_overlaps(data: Any) -> OverlapCatalog:
    """Build the catalog from compliance/lynis_overlap.yml as parsed YAML. Any problem raises ValueError naming
    the entry: a typo in a key or a regex would otherwise silently select nothing and turn every Lynis verdict
    on that entry into a pass."""
    if not isinstance(data, Mapping):
        raise ValueError("lynis overlap file: expected a mapping with overlaps and unreported")
    overlaps = tuple(_overlap(index, entry) for index, entry in enumerate(_entries(data, "overlaps")))
    unreported = tuple(_unreported(index, entry) for index, entry in enumerate(_entries(data, "unreported")))
    seen: set[tuple[str, str, str]] = set()
    for overlap in overlaps:
        key = (overlap.control, overlap.lynis_test, overlap.setting)
        if key in seen:
            raise ValueError(f"overlaps: {'/'.join(key)} is listed twice")
        seen.add(key)
    reported = {(entry.control, entry.lynis_test) for entry in overlaps}
    for entry in unreported:
        if (entry.control, entry.lynis_test) in reported:
            raise ValueError(f"unreported: {entry.control}/{entry.lynis_test} is also in overlaps")
    return OverlapCatalog(overlaps=overlaps, unreported=unreported, lynis_version=str(data.get("lynis_version", "")))


def _entries(data: Mapping[str, Any], key: str) -> list[Mapping[str, Any]]:
    entries = data.get(key) or []
    if not isinstance(entries, list) or not all(isinstance(entry, Mapping) for entry in entries):
        raise ValueError(f"{key}: expected a list of mappings")
    return entries


def _required(where: str, entry: Mapping[str, Any], key: str) -> str:
    value = entry.get(key)
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{where}: {key} is required (a non-empty string)")
    return value


def _identity(where: str, entry: Mapping[str, Any], allowed: frozenset[str]) -> tuple[str, str]:
    unknown = sorted(set(entry) - allowed)
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {', '.join(unknown)}")
    control = _required(where, entry, "control")
    test = _required(where, entry, "lynis_test")
    if not _TEST_ID.match(test):
        raise ValueError(f"{where}: lynis_test {test!r} is not a Lynis test id such as SSH-7408")
    return control, test


def _pattern(where: str, entry: Mapping[str, Any], key: str) -> re.Pattern[str] | None:
    if key not in entry:
        return None
    source = _required(where, entry, key)
    try:
        return re.compile(source)
    except re.error as problem:
        raise ValueError(f"{where}: {key} is not a regular expression: {problem}") from None


def _overlap(index: int, entry: Mapping[str, Any]) -> Overlap:
    where = f"overlaps[{index}]"
    control, test = _identity(where, entry, _OVERLAP_KEYS)
    setting = entry.get("setting", "")
    if not isinstance(setting, str):
        raise ValueError(f"{where}: setting must be a string")
    return Overlap(
        control=control,
        lynis_test=test,
        setting=setting,
        details=_pattern(where, entry, "details"),
        text=_pattern(where, entry, "text"),
        medinfra_checks=_required(where, entry, "medinfra"),
        lynis_checks=_required(where, entry, "lynis"),
    )


def _unreported(index: int, entry: Mapping[str, Any]) -> Unreported:
    where = f"unreported[{index}]"
    control, test = _identity(where, entry, _UNREPORTED_KEYS)
    return Unreported(control=control, lynis_test=test, note=_required(where, entry, "note"))


# --- verdicts -----------------------------------------------------------------------------------------------------


def selects(overlap: Overlap, item: Item) -> bool:
    """Whether a reported item is about this overlap's setting.

    Without a selector every suggestion and warning of the test counts (the test checks one thing). A `details`
    selector matches a suggestion's or warning's details and a `details[]` record's setting; a `text` selector
    matches a suggestion's or warning's text; given both, both must match. A `details[]` record has no text, so
    only a details selector alone picks it: records alone never fail an overlap that has no selector, since
    some tests (nginx's) write records that are observations, not findings.
    """
    if item.test != overlap.lynis_test:
        return False
    if item.kind == "details":
        return overlap.details is not None and overlap.text is None and bool(overlap.details.search(item.details))
    if overlap.details is not None and not overlap.details.search(item.details):
        return False
    return overlap.text is None or bool(overlap.text.search(item.text))


def lynis_verdict(report: Report, overlap: Overlap) -> Verdict:
    """Lynis's verdict on one overlap. A skipped test (prerequisite missing, wrong OS, not root) is `not_run`,
    never a pass: Lynis did not look. A test absent from both lists was never registered (another version)."""
    test = overlap.lynis_test
    if test in report.skipped:
        return Verdict("not_run", (f"{test} skipped",))
    if test not in report.executed:
        return Verdict("not_run", (f"{test} not registered",))
    matched = tuple(item.describe() for item in report.items_for(test) if selects(overlap, item))
    return Verdict("fail", matched) if matched else Verdict("pass", ())


def medinfra_verdict(status: str | None) -> str:
    """medinfra's side of the comparison: pass, fail (a waived finding failed), or what makes it incomparable
    (`error`, `not_applicable`, `absent` when the audit has no finding for the control on that host)."""
    if status is None:
        return "absent"
    return _MEDINFRA_VERDICTS.get(status, status)


def agreement(medinfra: str, lynis: LynisVerdict) -> bool | None:
    """Agree or not when both sides said pass or fail; None otherwise, so that a control that does not apply
    or a test Lynis skipped is neither counted as an agreement nor as a disagreement."""
    if medinfra not in ("pass", "fail") or lynis == "not_run":
        return None
    return medinfra == lynis


def statuses_by_host(findings: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, str]]:
    """`{host: {control: status}}` from the `findings` of a findings.json (or the recorded subset of it)."""
    statuses: dict[str, dict[str, str]] = {}
    for finding in findings:
        statuses.setdefault(str(finding["host"]), {})[str(finding["control"])] = str(finding["status"])
    return statuses


def compare(host: str, report: Report, statuses: Mapping[str, str], overlaps: Iterable[Overlap]) -> tuple[Row, ...]:
    """One row per overlap for one host: medinfra's status of the control against Lynis's verdict."""
    rows = []
    for overlap in overlaps:
        lynis = lynis_verdict(report, overlap)
        medinfra = medinfra_verdict(statuses.get(overlap.control))
        rows.append(
            Row(
                host=host,
                overlap=overlap,
                medinfra=medinfra,
                lynis=lynis.verdict,
                lynis_evidence=lynis.evidence,
                agree=agreement(medinfra, lynis.verdict),
            )
        )
    return tuple(rows)


def summarise(host: str, rows: Sequence[Row]) -> Agreement:
    compared = [row for row in rows if row.agree is not None]
    return Agreement(host=host, agree=sum(1 for row in compared if row.agree), compared=len(compared), total=len(rows))
