"""Kills mutants of safe_text.py that its own tests let through (`make mutation`)."""

from __future__ import annotations

from medinfra.safe_text import cleaned, redact


def test_a_secret_inside_a_longer_one_does_not_leave_part_of_the_longer_shown() -> None:
    # "bc" sorts after "abc" (text order): only longest-first replaces the whole of "abc".
    assert redact("password abc, pin bc", ["bc", "abc"]) == "password ***, pin ***"
    assert cleaned({"abc": ["xabcx"]}, ["bc", "abc"]) == {"***": ["x***x"]}
