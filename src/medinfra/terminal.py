"""Colour for what medinfra prints on a terminal: a status word painted by what it means, never JSON or files.

`auto` colours only a terminal, and only when NO_COLOR is unset or empty (https://no-color.org) and TERM is not
`dumb`; `--color always` or `never` overrides both, as no-color.org asks of a command-line option.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TextIO

COLOR_CHOICES = ("auto", "always", "never")
GREEN, RED, YELLOW = "32", "31", "33"
# Good is green, bad is red, "not known" (no verdict: an error, a host not audited or not probed) is yellow.
STATUS_COLOURS = {
    "pass": GREEN,
    "fail": RED,
    "unexpected": RED,
    "error": YELLOW,
    "unreachable": YELLOW,
    "not probed": YELLOW,
}


def wants_colour(choice: str, stream: TextIO, environ: Mapping[str, str] = os.environ) -> bool:
    """Whether to colour `stream`: `choice` is one of COLOR_CHOICES."""
    if choice != "auto":
        return choice == "always"
    if environ.get("NO_COLOR") or environ.get("TERM") == "dumb":
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


@dataclass(frozen=True)
class Palette:
    """Paints text with ANSI colours when enabled; the default palette leaves every text as it is."""

    enabled: bool = False

    def paint(self, text: str, colour: str | None) -> str:
        if not self.enabled or colour is None or not text:
            return text
        return f"\x1b[{colour}m{text}\x1b[0m"

    def status(self, text: str, status: str | None = None) -> str:
        """`text` in the colour of `status` (default: the text itself, e.g. "fail"); unknown statuses stay plain."""
        return self.paint(text, STATUS_COLOURS.get((status or text).strip().lower().replace("_", " ")))

    def count(self, text: str, status: str, number: int) -> str:
        """A count such as "fail 3": coloured only when it is not zero, so a clean run reads plain."""
        return self.status(text, status) if number else text


PLAIN = Palette()


def palette(choice: str, stream: TextIO) -> Palette:
    return Palette(wants_colour(choice, stream))
