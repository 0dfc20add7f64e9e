"""The one loader of YAML files people send medinfra (topologies, catalog controls and frameworks, waivers).

Such a file may be hostile: a few hundred bytes of aliases expand to gigabytes, deep nesting exhausts the
recursive composer, a second `expires:` key silently replaces the first, a FIFO or /dev/zero never ends.
So the document is built here in one pass over the parser's events, without recursion and without the
composer: only regular files up to MAX_YAML_BYTES are read, aliases are refused (no shipped file uses them),
nesting deeper than MAX_YAML_DEPTH, more than MAX_YAML_NODES values, duplicate keys, tags other than the
plain scalar ones and values no constructor can read are all located problems. The line of every value is
remembered so that later problems (schema, semantics) can name their line too.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from medinfra.problems import DocPath, PathPart, Problem, UserInputError
from medinfra.safe_input import read_regular_file

# The largest plausible topology, 10,000 zones with 3 hosts and 2 flows each, is 8 MiB of YAML and 510,000
# values (benchmarks/topology_validation.py); the caps leave four times that. At about 130 bytes a value,
# the value cap bounds memory too: 2,000,000 one-letter values take 280 MB and 5 s to read.
MAX_YAML_BYTES = 32 * 2**20
MAX_YAML_NODES = 2_000_000
# The deepest shipped file (a control's nested check) is 11 levels deep.
MAX_YAML_DEPTH = 64
# Numbers, booleans, dates and nulls are short; a long one only feeds slow conversions (sexagesimal
# integers are quadratic, decimal ones beyond 4,300 digits a ValueError).
MAX_TYPED_SCALAR_CHARS = 100

_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when present: 5x faster
_TAG = "tag:yaml.org,2002:"
_STR_TAG, _SEQ_TAG, _MAP_TAG = f"{_TAG}str", f"{_TAG}seq", f"{_TAG}map"
# The scalar types JSON-shaped data needs (and the dates waivers use); !!binary, !!set, !!omap and
# application tags have no place in medinfra's formats.
_SCALAR_TAGS = frozenset(f"{_TAG}{name}" for name in ("str", "null", "bool", "int", "float", "timestamp"))


@dataclass
class YamlDocument:
    """Parsed YAML data plus the 1-based line where each path inside it starts."""

    file: str
    data: Any
    lines: dict[DocPath, int] = field(default_factory=dict)

    def line_of(self, path: DocPath) -> int | None:
        """Line of the deepest existing node on ``path``."""
        for cut in range(len(path), -1, -1):
            line = self.lines.get(path[:cut])
            if line is not None:
                return line
        return None

    def problem(self, path: DocPath, message: str) -> Problem:
        return Problem(self.file, path, message, self.line_of(path))


def validation_problems(
    document: YamlDocument,
    errors: Iterable[jsonschema.ValidationError],
    message: Callable[[jsonschema.ValidationError], str] = lambda error: error.message,
) -> list[Problem]:
    """JSON Schema errors as located problems, in file order."""
    problems = [document.problem(tuple(error.absolute_path), message(error)) for error in errors]
    return sorted(problems, key=lambda p: (p.line or 0, str(p)))


def load_yaml(path: Path) -> YamlDocument:
    """Parse ``path`` with the bounds above; unreadable, malformed or hostile files raise UserInputError."""
    name = str(path)
    content = read_regular_file(path, MAX_YAML_BYTES)
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = content.count(b"\n", 0, exc.start) + 1
        message = f"not UTF-8 text: byte 0x{content[exc.start]:02x} ({exc.reason})"
        raise UserInputError([Problem(name, (), message, line)]) from None
    return _Builder(name, text).document()


@dataclass(slots=True)
class _Open:
    """A mapping or sequence being filled, where it is, and (for a mapping) the key awaiting its value."""

    container: list[Any] | dict[Any, Any]
    path: DocPath
    key: Any = None
    has_key: bool = False


class _Builder:
    """Plain data from a stream of parser events: what PyYAML's composer and constructor do, minus
    aliases, recursion and last-wins keys, with a bound on every dimension."""

    def __init__(self, name: str, text: str) -> None:
        self.name = name
        self.text = text
        self.loader: Any = None
        self.lines: dict[DocPath, int] = {}
        self.open: list[_Open] = []
        self.data: Any = None
        self.nodes = 0
        self.documents = 0

    def problem(self, path: DocPath, message: str, mark: Any) -> UserInputError:
        return UserInputError([Problem(self.name, path, message, _line(mark))])

    def document(self) -> YamlDocument:
        try:
            self.loader = loader = _LOADER(self.text)  # PyYAML's reader checks the characters already here
            while loader.check_event():
                self.take(loader.get_event())
            loader.dispose()
        except yaml.YAMLError as exc:
            raise self.syntax_problem(exc) from None
        return YamlDocument(self.name, self.data, self.lines)

    def syntax_problem(self, exc: yaml.YAMLError) -> UserInputError:
        """The scanner runs ahead of the events, so only the line (not the path) of a syntax error is known."""
        if isinstance(exc, yaml.reader.ReaderError):
            # Raw control characters and the like: the reader knows only the character offset.
            line = self.text.count("\n", 0, exc.position) + 1
            character = chr(exc.character) if isinstance(exc.character, int) else exc.character
            message = f"invalid YAML: {exc.reason}: {character!r}"
            return UserInputError([Problem(self.name, (), message, line)])
        mark = getattr(exc, "problem_mark", None)
        reason = getattr(exc, "problem", None) or str(exc)
        return self.problem((), f"invalid YAML: {reason}", mark)

    def take(self, event: yaml.Event) -> None:
        if isinstance(event, yaml.ScalarEvent):
            self.place(event, self.scalar(event))
        elif isinstance(event, yaml.CollectionEndEvent):
            self.open.pop()
        elif isinstance(event, yaml.SequenceStartEvent | yaml.MappingStartEvent):
            self.collection(event)
        elif isinstance(event, yaml.AliasEvent):
            message = (
                f"alias *{event.anchor}: medinfra's YAML files have no use for anchors and aliases, and one alias "
                "can repeat a value billions of times; write the value out"
            )
            raise self.problem(self.where(), message, event.start_mark)
        elif isinstance(event, yaml.DocumentStartEvent):
            self.documents += 1
            if self.documents > 1:
                raise self.problem((), "a second YAML document (---) in one file", event.start_mark)

    def where(self) -> DocPath:
        """Path of the value the next event gives (a key counts as its mapping)."""
        if not self.open:
            return ()
        top = self.open[-1]
        if isinstance(top.container, list):
            return (*top.path, len(top.container))
        return (*top.path, _path_part(top.key)) if top.has_key else top.path

    def counted(self, event: yaml.NodeEvent) -> None:
        self.nodes += 1
        if self.nodes > MAX_YAML_NODES:
            raise self.problem(self.where(), f"more than {MAX_YAML_NODES:,} values in one file", event.start_mark)

    def scalar(self, event: yaml.ScalarEvent) -> Any:
        self.counted(event)
        tag = event.tag
        if tag is None or tag == "!":
            tag = self.loader.resolve(yaml.ScalarNode, event.value, event.implicit)
        if tag == _STR_TAG:
            return event.value
        if tag not in _SCALAR_TAGS:
            raise self.problem(self.where(), f"tag {tag} is not allowed here", event.start_mark)
        kind = tag.removeprefix(_TAG)
        if len(event.value) > MAX_TYPED_SCALAR_CHARS:
            message = f"{kind} of {len(event.value):,} characters: longer than the {MAX_TYPED_SCALAR_CHARS} allowed"
            raise self.problem(self.where(), message, event.start_mark)
        node = yaml.ScalarNode(tag, event.value, style=event.style)
        try:
            return self.loader.yaml_constructors[tag](self.loader, node)
        # The constructors trust the resolver's pattern; an explicit tag on other text (`!!bool maybe`,
        # `!!timestamp soon`) fails with whatever error that text provokes.
        except (yaml.YAMLError, ValueError, OverflowError, KeyError, AttributeError, TypeError) as exc:
            reason = getattr(exc, "problem", None) or str(exc)
            message = f"{event.value!r} is not a valid {kind}: {reason}"
            raise self.problem(self.where(), message, event.start_mark) from None

    def collection(self, event: yaml.SequenceStartEvent | yaml.MappingStartEvent) -> None:
        self.counted(event)
        is_sequence = isinstance(event, yaml.SequenceStartEvent)
        expected = _SEQ_TAG if is_sequence else _MAP_TAG
        if event.tag not in (None, "!", expected):
            raise self.problem(self.where(), f"tag {event.tag} is not allowed here", event.start_mark)
        if len(self.open) >= MAX_YAML_DEPTH:
            message = f"nested deeper than {MAX_YAML_DEPTH} levels"
            raise self.problem(self.where(), message, event.start_mark)
        container: list[Any] | dict[Any, Any] = [] if is_sequence else {}
        path = self.place(event, container)
        self.open.append(_Open(container, path))

    def place(self, event: yaml.NodeEvent, value: Any) -> DocPath:
        """Put ``value`` where the document is at; a value read as a mapping key waits for its own value."""
        path: DocPath
        if not self.open:
            self.data, path = value, ()
        else:
            top = self.open[-1]
            if isinstance(top.container, list):
                path = (*top.path, len(top.container))
                top.container.append(value)
            elif not top.has_key:
                self.key(top, event, value)
                return top.path
            else:
                path = (*top.path, _path_part(top.key))
                top.container[top.key] = value
                top.has_key = False
        line = _line(event.start_mark)
        if line is not None:
            self.lines[path] = line
        return path

    def key(self, mapping: _Open, event: yaml.NodeEvent, key: Any) -> None:
        if isinstance(key, list | dict):
            raise self.problem(mapping.path, "a mapping key must be a plain value", event.start_mark)
        if key in mapping.container:
            first = self.lines.get((*mapping.path, _path_part(key)))
            message = f"duplicate key {key!r} (first at line {first}): a second value would replace the first"
            raise self.problem((*mapping.path, _path_part(key)), message, event.start_mark)
        mapping.key, mapping.has_key = key, True


def _line(mark: Any) -> int | None:
    return mark.line + 1 if mark is not None else None


def _path_part(key: Any) -> PathPart:
    return key if isinstance(key, str | int) else str(key)
