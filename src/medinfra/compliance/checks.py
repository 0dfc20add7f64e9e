"""The check language: declarative checks over an evidence document, interpreted, never eval'ed.

A check is a combinator (all, any, not), a quantifier over a list or mapping (every, some, none,
with an optional `where` filter and `min_items`), or one operator applied to the value at `fact`.
`every` and `none` over no items fail (nothing was shown) unless the check carries `empty_ok`, the
reason why a host with none is compliant.
Paths inside a quantifier are relative to the item. Every value that decided the outcome is kept
as an excerpt, keyed by its path, so a finding shows its own evidence.
Evidence comes from hosts that may be hostile: a pattern is never applied to more than MATCHED_TEXT_LIMIT
characters (longer text leaves the check `error`), so no check backtracks for long.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import Any, Literal

from medinfra.collector import compare_debian_versions

PathPart = str | int
Outcome_ = Literal["pass", "fail", "error"]
QUANTIFIERS = ("every", "some", "none")
EXCERPT_ITEMS = 20
EXCERPT_TEXT = 300
FAILING_ITEMS_SHOWN = 5
# Longest text a `matches`/`not_matches` pattern is applied to; the longest the collector writes is under 500
# characters (an sshd algorithm list), audit rule lines about 120.
MATCHED_TEXT_LIMIT = 4096
# Keys that name a list item in the evidence, in order of preference.
IDENTITY_KEYS = ("name", "connection", "service", "path", "purpose", "rule", "target", "mountpoint", "address")


# Python's own regex parser and its opcodes.
_PARSER: Any = importlib.import_module("re._parser")
_SRE: Any = importlib.import_module("re._constants")
_REPEATS = (_SRE.MAX_REPEAT, _SRE.MIN_REPEAT, _SRE.POSSESSIVE_REPEAT)


def nested_repetition(pattern: str) -> bool:
    """Whether a part of variable length repeats inside an unbounded repeat (`(a+)+`, `(\\S+\\s*)*`, `(a{1,3})*`):
    the shape that backtracks exponentially on text built to fail. Read from Python's own parse of the pattern
    (re._parser: the only parser that agrees with `re` on every pattern; typeshed does not describe it)."""
    return _nested_in(_PARSER.parse(pattern), inside_unbounded=False)


def _nested_in(items: Any, inside_unbounded: bool) -> bool:
    for op, argument in items:
        if op in _REPEATS:
            low, high, inner = argument
            if inside_unbounded and high != low:
                return True
            if _nested_in(inner, inside_unbounded or high == _SRE.MAXREPEAT):
                return True
        elif any(_nested_in(group, inside_unbounded) for group in _groups(op, argument)):
            return True
    return False


def _groups(op: Any, argument: Any) -> list[Any]:
    """The parts of a parsed group, alternation or lookaround that a repeat around it repeats."""
    if op == _SRE.SUBPATTERN:
        return [argument[-1]]
    if op == _SRE.BRANCH:
        return list(argument[1])
    if op in (_SRE.ASSERT, _SRE.ASSERT_NOT):
        return [argument[1]]
    return []


class _Missing:
    def __repr__(self) -> str:
        return "<absent>"


MISSING: Any = _Missing()


class Undecided(Exception):
    """The evidence cannot decide a check either way: the check gives `error`, with this reason."""


class Unavailable(Undecided):
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


PLAIN_KEY = re.compile(r"[A-Za-z0-9_\-]+")


# Cached: an audit shows the same few thousand paths hundreds of thousands of times (every check of every item
# of every host), and spelling them out was a tenth of the evaluator's time.
@lru_cache(maxsize=2**16)
def show_path(parts: tuple[PathPart, ...]) -> str:
    text = ""
    for part in parts:
        if isinstance(part, int):
            text += f"[{part}]"
        elif PLAIN_KEY.fullmatch(part):
            text += f".{part}" if text else part
        else:
            text += f"[{part!r}]"
    return text or "(item)"


# JSON's other types, ruled out before asking the Mapping ABC, whose isinstance is a Python-level call that the
# evaluator made a million times per hundred hosts.
NOT_MAPPINGS = (str, int, float, list, type(None))


def is_mapping(value: Any) -> bool:
    """isinstance(value, Mapping), quickly for evidence (JSON)."""
    return isinstance(value, dict) or (not isinstance(value, NOT_MAPPINGS) and isinstance(value, Mapping))


def is_unavailable(value: Any) -> bool:
    return is_mapping(value) and set(value) == {"unavailable"}


def resolve(root: Any, base: tuple[PathPart, ...], relative: tuple[PathPart, ...]) -> Any:
    """The value at base+relative below root (root is at base); MISSING when a key or an item is absent (or a
    value on the way is None). A value on the way that cannot hold the next part (text where a mapping belongs)
    is malformed evidence, which decides nothing."""
    node = root
    walked = base
    for part in relative:
        if is_unavailable(node):
            raise Unavailable(show_path(walked), node["unavailable"])
        if is_mapping(node) and not isinstance(part, int):
            node = node.get(part, MISSING)
        elif isinstance(node, list) and isinstance(part, int):
            node = node[part] if 0 <= part < len(node) else MISSING
        elif node is None:
            return MISSING
        else:
            raise Undecided(f"{show_path(walked)}: {excerpt_value(node)!r} cannot hold {show_path((part,))}")
        walked = (*walked, part)
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
    if is_mapping(value):
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


# --- operators: each a small function of (argument, value, now) -> (passed, why), registered with the JSON Schema
# of its argument; the control schema's operator alternatives are generated from this registry.

OperatorTest = Callable[[Any, Any, datetime], tuple[bool, str]]
SCALAR_SCHEMA: dict[str, Any] = {"$ref": "#/$defs/scalar"}
SCALARS_SCHEMA: dict[str, Any] = {"type": "array", "minItems": 1, "items": SCALAR_SCHEMA}


@dataclass(frozen=True)
class Operator:
    name: str
    argument: dict[str, Any]  # JSON Schema of the argument in a control
    test: OperatorTest
    judges_absence: bool = False  # whether it decides on a value absent from the evidence itself
    reads_many: bool = False  # whether it reads a list (or text, or a mapping) rather than one value


OPERATORS: dict[str, Operator] = {}


def operator(
    name: str, argument: dict[str, Any], judges_absence: bool = False, reads_many: bool = False
) -> Callable[[OperatorTest], OperatorTest]:
    def register(test: OperatorTest) -> OperatorTest:
        OPERATORS[name] = Operator(name, argument, test, judges_absence, reads_many)
        return test

    return register


def operator_schema() -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The control schema's part for operators: one `required` alternative each, and each argument's schema."""
    return [{"required": [name]} for name in OPERATORS], {name: op.argument for name, op in OPERATORS.items()}


@operator("exists", {"type": "boolean"}, judges_absence=True, reads_many=True)
def _exists(argument: Any, value: Any, now: datetime) -> tuple[bool, str]:
    present = value is not MISSING and value is not None
    return present == argument, f"{'present' if present else 'absent'}"


@operator("empty", {"type": "boolean"}, judges_absence=True, reads_many=True)
def _empty(argument: Any, value: Any, now: datetime) -> tuple[bool, str]:
    if value is MISSING:
        return False, "absent from the evidence"  # an unread list is not an empty one
    if value is None:
        return bool(argument), "none"
    if not isinstance(value, list | Mapping | str):
        raise Undecided(f"{value!r} where a list was expected")
    return (len(value) == 0) == argument, f"{len(value)} item(s)"


@operator("equals", SCALAR_SCHEMA)
def _equals(argument: Any, value: Any, now: datetime) -> tuple[bool, str]:
    return same(value, argument), f"{value!r} {'=' if same(value, argument) else '!='} {argument!r}"


@operator("not_equals", SCALAR_SCHEMA)
def _not_equals(argument: Any, value: Any, now: datetime) -> tuple[bool, str]:
    return not same(value, argument), f"{value!r} {'=' if same(value, argument) else '!='} {argument!r}"


def _one_of(argument: Any, value: Any) -> tuple[bool, str]:
    found = any(same(value, option) for option in argument)
    return found, f"{value!r} {'is' if found else 'is not'} in {argument!r}"


@operator("in", SCALARS_SCHEMA)
def _in(argument: Any, value: Any, now: datetime) -> tuple[bool, str]:
    return _one_of(argument, value)


@operator("not_in", SCALARS_SCHEMA)
def _not_in(argument: Any, value: Any, now: datetime) -> tuple[bool, str]:
    found, why = _one_of(argument, value)
    return not found, why


def _search(pattern: str, value: Any) -> tuple[bool | None, str]:
    if value is None:
        return None, "None is no text to match"  # not "None": an absent answer matches nothing
    text = str(value)
    if len(text) > MATCHED_TEXT_LIMIT:
        # Python's re backtracks: an unanchored `.*` pattern takes time quadratic in the text (32 s here for one
        # 334 KB line). Cutting the text could hide the part that decides, so the check cannot say.
        raise Undecided(f"{len(text)} characters, more than the {MATCHED_TEXT_LIMIT} a pattern is matched against")
    found = re.search(pattern, text) is not None
    return found, f"{value!r} {'matches' if found else 'does not match'} /{pattern}/"


@operator("matches", {"type": "string", "minLength": 1})
def _matches(argument: Any, value: Any, now: datetime) -> tuple[bool, str]:
    found, why = _search(argument, value)
    return found is True, why


@operator("not_matches", {"type": "string", "minLength": 1})
def _not_matches(argument: Any, value: Any, now: datetime) -> tuple[bool, str]:
    found, why = _search(argument, value)
    return found is False, why


@operator("at_least", {"type": "number"})
def _at_least(argument: Any, value: Any, now: datetime) -> tuple[bool, str]:
    return _numeric(value, argument, lambda v, limit: v >= limit, "at least")


@operator("at_most", {"type": "number"})
def _at_most(argument: Any, value: Any, now: datetime) -> tuple[bool, str]:
    return _numeric(value, argument, lambda v, limit: v <= limit, "at most")


def _holds(argument: Any, value: Any) -> tuple[bool | None, str]:
    if value is None:
        return None, "None is not a list"
    if not isinstance(value, list):
        raise Undecided(f"{excerpt_value(value)!r} where a list was expected")
    inner = next((item for item in value if isinstance(item, list | Mapping)), None)
    if inner is not None:
        raise Undecided(f"item {excerpt_value(inner)!r} of the list is not one value")
    found = any(same(item, argument) for item in value)
    return found, f"{argument!r} {'found' if found else 'not found'}"


@operator("contains", SCALAR_SCHEMA, reads_many=True)
def _contains(argument: Any, value: Any, now: datetime) -> tuple[bool, str]:
    found, why = _holds(argument, value)
    return found is True, why


@operator("not_contains", SCALAR_SCHEMA, reads_many=True)
def _not_contains(argument: Any, value: Any, now: datetime) -> tuple[bool, str]:
    found, why = _holds(argument, value)
    return found is False, why


@operator("subset_of", {"type": "array", "items": SCALAR_SCHEMA}, reads_many=True)
def _subset_of(argument: Any, value: Any, now: datetime) -> tuple[bool, str]:
    if value is None:
        return False, "None is not a list"
    if not isinstance(value, list):
        raise Undecided(f"{excerpt_value(value)!r} where a list was expected")
    extra = [item for item in value if not any(same(item, allowed) for allowed in argument)]
    return not extra, f"not allowed: {extra!r}" if extra else "all allowed"


@operator("mode_within", {"type": "string", "pattern": "^0?[0-7]{3,4}$"})
def _mode_within(argument: Any, value: Any, now: datetime) -> tuple[bool, str]:
    if not isinstance(value, str) or not re.fullmatch(r"[0-7]{3,4}", value):
        return False, f"{value!r} is not a file mode"
    extra_bits = int(value, 8) & ~int(argument, 8)
    return extra_bits == 0, f"mode {value} {'within' if not extra_bits else 'exceeds'} {argument}"


@operator("version_at_least", {"type": "string", "minLength": 1})
def _version_at_least(argument: Any, value: Any, now: datetime) -> tuple[bool, str]:
    if not isinstance(value, str):
        return False, f"{value!r} is not a version"
    passed = compare_debian_versions(value, argument) >= 0
    return passed, f"version {value} {'>=' if passed else '<'} {argument}"


def _days_since(value: Any, now: datetime) -> tuple[float | None, str]:
    """Days from the time in `value` to now (negative for a future time), or None and why not."""
    moment = as_time(value)
    if moment is None:
        return None, f"{value!r} is not a time" if value is not None else "never"
    return (now - moment).total_seconds() / 86400, ""


@operator("days_since_at_most", {"type": "number", "minimum": 0})
def _days_since_at_most(argument: Any, value: Any, now: datetime) -> tuple[bool, str]:
    days, why = _days_since(value, now)
    if days is None:
        return False, why
    return days <= argument, f"{days:.1f} days ago (limit {argument:g})"


@operator("days_since_at_least", {"type": "number"})
def _days_since_at_least(argument: Any, value: Any, now: datetime) -> tuple[bool, str]:
    days, why = _days_since(value, now)
    if days is None:
        return False, why
    when = f"{days:.1f} days ago" if days >= 0 else f"{-days:.1f} days in the future"
    return days >= argument, f"{when} (need at least {argument:g} days ago)"


@operator("days_until_at_least", {"type": "number"})
def _days_until_at_least(argument: Any, value: Any, now: datetime) -> tuple[bool, str]:
    days, why = _days_since(value, now)
    if days is None:
        return False, why
    return -days >= argument, f"{-days:.1f} days left (need {argument:g})"


def apply_operator(name: str, argument: Any, value: Any, now: datetime) -> tuple[bool, str]:
    """(passed, why) of one operator on one value; a value absent from the evidence passes none but those that
    judge absence themselves."""
    registered = OPERATORS.get(name)
    if registered is None:
        raise ValueError(f"unknown operator {name}")
    if value is MISSING and not registered.judges_absence:
        return False, "absent from the evidence"
    if isinstance(value, list | Mapping) and not registered.reads_many:
        # Malformed evidence decides nothing: a list where one value belongs is neither equal nor unequal to it.
        raise Undecided(f"{excerpt_value(value)!r} where one value was expected")
    return registered.test(argument, value, now)


def operator_of(check: Mapping[str, Any]) -> str:
    return next(key for key in check if key in OPERATORS)


def run_check(check: Mapping[str, Any], root: Any, now: datetime, base: tuple[PathPart, ...] = ()) -> Outcome:
    """Evaluate one check against root (which sits at path base). Pure: reads only its arguments."""
    try:
        return _run(check, root, now, base)
    except Undecided as exc:
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
    shown = show_path(path)
    excerpt = {shown: excerpt_value(value)}
    try:
        passed, why = apply_operator(operator, check[operator], value, now)
    except Undecided as exc:
        return Outcome("error", f"{shown}: {exc}", excerpt)
    return Outcome("pass" if passed else "fail", f"{shown}: {why}", excerpt)


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
    if not is_mapping(item):
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
        return Outcome("error", f"{where}: {value!r} where a list was expected", {where: excerpt_value(value)})
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
    # Like `all` and `any`: an item that cannot be judged leaves `some` undecided unless another item passes (it
    # might have been the one), and `every` undecided unless another item fails.
    if not ok and errors and (not deciding or quantifier == "some"):
        return Outcome("error", errors[0].reason, errors[0].excerpt)
    if ok and errors and quantifier != "some":
        return Outcome("error", errors[0].reason, errors[0].excerpt)
    shown = deciding[:FAILING_ITEMS_SHOWN] if deciding else []
    excerpt = {k: v for o in shown for k, v in o.excerpt.items()} or {where: f"{len(results)} item(s)"}
    details = "; ".join(o.reason for o in shown)
    return Outcome("pass" if ok else "fail", f"{summary}" + (f": {details}" if details and not ok else ""), excerpt)
