"""Kills mutants of signing.py left by test_signing.py (`make mutation`): exact verify outcomes and messages."""

from __future__ import annotations

import base64
import hashlib
import os
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed448 import Ed448PrivateKey
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from medinfra.problems import UserInputError
from medinfra.signing import (
    MANIFEST,
    MANIFEST_MAX_BYTES,
    SIGNATURE,
    Verification,
    generate_keypair,
    load_private_key,
    verify_directory,
)
from tests.unit import test_signing
from tests.unit.test_signing import SAMPLE, sign, write_sample

# Linux's PATH_MAX counts the terminating NUL: a path of this many bytes or more is ENAMETOOLONG.
PATH_MAX = 4096


# test_signing's fixtures, by assignment: pytest finds fixtures among a module's names.
keypair = test_signing.keypair
signed_sample = test_signing.signed


def problems(caught: pytest.ExceptionInfo[UserInputError]) -> list[tuple[str, str]]:
    return [(problem.file, problem.message) for problem in caught.value.problems]


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).hexdigest().encode()


def write_files(directory: Path, files: dict[str, bytes]) -> Path:
    for name, data in files.items():
        path = directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return directory


def sign_manifest(directory: Path, private_key: Path, manifest: bytes) -> None:
    """A manifest written by hand and truly signed: what verify makes of it depends on its lines alone."""
    (directory / MANIFEST).write_bytes(manifest)
    signature = load_private_key(private_key).sign(manifest)
    (directory / SIGNATURE).write_bytes(base64.b64encode(signature) + b"\n")


def directory_of_length(root: Path, length: int) -> Path:
    """A new directory below ``root`` whose path is exactly ``length`` bytes (ASCII), in components of at most 200."""
    needed = length - len(os.fsencode(root))
    count = -(-needed // 201)  # each component takes a "/" and up to 200 characters
    letters = needed - count
    path = root
    for index in range(count):
        path /= "d" * (letters // count + (index < letters % count))
    path.mkdir(parents=True)
    assert len(os.fsencode(path)) == length
    return path


def create_in(directory: Path, name: str, data: bytes) -> None:
    """Create ``name`` through the directory's descriptor: its full path may be too long to open."""
    descriptor = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        file = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600, dir_fd=descriptor)
        os.write(file, data)
        os.close(file)
    finally:
        os.close(descriptor)


def read_in(directory: Path, name: str) -> bytes:
    descriptor = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        file = os.open(name, os.O_RDONLY, dir_fd=descriptor)
        try:
            return os.read(file, 4096)
        finally:
            os.close(file)
    finally:
        os.close(descriptor)


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


@pytest.mark.parametrize("existing", ["audit.key", "audit.pub"])
def test_an_existing_key_the_check_cannot_see_is_still_never_replaced(tmp_path: Path, existing: str) -> None:
    """The check before writing goes through the path, which is too long to look up here (ENAMETOOLONG, so it
    sees no file); the exclusive link into the opened directory still refuses, and no half of a new pair stays."""
    directory = directory_of_length(tmp_path, PATH_MAX - len("/audit.key") + 4)
    create_in(directory, existing, b"keep me")
    with pytest.raises(UserInputError) as caught:
        generate_keypair(directory / "audit")
    assert problems(caught) == [(str(directory / existing), "already exists; refusing to overwrite it")]
    assert read_in(directory, existing) == b"keep me"
    assert os.listdir(directory) == [existing]


def test_the_manifest_is_exactly_gnu_sha256sum_lines(tmp_path: Path, keypair: tuple[Path, Path]) -> None:
    files = {"a.txt": b"alpha\n", "odd\\\n\r.txt": b"odd", "sub/b.txt": b"beta"}
    directory = write_files(tmp_path / "reports", files)
    sign(directory, keypair[0])
    assert (directory / MANIFEST).read_bytes() == (
        sha256(b"alpha\n") + b"  a.txt\n"
        + b"\\" + sha256(b"odd") + b"  odd\\\\\\n\\r.txt\n"  # a name with all three escapes
        + sha256(b"beta") + b"  sub/b.txt\n"
    )
    assert verify_directory(directory, keypair[1]) == Verification(True, (), (), (), 3, ())


def test_every_malformed_line_is_numbered_and_the_rest_still_checked(
    tmp_path: Path, keypair: tuple[Path, Path]
) -> None:
    files = {"a.txt": b"alpha", "sub/b.txt": b"beta", "c.txt": b"gamma"}
    directory = write_files(tmp_path / "reports", files)
    sign_manifest(directory, keypair[0], b"".join([
        sha256(b"alpha") + b"  a.txt\n",
        b"not a manifest line\n",  # 2
        sha256(b"beta") + b"  sub/b.txt\n",
        b"\\" + sha256(b"x") + b"  a\\x\n",  # 4: an escape sha256sum does not define
        sha256(b"beta") + b"  ../b.txt\n",  # 5: outside the directory
        sha256(b"alpha") + b"  a.txt\n",  # 6: a.txt again
        sha256(b"gamma") + b"  c.txt\n",
        sha256(b"delta") + b"  d.txt",  # 8: no newline at the end
    ]))
    assert verify_directory(directory, keypair[1]) == Verification(False, (), (), (), 3, (2, 4, 5, 6, 8))


def test_a_name_without_the_leading_backslash_is_taken_literally(tmp_path: Path, keypair: tuple[Path, Path]) -> None:
    """As GNU sha256sum reads it: only a line that starts with a backslash has escapes in its name."""
    files = {"a\\x.txt": b"one", "b\\n.txt": b"two"}
    directory = write_files(tmp_path / "reports", files)
    sign_manifest(directory, keypair[0], sha256(b"one") + b"  a\\x.txt\n" + sha256(b"two") + b"  b\\n.txt\n")
    assert verify_directory(directory, keypair[1]) == Verification(True, (), (), (), 2, ())


def test_a_missing_manifest_is_an_invalid_signature_over_no_files(signed_sample: Path,
                                                                   keypair: tuple[Path, Path]) -> None:
    (signed_sample / MANIFEST).unlink()
    assert verify_directory(signed_sample, keypair[1]) == Verification(False, (), (), (), 0, ())


@pytest.mark.parametrize(("name", "files_seen"), [(MANIFEST, 0), (SIGNATURE, len(SAMPLE))])
def test_a_manifest_or_signature_that_links_to_a_valid_one_is_not_read(
    signed_sample: Path, keypair: tuple[Path, Path], tmp_path: Path, name: str, files_seen: int
) -> None:
    """Nor is a linked signature listed as added: the signature's name is the verifier's own."""
    copy = tmp_path / "elsewhere"
    (signed_sample / name).rename(copy)
    (signed_sample / name).symlink_to(copy)
    assert verify_directory(signed_sample, keypair[1]) == Verification(False, (), (), (), files_seen, ())


def test_a_manifest_too_large_to_read_is_a_user_error(signed_sample: Path, keypair: tuple[Path, Path]) -> None:
    manifest = signed_sample / MANIFEST
    os.truncate(manifest, MANIFEST_MAX_BYTES + 1)  # sparse: nothing is written
    with pytest.raises(UserInputError) as caught:
        verify_directory(signed_sample, keypair[1])
    assert problems(caught) == [
        (str(manifest), "67,108,865 bytes: larger than 67,108,864 bytes, the most medinfra reads from such a file")]


def test_a_directory_too_deep_to_read_is_a_user_error(tmp_path: Path, keypair: tuple[Path, Path]) -> None:
    reports = tmp_path / "reports"
    deep = directory_of_length(reports, PATH_MAX - 100)
    descriptor = os.open(deep, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.mkdir("e" * 150, dir_fd=descriptor)
    finally:
        os.close(descriptor)
    with pytest.raises(UserInputError) as caught:
        verify_directory(reports, keypair[1])
    assert problems(caught) == [(str(deep / ("e" * 150)), "cannot read directory: File name too long")]


def test_a_file_too_deep_to_read_is_a_user_error(tmp_path: Path, keypair: tuple[Path, Path]) -> None:
    reports = tmp_path / "reports"
    deep = directory_of_length(reports, PATH_MAX - 100)
    create_in(deep, "f" * 150, b"x")
    with pytest.raises(UserInputError) as caught:
        sign(reports, keypair[0])
    assert problems(caught) == [(str(deep / ("f" * 150)), "cannot read: File name too long")]
    assert not (reports / MANIFEST).exists()


def test_signing_names_every_file_it_cannot_sign(tmp_path: Path, keypair: tuple[Path, Path]) -> None:
    directory = write_sample(tmp_path / "reports")
    (directory / "z-link.json").symlink_to(directory / "findings.json")
    os.mkfifo(directory / "evidence" / "pipe")
    with pytest.raises(UserInputError) as caught:
        sign(directory, keypair[0])
    message = "is not a regular file (symlink, pipe or device); cannot sign it"
    assert problems(caught) == [(str(directory / "evidence" / "pipe"), message),
                                (str(directory / "z-link.json"), message)]


@pytest.fixture(scope="module")
def bad_keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Key files of every kind the signer or the verifier must refuse."""
    directory = tmp_path_factory.mktemp("bad-keys")
    ed448 = Ed448PrivateKey.generate()
    contents = {
        "garbage": b"not a key\n",
        "encrypted": Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"secret")),
        "ed448.key": ed448.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()),
        "ed448.pub": ed448.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo),
    }
    for name, data in contents.items():
        (directory / name).write_bytes(data)
    return {name: directory / name for name in contents}


@pytest.mark.parametrize(("key", "message"), [
    ("public", "is a public key; signing needs the private .key file"),
    ("encrypted", "is encrypted; medinfra needs an unencrypted private key (file mode 0600)"),
    ("garbage", "is not a PEM private key"),
    ("ed448.key", "is not an Ed25519 key (Ed448PrivateKey); create one with `medinfra keys generate`"),
])
def test_signing_says_what_is_wrong_with_the_key(
    tmp_path: Path, keypair: tuple[Path, Path], bad_keys: dict[str, Path], key: str, message: str
) -> None:
    path = keypair[1] if key == "public" else bad_keys[key]
    with pytest.raises(UserInputError) as caught:
        sign(write_sample(tmp_path / "reports"), path)
    assert problems(caught) == [(str(path), message)]


@pytest.mark.parametrize(("key", "message"), [
    ("private", "is a private key; verifying needs the public .pub file (and the .key must stay private)"),
    ("garbage", "is not a PEM public key"),
    ("ed448.pub", "is not an Ed25519 public key (Ed448PublicKey)"),
])
def test_verifying_says_what_is_wrong_with_the_key(
    signed_sample: Path, keypair: tuple[Path, Path], bad_keys: dict[str, Path], key: str, message: str
) -> None:
    path = keypair[0] if key == "private" else bad_keys[key]
    with pytest.raises(UserInputError) as caught:
        verify_directory(signed_sample, path)
    assert problems(caught) == [(str(path), message)]
