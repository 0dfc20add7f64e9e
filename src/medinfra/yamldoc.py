"""Load YAML while remembering the line of every node, so problems can name their line."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from medinfra.problems import DocPath, Problem, UserInputError


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


def _walk(node: yaml.Node, path: DocPath, lines: dict[DocPath, int]) -> None:
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            if isinstance(key_node, yaml.ScalarNode):
                _walk(value_node, (*path, key_node.value), lines)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _walk(item, (*path, index), lines)


def load_yaml(path: Path) -> YamlDocument:
    """Parse ``path`` safely; unreadable or malformed files raise UserInputError."""
    name = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserInputError([Problem(name, (), "file not found")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UserInputError([Problem(name, (), f"cannot read file: {exc}")]) from None
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)(text)  # libyaml when present: 5x faster
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        reason = getattr(exc, "problem", None) or str(exc)
        raise UserInputError([Problem(name, (), f"invalid YAML: {reason}", line)]) from None
    finally:
        loader.dispose()
    lines: dict[DocPath, int] = {}
    if node is not None:
        _walk(node, (), lines)
    return YamlDocument(name, data, lines)
