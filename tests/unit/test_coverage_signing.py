"""Signing's refusals no other test reaches: a key prefix with no file name, a public key of another algorithm."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ec import SECP256R1, generate_private_key

from medinfra.problems import UserInputError
from medinfra.signing import generate_keypair, verify_directory


def test_a_key_prefix_needs_a_file_name(tmp_path: Path) -> None:
    with pytest.raises(UserInputError, match="needs a file name prefix"):
        generate_keypair(Path("/"))
    assert list(tmp_path.iterdir()) == []


def test_a_public_key_of_another_algorithm_is_refused_before_any_file_is_read(tmp_path: Path) -> None:
    ecdsa = tmp_path / "ecdsa.pub"
    ecdsa.write_bytes(generate_private_key(SECP256R1()).public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    with pytest.raises(UserInputError, match=r"is not an Ed25519 public key \(_?(EC|EllipticCurve)PublicKey\)"):
        verify_directory(tmp_path / "no such reports", ecdsa)
