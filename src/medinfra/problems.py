"""Located problems in user-supplied files, and the error that carries them to the CLI."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from medinfra.safe_text import one_line

PathPart = str | int
DocPath = tuple[PathPart, ...]
# Schema messages quote the offending value whole, and keys can be long; megabytes would flood the terminal.
MAX_SHOWN = 1000


def format_path(path: DocPath) -> str:
    """Render a path inside a document the way a person reads it: ``hosts[3].address``."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else part
    return text or "(top level)"


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a file: where it is and why it is wrong."""

    file: str
    path: DocPath
    message: str
    line: int | None = None

    def __str__(self) -> str:
        """One terminal line: file names, keys and messages may carry hostile text (ESC, newlines, surrogates)."""
        where = f"{self.file}:{self.line}" if self.line is not None else self.file
        return one_line(f"{where}: {_shortened(format_path(self.path))}: {_shortened(self.message)}")


def _shortened(text: str) -> str:
    return f"{text[:MAX_SHOWN]}... ({len(text) - MAX_SHOWN:,} more characters)" if len(text) > MAX_SHOWN else text


class UserInputError(Exception):
    """Bad input from the user: reported as located problems, never as a traceback."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


def refused(file: str, message: str) -> UserInputError:
    """One problem with a whole file, location or argument (no place inside it to point at)."""
    return UserInputError([Problem(file, (), message)])


class PrerequisiteError(Exception):
    """Something the machine lacks; the message says how to install or fix it."""
