"""Kills mutants of signing.py left by test_signing.py (`make mutation`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from medinfra.problems import UserInputError
from medinfra.signing import SIGNATURE, generate_keypair, verify_directory
from tests.unit.test_signing import sign, write_sample


def test_a_signature_with_a_stray_character_is_not_valid(tmp_path: Path) -> None:
    """Strict base64: lenient decoding would drop the stray character and accept the signature."""
    private, public = generate_keypair(tmp_path / "keys" / "audit")
    directory = write_sample(tmp_path / "reports")
    sign(directory, private)
    assert verify_directory(directory, public).signature_valid
    signature = directory / SIGNATURE
    text = signature.read_text(encoding="ascii").strip()
    signature.write_text(text[:10] + "!" + text[10:] + "\n", encoding="ascii")
    assert not verify_directory(directory, public).signature_valid


def test_key_generation_says_what_is_wrong(tmp_path: Path) -> None:
    with pytest.raises(UserInputError) as no_name:
        generate_keypair(Path("/"))
    assert [(p.file, p.message) for p in no_name.value.problems] == [
        ("/", "needs a file name prefix, e.g. keys/audit")]
    generate_keypair(tmp_path / "audit")
    with pytest.raises(UserInputError) as again:
        generate_keypair(tmp_path / "audit")
    assert [(p.file, p.message) for p in again.value.problems] == [
        (str(tmp_path / "audit.key"), "already exists; refusing to overwrite a signing key")]
