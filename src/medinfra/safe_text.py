"""Text that came from somewhere medinfra does not trust (a host, a file someone sent), made safe to keep and show.

Hosts and files can carry secrets medinfra knows (a become password echoed back), terminal escape sequences
(which can paint a fake line on the auditor's screen), NUL, bidi overrides (which reorder what a reader sees)
and lone surrogates (which no encoder accepts). Every such text passes through here before it is stored,
printed or rendered: the characters are written as visible escapes, the secrets as ***.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

REDACTED = "***"
# C0 controls but tab and newline, DEL, C1 controls, bidi embeddings/overrides/isolates and marks, lone surrogates.
_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
_UNSAFE_OR_LINE_BREAK = re.compile(f"[\t\n{_UNSAFE.pattern[1:-1]}]")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def clean(text: str) -> str:
    """`text` with every unsafe character shown as an escape; tabs and newlines kept."""
    return _UNSAFE.sub(_escape, text)


def one_line(text: str) -> str:
    """`text` for one terminal line: unsafe characters, tabs and newlines all shown as escapes."""
    return _UNSAFE_OR_LINE_BREAK.sub(_escape, text)


def _longest_first(secrets: Iterable[str]) -> tuple[str, ...]:
    """Non-empty secrets, longest first: one secret may contain another."""
    return tuple(sorted({s for s in secrets if s}, key=len, reverse=True))


def _redacted(text: str, ordered: tuple[str, ...]) -> str:
    for secret in ordered:
        text = text.replace(secret, REDACTED)
    return text


def redact(text: str, secrets: Iterable[str]) -> str:
    """`text` with every occurrence of each non-empty secret replaced by ***."""
    return _redacted(text, _longest_first(secrets))


def cleaned(value: Any, secrets: Iterable[str] = ()) -> Any:
    """A JSON-shaped value with every string in it (keys too) redacted and cleaned."""
    return _cleaned(value, _longest_first(secrets))


def _cleaned(value: Any, ordered: tuple[str, ...]) -> Any:
    if isinstance(value, str):
        return clean(_redacted(value, ordered))
    if isinstance(value, dict):
        return {_cleaned(key, ordered): _cleaned(item, ordered) for key, item in value.items()}
    if isinstance(value, list):
        return [_cleaned(item, ordered) for item in value]
    return value
