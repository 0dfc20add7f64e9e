"""safe_text: what untrusted text looks like once it may be kept and shown."""

from __future__ import annotations

import pytest

from medinfra.safe_text import clean, cleaned, one_line, redact


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("\x1b[2K\rverified: signature valid", "\\x1b[2K\\x0dverified: signature valid"),
        ("nul\x00here", "nul\\x00here"),
        ("del\x7f and c1\x9b", "del\\x7f and c1\\x9b"),
        ("\u202eevil\u2066x\u2069", "\\u202eevil\\u2066x\\u2069"),
        ("lone \ud800 surrogate", "lone \\ud800 surrogate"),
        ("tabs\tand\nnewlines stay", "tabs\tand\nnewlines stay"),
        ("中文 and ümlaut stay", "中文 and ümlaut stay"),
    ],
)
def test_clean_shows_unsafe_characters_as_escapes(raw: str, shown: str) -> None:
    assert clean(raw) == shown
    clean(raw).encode("utf-8")  # always encodable: no surrogate survives


def test_one_line_also_escapes_line_breaks_and_tabs() -> None:
    assert one_line("a\nb\tc\r") == "a\\x0ab\\x09c\\x0d"


def test_redact_replaces_the_longest_secret_first() -> None:
    assert redact("pw hunter2, hunter", ["hunter", "hunter2", ""]) == "pw ***, ***"
    assert redact("nothing secret", []) == "nothing secret"


def test_cleaned_walks_keys_and_values_and_leaves_other_types() -> None:
    document = {"k\x1b": ["pass s3cret!", 3, None, True, {"s3cret!": 1.5}]}
    assert cleaned(document, ["s3cret!"]) == {"k\\x1b": ["pass ***", 3, None, True, {"***": 1.5}]}
