"""Whether a control's fact paths exist in the evidence schema (compliance/schemas/evidence.schema.json).

Checks read one tree per host, the schema's `$defs/check_tree`: the sections of the evidence's `facts` plus the
branches the evaluator adds (`inventory`, `derived`, `site`). A path into it is a tuple of parts: a str is a key of
an object, an int an index of a list, and `EACH` any item of a list or any value of a mapping, which is where a
quantifier (`every`, `some`, `none`, with `where`) puts the paths inside it.

A path exists when a value valid under the schema can hold something there: through `properties`,
`patternProperties` and `additionalProperties` or `unevaluatedProperties` (unless false, and where `propertyNames`
admits the key), `prefixItems` and `items`, following `$ref`, `allOf`, `anyOf` and `oneOf`, but never into the
unavailable object (`{"unavailable": reason}`), which a check cannot read through. An object schema that says
nothing about other keys admits any key, so closed objects (`additionalProperties: false`) are what make a
misspelt key an error. `x-listed-keys-only: true`, an annotation validation ignores, closes an object to paths
only: a value may hold keys it does not list (sshd's options, which differ between versions), a path may not.

Pure: a `SchemaTree` reads only the schema document it is given (and remembers what it worked out from it);
`evidence_tree()` is the one place that reads the file.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Final

from medinfra.compliance.checks import QUANTIFIERS, parse_path
from medinfra.package_data import CATALOG_DIR
from medinfra.problems import DocPath

EVIDENCE_SCHEMA_FILE = CATALOG_DIR / "schemas" / "evidence.schema.json"
CHECK_TREE = "#/$defs/check_tree"
UNAVAILABLE = "#/$defs/unavailable"
JSON_TYPES = frozenset({"object", "array", "string", "number", "integer", "boolean", "null"})
CONTAINERS = frozenset({"object", "array"})
LISTED_KEYS_ONLY = "x-listed-keys-only"


class Each:
    """Any item of a list, or any value of a mapping: the part a quantifier adds to a path."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "EACH"


EACH: Final = Each()
SchemaPart = str | int | Each
SchemaPath = tuple[SchemaPart, ...]
Schema = Mapping[str, Any] | bool
# The schemas that all apply to one value (a schema with its $ref and allOf members): one way to be valid.
Way = tuple[Schema, ...]


def show(path: SchemaPath) -> str:
    """A path as findings show it (checks.show_path), with `[*]` for any item."""
    text = ""
    for part in path:
        if isinstance(part, Each):
            text += "[*]"
        elif isinstance(part, int):
            text += f"[{part}]"
        elif re.fullmatch(r"[A-Za-z0-9_\-]+", part):
            text += f".{part}" if text else part
        else:
            text += f"[{part!r}]"
    return text or "(top level)"


def declared_types(schema: Schema) -> frozenset[str]:
    """The JSON types a schema admits by its own `type`, `const` or `enum` (an integer is a number)."""
    if isinstance(schema, bool):
        return JSON_TYPES if schema else frozenset()
    if "type" in schema:
        named = set(schema["type"] if isinstance(schema["type"], list) else [schema["type"]])
        return frozenset(named | {"integer"} if "number" in named else named)
    values = [schema["const"]] if "const" in schema else schema.get("enum")
    if values is not None:
        return frozenset(json_type(value) for value in values)
    return JSON_TYPES


def json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def types_of(way: Way) -> frozenset[str]:
    found = JSON_TYPES
    for schema in way:
        found &= declared_types(schema)
    return found


def key_schemas(way: Way, key: str) -> list[Schema] | None:
    """What applies to the value under `key` of an object valid this way; None when the key cannot be there."""
    objects = [s for s in way if isinstance(s, Mapping)]
    # unevaluatedProperties takes only the keys that no properties, patternProperties or additionalProperties of
    # the schemas applying in place took.
    evaluated = any(
        key in s.get("properties", {})
        or "additionalProperties" in s
        or any(re.search(pattern, key) for pattern in s.get("patternProperties", {}))
        for s in objects
    )
    if any(s.get(LISTED_KEYS_ONLY) is True for s in objects) and not any(
        key in s.get("properties", {}) for s in objects
    ):
        return None
    applied: list[Schema] = []
    for schema in objects:
        names = schema.get("propertyNames")
        if isinstance(names, Mapping) and "pattern" in names and not re.search(names["pattern"], key):
            return None
        own = [sub for pattern, sub in schema.get("patternProperties", {}).items() if re.search(pattern, key)]
        if key in schema.get("properties", {}):
            own.append(schema["properties"][key])
        if not own and "additionalProperties" in schema:
            own.append(schema["additionalProperties"])
        if not evaluated and "unevaluatedProperties" in schema:
            own.append(schema["unevaluatedProperties"])
        applied.extend(own)
    return None if False in applied else applied


def index_schemas(way: Way, index: int) -> list[Schema] | None:
    applied: list[Schema] = []
    for schema in (s for s in way if isinstance(s, Mapping)):
        prefix = schema.get("prefixItems", [])
        if index < len(prefix):
            applied.append(prefix[index])
        elif "items" in schema:
            applied.append(schema["items"])
    return None if False in applied else applied


def item_schemas(way: Way) -> list[list[Schema]]:
    """What may apply to an item of a list, or a value of a mapping, valid this way: one list of schemas (that all
    apply to it) per kind of item."""
    kinds = types_of(way)
    objects = [s for s in way if isinstance(s, Mapping)]
    found: list[list[Schema]] = []
    if "array" in kinds:
        found.extend([sub] for s in objects for sub in s.get("prefixItems", []))
        # Items past the prefix: every `items` of the way applies to them; when none is given, any value.
        found.append([s["items"] for s in objects if "items" in s])
    if "object" in kinds:
        found.extend([sub] for s in objects for sub in s.get("properties", {}).values())
        found.extend([sub] for s in objects for sub in s.get("patternProperties", {}).values())
        # Other keys: what additionalProperties says, else unevaluatedProperties, else any value.
        rest = [s["additionalProperties"] for s in objects if "additionalProperties" in s]
        found.append(rest or [s["unevaluatedProperties"] for s in objects if "unevaluatedProperties" in s])
    return [subs for subs in found if False not in subs]


@dataclass(frozen=True)
class Lookup:
    """How far a path goes into the schema: its first `found` parts exist; `ways` are the schemas there."""

    path: SchemaPath
    found: int
    ways: tuple[Way, ...]

    @property
    def exists(self) -> bool:
        return self.found == len(self.path)

    def iterable(self) -> bool:
        """Whether the value at the path can be a list or a mapping (something a quantifier goes over)."""
        return self.exists and any(types_of(way) & CONTAINERS for way in self.ways)

    def why_missing(self) -> str:
        """What is wrong with a path that does not exist, in words."""
        part = self.path[self.found]
        where = show(self.path[: self.found])
        kinds = frozenset().union(*(types_of(way) for way in self.ways))
        if isinstance(part, Each):
            return f"{where} is neither a list nor a mapping, so nothing can quantify over it"
        if isinstance(part, int):
            return f"{where} is not a list, so it has no item [{part}]"
        if "object" not in kinds:
            if "array" in kinds:
                return f"{where} is a list: quantify over it (every, some, none) rather than naming {part!r}"
            return f"{where} is a single value, it has no key {part!r}"
        objects = [s for way in self.ways for s in way if isinstance(s, Mapping)]
        names = sorted({key for s in objects for key in s.get("properties", {})})
        close = difflib.get_close_matches(part, names, n=1, cutoff=0.7)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        if not self.found:
            return f"{part!r} is neither a section of the evidence nor inventory, derived or site{hint}"
        return f"{part!r} is not a key of {where}{hint}"


class SchemaTree:
    """The tree a schema document describes from one of its definitions (by default `check_tree`, what controls
    read), asked which paths it has. Remembers what it worked out: the document must not change."""

    def __init__(self, document: Mapping[str, Any], start: str = CHECK_TREE) -> None:
        self.document = document
        self._ways: dict[int, list[Way]] = {}
        self._paths: dict[SchemaPath, list[Way]] = {(): self.alternatives(self.resolve(start))}

    def resolve(self, ref: str) -> Schema:
        """A `#/...` JSON pointer into the document (the only references the evidence schema uses)."""
        if not ref.startswith("#"):
            raise ValueError(f"{ref!r}: only references inside the schema document are supported")
        node: Any = self.document
        for token in ref[1:].split("/")[1:]:
            node = node[token.replace("~1", "/").replace("~0", "~")]
        if not isinstance(node, Mapping | bool):
            raise ValueError(f"{ref!r} is not a schema")
        return node

    def alternatives(self, schema: Schema) -> list[Way]:
        """The ways a value can be valid under a schema ($ref and allOf add schemas to a way, anyOf and oneOf
        multiply the ways). The unavailable object is no way: nothing can be read through it."""
        if isinstance(schema, bool):
            return [(True,)] if schema else []
        known = self._ways.get(id(schema))
        if known is not None:
            return known
        self._ways[id(schema)] = [(True,)]  # a schema that refers to itself: assume anything below it
        ways: list[Way] = [(schema,)]
        if schema.get("$ref") == UNAVAILABLE:
            ways = []
        elif "$ref" in schema:
            ways = [way + more for way in ways for more in self.alternatives(self.resolve(schema["$ref"]))]
        for member in schema.get("allOf", ()):
            ways = [way + more for way in ways for more in self.alternatives(member)]
        for keyword in ("anyOf", "oneOf"):
            if keyword in schema:
                ways = [way + more for way in ways for branch in schema[keyword] for more in self.alternatives(branch)]
        ways = [way for way in ways if types_of(way)]
        self._ways[id(schema)] = ways
        return ways

    def step(self, ways: Sequence[Way], part: SchemaPart) -> list[Way]:
        """The ways of the values one part below values valid in one of `ways`."""
        following: list[Way] = []
        for way in ways:
            kinds = types_of(way)
            choices: list[list[Schema]]
            if isinstance(part, Each):
                choices = item_schemas(way)
            else:
                # A check indexes lists with ints only, and an int is never a key of a mapping (checks.resolve).
                if isinstance(part, int):
                    found = index_schemas(way, part) if "array" in kinds else None
                else:
                    found = key_schemas(way, part) if "object" in kinds else None
                choices = [found] if found is not None else []
            for subs in choices:
                combined: list[Way] = [(True,)]
                for sub in subs:
                    combined = [done + more for done in combined for more in self.alternatives(sub)]
                following.extend(way for way in combined if types_of(way))
        return following

    def lookup(self, path: SchemaPath) -> Lookup:
        depth = len(path)
        while path[:depth] not in self._paths:
            depth -= 1
        ways = self._paths[path[:depth]]
        for index in range(depth, len(path)):
            following = self.step(ways, path[index])
            if not following:
                return Lookup(path, index, tuple(ways))
            self._paths[path[: index + 1]] = ways = following
        return Lookup(path, len(path), tuple(ways))

    def has(self, path: SchemaPath) -> bool:
        return self.lookup(path).exists


@cache
def evidence_tree(path: Path = EVIDENCE_SCHEMA_FILE) -> SchemaTree:
    """The check tree of the project's evidence schema."""
    return SchemaTree(json.loads(path.read_text(encoding="utf-8")))


def path_exists(path: SchemaPath, tree: SchemaTree | None = None) -> bool:
    """Whether a check can read something at `path` of the check tree."""
    return (tree or evidence_tree()).has(path)


@dataclass(frozen=True)
class MissingPath:
    """A fact path of a control that the evidence schema does not have."""

    where: DocPath  # in the control: ("check", "some", "all", 1, "fact")
    path: SchemaPath  # in the check tree, with EACH where a quantifier goes over items
    message: str


def missing_fact_paths(control: Mapping[str, Any], tree: SchemaTree | None = None) -> list[MissingPath]:
    """Every `fact` of a control's `applies_when` and `check` whose path the check tree lacks (paths inside a
    quantifier are relative to the items it goes over), and every quantifier over something that is neither a
    list nor a mapping. The control is one its own schema (control.schema.json) accepted."""
    tree = tree or evidence_tree()
    missing: list[MissingPath] = []
    for root in ("applies_when", "check"):
        if isinstance(control.get(root), Mapping):
            missing.extend(_missing(control[root], (root,), (), tree))
    return missing


def _missing(check: Mapping[str, Any], where: DocPath, base: SchemaPath, tree: SchemaTree) -> Iterator[MissingPath]:
    # Read as checks._run reads a check: a combinator first, and then a `fact` beside it means nothing.
    for combinator in ("all", "any"):
        if combinator in check:
            for index, inner in enumerate(check[combinator]):
                yield from _missing(inner, (*where, combinator, index), base, tree)
            return
    if "not" in check:
        yield from _missing(check["not"], (*where, "not"), base, tree)
        return
    path: SchemaPath = (*base, *(parse_path(check["fact"]) if "fact" in check else ()))
    located = (*where, "fact") if "fact" in check else where
    found = tree.lookup(path)
    if not found.exists:
        yield MissingPath(located, path, f"fact path {show(path)} is not in the evidence schema: {found.why_missing()}")
        return
    quantifier = next((q for q in QUANTIFIERS if q in check), None)
    if quantifier is None:
        return
    if not found.iterable():
        message = f"{quantifier} over {show(path)}, which the evidence schema has as neither a list nor a mapping"
        yield MissingPath(located, path, message)
        return
    item: SchemaPath = (*path, EACH)
    if "where" in check:
        yield from _missing(check["where"], (*where, "where"), item, tree)
    yield from _missing(check[quantifier], (*where, quantifier), item, tree)
