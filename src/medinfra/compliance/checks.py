"""The check language: declarative checks over an evidence document, interpreted, never eval'ed.

A check is a combinator (all, any, not), a quantifier over a list or mapping (every, some, none,
with an optional `where` filter and `min_items`), or one operator applied to the value at `fact`.
`every` and `none` over no items fail (nothing was shown) unless the check carries `empty_ok`, the
reason why a host with none is compliant.
Paths inside a quantifier are relative to the item. Every value that decided the outcome is kept
as an excerpt, keyed by its path, so a finding shows its own evidence.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from medinfra.collector import compare_debian_versions

PathPart = str | int
Outcome_ = Literal["pass", "fail", "error"]
OPERATORS = (
    "equals",
    "not_equals",
    "in",
    "not_in",
    "matches",
    "not_matches",
    "at_least",
    "at_most",
    "contains",
    "not_contains",
    "subset_of",
    "empty",
    "exists",
    "mode_within",
    "version_at_least",
    "days_since_at_most",
    "days_since_at_least",
    "days_until_at_least",
)
QUANTIFIERS = ("every", "some", "none")
EXCERPT_ITEMS = 20
EXCERPT_TEXT = 300
FAILING_ITEMS_SHOWN = 5
# Keys that name a list item in the evidence, in order of preference.
IDENTITY_KEYS = ("name", "connection", "service", "path", "purpose", "rule", "target", "mountpoint", "address")


class _Missing:
    def __repr__(self) -> str:
        return "<absent>"


MISSING: Any = _Missing()


class Unavailable(Exception):
    """The evidence says this fact could not be read on the host."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: unavailable on the host: {reason}")


@dataclass
class Outcome:
    status: Outcome_
    reason: str
    excerpt: dict[str, Any] = field(default_factory=dict)


def parse_path(path: str | list[PathPart]) -> tuple[PathPart, ...]:
    return tuple(path.split(".")) if isinstance(path, str) else tuple(path)


def show_path(parts: tuple[PathPart, ...]) -> str:
    text = ""
    for part in parts:
        if isinstance(part, int):
            text += f"[{part}]"
        elif re.fullmatch(r"[A-Za-z0-9_\-]+", part):
            text += f".{part}" if text else part
        else:
            text += f"[{part!r}]"
    return text or "(item)"


def is_unavailable(value: Any) -> bool:
    return isinstance(value, Mapping) and set(value) == {"unavailable"}


def resolve(root: Any, base: tuple[PathPart, ...], relative: tuple[PathPart, ...]) -> Any:
    """The value at base+relative below root (root is at base); MISSING when a key is absent."""
    node = root
    walked = base
    for part in relative:
        if is_unavailable(node):
            raise Unavailable(show_path(walked), node["unavailable"])
        walked = (*walked, part)
        if isinstance(node, Mapping) and not isinstance(part, int):
            node = node.get(part, MISSING)
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            node = node[part]
        else:
            return MISSING
        if node is MISSING:
            return MISSING
    if is_unavailable(node):
        raise Unavailable(show_path(walked), node["unavailable"])
    return node


def excerpt_value(value: Any) -> Any:
    """A bounded copy of a value for a finding's evidence."""
    if value is MISSING:
        return "<absent>"
    if isinstance(value, str) and len(value) > EXCERPT_TEXT:
        return value[:EXCERPT_TEXT] + "..."
    if isinstance(value, list):
        shown = [excerpt_value(v) for v in value[:EXCERPT_ITEMS]]
        return [*shown, f"... {len(value) - EXCERPT_ITEMS} more"] if len(value) > EXCERPT_ITEMS else shown
    if isinstance(value, Mapping):
        keys = list(value)[:EXCERPT_ITEMS]
        shown_map = {str(k): excerpt_value(value[k]) for k in keys}
        if len(value) > EXCERPT_ITEMS:
            shown_map["..."] = f"{len(value) - EXCERPT_ITEMS} more"
        return shown_map
    return value


def same(left: Any, right: Any) -> bool:
    """Equality that forgives the text/number/boolean spelling differences of config files."""
    if isinstance(left, bool) or isinstance(right, bool) or type(left) is not type(right):
        return str(left).lower() == str(right).lower()
    return bool(left == right)


def as_number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str) and re.fullmatch(r"-?\d+(\.\d+)?", value.strip()):
        return float(value)
    return None


def as_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def _numeric(value: Any, limit: float, test: Callable[[float, float], bool], word: str) -> tuple[bool, str]:
    number = as_number(value)
    if number is None:
        return False, f"{value!r} is not a number"
    return test(number, limit), f"{value} is {'' if test(number, limit) else 'not '}{word} {limit:g}"


def apply_operator(operator: str, argument: Any, value: Any, now: datetime) -> tuple[bool, str]:
    """(passed, why) of one operator on one value."""
    if operator == "exists":
        present = value is not MISSING and value is not None
        return present == argument, f"{'present' if present else 'absent'}"
    if operator == "empty":
        if value is MISSING:
            return False, "absent from the evidence"  # an unread list is not an empty one
        if value is None:
            return bool(argument), "none"
        if not isinstance(value, list | Mapping | str):
            return False, f"{value!r} is not a list"
        return (len(value) == 0) == argument, f"{len(value)} item(s)"
    if value is MISSING:
        return False, "absent from the evidence"
    if operator == "equals":
        return same(value, argument), f"{value!r} {'=' if same(value, argument) else '!='} {argument!r}"
    if operator == "not_equals":
        return not same(value, argument), f"{value!r} {'=' if same(value, argument) else '!='} {argument!r}"
    if operator in ("in", "not_in"):
        found = any(same(value, option) for option in argument)
        return found == (operator == "in"), f"{value!r} {'is' if found else 'is not'} in {argument!r}"
    if operator in ("matches", "not_matches"):
        if value is None or isinstance(value, list | Mapping):
            return False, f"{value!r} is no text to match"  # not "None": an absent answer matches nothing
        found = re.search(argument, str(value)) is not None
        return found == (operator == "matches"), f"{value!r} {'matches' if found else 'does not match'} /{argument}/"
    if operator == "at_least":
        return _numeric(value, argument, lambda v, limit: v >= limit, "at least")
    if operator == "at_most":
        return _numeric(value, argument, lambda v, limit: v <= limit, "at most")
    if operator in ("contains", "not_contains"):
        if isinstance(value, str):
            found = str(argument) in value
        elif isinstance(value, list):
            found = any(same(item, argument) for item in value)
        else:
            return False, f"{value!r} is neither a list nor text"
        return found == (operator == "contains"), f"{argument!r} {'found' if found else 'not found'}"
    if operator == "subset_of":
        if not isinstance(value, list):
            return False, f"{value!r} is not a list"
        extra = [item for item in value if not any(same(item, allowed) for allowed in argument)]
        return not extra, f"not allowed: {extra!r}" if extra else "all allowed"
    if operator == "mode_within":
        if not isinstance(value, str) or not re.fullmatch(r"[0-7]{3,4}", value):
            return False, f"{value!r} is not a file mode"
        extra_bits = int(value, 8) & ~int(argument, 8)
        return extra_bits == 0, f"mode {value} {'within' if not extra_bits else 'exceeds'} {argument}"
    if operator == "version_at_least":
        if not isinstance(value, str):
            return False, f"{value!r} is not a version"
        passed = compare_debian_versions(value, argument) >= 0
        return passed, f"version {value} {'>=' if passed else '<'} {argument}"
    if operator in ("days_since_at_most", "days_since_at_least", "days_until_at_least"):
        moment = as_time(value)
        if moment is None:
            return False, f"{value!r} is not a time" if value is not None else "never"
        days = (now - moment).total_seconds() / 86400
        if operator == "days_since_at_most":
            return days <= argument, f"{days:.1f} days ago (limit {argument:g})"
        if operator == "days_since_at_least":
            when = f"{days:.1f} days ago" if days >= 0 else f"{-days:.1f} days in the future"
            return days >= argument, f"{when} (need at least {argument:g} days ago)"
        return -days >= argument, f"{-days:.1f} days left (need {argument:g})"
    raise ValueError(f"unknown operator {operator}")


def operator_of(check: Mapping[str, Any]) -> str:
    return next(key for key in check if key in OPERATORS)


def run_check(check: Mapping[str, Any], root: Any, now: datetime, base: tuple[PathPart, ...] = ()) -> Outcome:
    """Evaluate one check against root (which sits at path base). Pure: reads only its arguments."""
    try:
        return _run(check, root, now, base)
    except Unavailable as exc:
        return Outcome("error", str(exc), {})


def _run(check: Mapping[str, Any], root: Any, now: datetime, base: tuple[PathPart, ...]) -> Outcome:
    if "all" in check:
        return _all([run_check(c, root, now, base) for c in check["all"]])
    if "any" in check:
        return _any([run_check(c, root, now, base) for c in check["any"]])
    if "not" in check:
        inner = run_check(check["not"], root, now, base)
        flipped: dict[str, Outcome_] = {"pass": "fail", "fail": "pass", "error": "error"}
        return Outcome(flipped[inner.status], f"not ({inner.reason})", inner.excerpt)
    relative = parse_path(check["fact"]) if "fact" in check else ()
    path = (*base, *relative)
    value = resolve(root, base, relative)
    quantifier = next((q for q in QUANTIFIERS if q in check), None)
    if quantifier is not None:
        return _quantify(quantifier, check, value, path, now)
    operator = operator_of(check)
    passed, why = apply_operator(operator, check[operator], value, now)
    return Outcome("pass" if passed else "fail", f"{show_path(path)}: {why}", {show_path(path): excerpt_value(value)})


def _all(outcomes: list[Outcome]) -> Outcome:
    excerpt = {k: v for o in outcomes for k, v in o.excerpt.items()}
    for status in ("fail", "error"):
        bad = [o for o in outcomes if o.status == status]
        if bad:
            return Outcome(status, "; ".join(o.reason for o in bad), {k: v for o in bad for k, v in o.excerpt.items()})
    return Outcome("pass", "; ".join(o.reason for o in outcomes), excerpt)


def _any(outcomes: list[Outcome]) -> Outcome:
    passed = next((o for o in outcomes if o.status == "pass"), None)
    if passed is not None:
        return passed
    excerpt = {k: v for o in outcomes for k, v in o.excerpt.items()}
    status: Outcome_ = "error" if any(o.status == "error" for o in outcomes) else "fail"
    return Outcome(status, "none of: " + " | ".join(o.reason for o in outcomes), excerpt)


def _items(value: Any, path: tuple[PathPart, ...]) -> list[tuple[tuple[PathPart, ...], Any]]:
    if isinstance(value, list):
        return [((*path, index), item) for index, item in enumerate(value)]
    if isinstance(value, Mapping):
        return [((*path, str(key)), item) for key, item in value.items()]
    raise TypeError


def identity(item: Any, item_path: tuple[PathPart, ...]) -> dict[str, Any]:
    """What names a list item (an account's name, a connection, a file's path...), so that a finding says
    which item decided it, not only its index."""
    if not isinstance(item, Mapping):
        return {}
    key = next((k for k in IDENTITY_KEYS if isinstance(item.get(k), str | int) and item.get(k) != ""), None)
    return {show_path((*item_path, key)): item[key]} if key else {}


def _quantify(
    quantifier: str, check: Mapping[str, Any], value: Any, path: tuple[PathPart, ...], now: datetime
) -> Outcome:
    where = show_path(path)
    if value is MISSING or value is None:
        return Outcome("fail", f"{where}: absent from the evidence", {where: "<absent>"})
    try:
        items = _items(value, path)
    except TypeError:
        return Outcome("fail", f"{where}: {value!r} is not a list", {where: excerpt_value(value)})
    if "where" in check:
        selected = []
        for item_path, item in items:
            chosen = run_check(check["where"], item, now, item_path)
            if chosen.status == "error":
                return Outcome("error", chosen.reason, chosen.excerpt)
            if chosen.status == "pass":
                selected.append((item_path, item))
        items = selected
    minimum = int(check.get("min_items", 0))
    if len(items) < minimum:
        return Outcome(
            "fail", f"{where}: {len(items)} matching item(s), need at least {minimum}", {where: excerpt_value(value)}
        )
    if not items and quantifier != "some":
        # `every` and `none` hold over nothing: such a pass proves nothing unless the control says why it may.
        if "empty_ok" in check:
            return Outcome("pass", f"{where}: no item(s), which is compliant: {check['empty_ok']}", {where: []})
        return Outcome(
            "fail", f"{where}: no item(s) to check, so nothing proves compliance", {where: excerpt_value(value)}
        )
    results = [(item_path, run_check(check[quantifier], item, now, item_path)) for item_path, item in items]
    for (item_path, outcome), (_, item) in zip(results, items, strict=True):
        outcome.excerpt = {**identity(item, item_path), **outcome.excerpt}
    errors = [o for _, o in results if o.status == "error"]
    passing = [o for _, o in results if o.status == "pass"]
    failing = [o for _, o in results if o.status == "fail"]
    if quantifier == "every":
        deciding, ok = failing, not failing
        summary = f"{where}: {len(passing)}/{len(results)} item(s) pass"
    elif quantifier == "some":
        # A pass is shown by the item that passed; a failure by the items that came closest to it.
        deciding, ok = (passing[:1], True) if passing else (failing, False)
        summary = f"{where}: {len(passing)} of {len(results)} item(s) pass"
    else:
        deciding, ok = passing, not passing
        summary = f"{where}: {len(passing)} item(s) match, none allowed"
    if not ok and errors and not deciding:
        return Outcome("error", errors[0].reason, errors[0].excerpt)
    if ok and errors and quantifier != "some":
        return Outcome("error", errors[0].reason, errors[0].excerpt)
    shown = deciding[:FAILING_ITEMS_SHOWN] if deciding else []
    excerpt = {k: v for o in shown for k, v in o.excerpt.items()} or {where: f"{len(results)} item(s)"}
    details = "; ".join(o.reason for o in shown)
    return Outcome("pass" if ok else "fail", f"{summary}" + (f": {details}" if details and not ok else ""), excerpt)
