"""Tamper-evident results: a `sha256sum` manifest of a directory, signed with Ed25519."""

from __future__ import annotations

import base64
import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from medinfra.problems import Problem, UserInputError
from medinfra.safe_input import read_regular_file
from medinfra.safe_output import FILE_MODE, PRIVATE_MODE, OutputDirectory
from medinfra.safe_text import one_line

MANIFEST = "MANIFEST.sha256"
SIGNATURE = "MANIFEST.sha256.sig"
SIGNED_FILE_MODE = FILE_MODE
# A PEM Ed25519 key is about 120 bytes; a manifest line about 100 bytes per file (evidence of 100,000 hosts: 10 MB).
KEY_MAX_BYTES = 64 * 1024
MANIFEST_MAX_BYTES = 64 * 2**20
# GNU sha256sum's format: a leading backslash marks a name with these characters escaped.
_ESCAPES = {b"\\": b"\\\\", b"\n": b"\\n", b"\r": b"\\r"}
_UNESCAPES = {b"\\": b"\\", b"n": b"\n", b"r": b"\r"}
_LINE = re.compile(rb"(\\?)([0-9a-f]{64})  (.+)", re.DOTALL)
_ESCAPED_NAME = re.compile(rb"(?:[^\\]|\\[\\nr])+", re.DOTALL)


@dataclass(frozen=True)
class Verification:
    """Outcome of verify_directory; paths are relative POSIX paths, sorted."""

    signature_valid: bool  # the manifest is present, well formed and signed by the given key
    altered: tuple[str, ...]
    added: tuple[str, ...]  # present but never signed, including symlinks and other non-regular files
    removed: tuple[str, ...]
    files: int  # entries in the manifest
    malformed: tuple[int, ...] = ()  # numbers (from 1) of the manifest's lines that are not a clean, new entry

    @property
    def ok(self) -> bool:
        return self.signature_valid and not (self.altered or self.added or self.removed)


def _problem(path: Path, message: str) -> UserInputError:
    return UserInputError([Problem(str(path), (), message)])


def generate_keypair(prefix: Path) -> tuple[Path, Path]:
    """Write ``<prefix>.key`` (private, 0600) and ``<prefix>.pub``; return both paths. Neither is ever overwritten."""
    if not prefix.name:
        raise _problem(prefix, "needs a file name prefix, e.g. keys/audit")
    private_name, public_name = prefix.name + ".key", prefix.name + ".pub"
    with OutputDirectory.open(prefix.parent, mode=0o700) as directory:
        for name in (private_name, public_name):
            if os.path.lexists(prefix.parent / name):
                raise _problem(prefix.parent / name, "already exists; refusing to overwrite a signing key")
        key = Ed25519PrivateKey.generate()
        private_pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        public_pem = key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        # Exclusive as well as the check above: a file (or symlink) appearing in between is still never replaced.
        private_path = directory.write_bytes(private_name, private_pem, PRIVATE_MODE, exclusive=True)
        try:
            public_path = directory.write_bytes(public_name, public_pem, 0o644, exclusive=True)
        except UserInputError:
            # A pair or nothing: a new .key beside someone's .pub would sign what that .pub never verifies.
            directory.remove(private_name)
            raise
    return private_path, public_path


def _read_key_file(path: Path) -> bytes:
    return read_regular_file(path, KEY_MAX_BYTES)


def load_private_key(path: Path) -> Ed25519PrivateKey:
    data = _read_key_file(path)
    if b"PUBLIC KEY-----" in data:
        raise _problem(path, "is a public key; signing needs the private .key file")
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except TypeError:
        raise _problem(path, "is encrypted; medinfra needs an unencrypted private key (file mode 0600)") from None
    except (ValueError, UnsupportedAlgorithm):
        raise _problem(path, "is not a PEM private key") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise _problem(path, f"is not an Ed25519 key ({type(key).__name__}); create one with `medinfra keys generate`")
    return key


def _load_public_key(path: Path) -> Ed25519PublicKey:
    data = _read_key_file(path)
    if b"PRIVATE KEY-----" in data:
        raise _problem(path, "is a private key; verifying needs the public .pub file (and the .key must stay private)")
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, UnsupportedAlgorithm):
        raise _problem(path, "is not a PEM public key") from None
    if not isinstance(key, Ed25519PublicKey):
        raise _problem(path, f"is not an Ed25519 public key ({type(key).__name__})")
    return key


def _scan(directory: Path) -> tuple[dict[str, Path], set[str]]:
    """Regular files, and everything else that is not a directory, by relative POSIX path; symlinks not followed."""
    if not directory.is_dir():
        raise _problem(directory, "no such directory")
    regular: dict[str, Path] = {}
    other: set[str] = set()
    pending = [directory]
    while pending:
        current = pending.pop()
        try:
            entries = list(os.scandir(current))
        except OSError as exc:
            raise _problem(current, f"cannot read directory: {exc.strerror or exc}") from None
        for entry in entries:
            path = Path(entry.path)
            name = path.relative_to(directory).as_posix()
            if entry.is_dir(follow_symlinks=False):
                pending.append(path)
            elif entry.is_file(follow_symlinks=False):
                regular[name] = path
            else:
                other.add(name)
    for name in (MANIFEST, SIGNATURE):
        regular.pop(name, None)
        other.discard(name)
    return regular, other


def _sha256(path: Path) -> str:
    try:
        with path.open("rb") as handle:
            return hashlib.file_digest(handle, "sha256").hexdigest()  # reads in chunks
    except OSError as exc:
        raise _problem(path, f"cannot read: {exc.strerror or exc}") from None


def _manifest_line(name: str, digest: str) -> bytes:
    raw = os.fsencode(name)
    if not any(char in raw for char in _ESCAPES):
        return digest.encode() + b"  " + raw + b"\n"
    for char, escaped in _ESCAPES.items():  # backslash first, so escapes are not escaped again
        raw = raw.replace(char, escaped)
    return b"\\" + digest.encode() + b"  " + raw + b"\n"


def _is_clean_relative(name: str) -> bool:
    """Reject absolute, ``..`` and non-normalised names: a forged manifest must not make us read outside."""
    path = PurePosixPath(name)
    return not path.is_absolute() and ".." not in path.parts and path.as_posix() == name


def _parse_manifest(data: bytes) -> tuple[dict[str, str], list[int]]:
    """Entries by name, and the numbers of the lines that are malformed (skipped)."""
    lines = data.split(b"\n")
    last = lines.pop()
    entries: dict[str, str] = {}
    malformed: list[int] = []
    for number, line in enumerate(lines, start=1):
        match = _LINE.fullmatch(line)
        if match is None or (match[1] and _ESCAPED_NAME.fullmatch(match[3]) is None):
            malformed.append(number)
            continue
        raw = re.sub(rb"\\(.)", lambda m: _UNESCAPES[m[1]], match[3]) if match[1] else match[3]
        name = os.fsdecode(raw)
        if not _is_clean_relative(name) or name in entries:
            malformed.append(number)
            continue
        entries[name] = match[2].decode()
    if last:  # the last line must end in a newline too
        malformed.append(len(lines) + 1)
    return entries, malformed


def sign_directory(directory: OutputDirectory, private_key: Path) -> Path:
    """Write MANIFEST.sha256 over every regular file under directory and its signature; return the manifest path."""
    key = load_private_key(private_key)
    regular, other = _scan(directory.path)
    if other:
        raise UserInputError(
            [Problem(one_line(str(directory.path / name)), (),
                     "is not a regular file (symlink, pipe or device); cannot sign it")
             for name in sorted(other)]
        )
    manifest = b"".join(_manifest_line(name, _sha256(path)) for name, path in sorted(regular.items()))
    manifest_path = directory.write_bytes(MANIFEST, manifest, SIGNED_FILE_MODE)
    directory.write_bytes(SIGNATURE, base64.b64encode(key.sign(manifest)) + b"\n", SIGNED_FILE_MODE)
    return manifest_path


def _read_regular(path: Path) -> bytes | None:
    """The file's bytes, or None if it is missing or not a regular file (a symlink included)."""
    try:
        # Opened without following a symlink: the one check, so none can be swapped in after it.
        return read_regular_file(path, MANIFEST_MAX_BYTES, follow_symlinks=False)
    except UserInputError:
        if path.is_symlink() or not path.is_file():
            return None
        raise  # a regular file it could not read, or one larger than MANIFEST_MAX_BYTES


def _signature_holds(key: Ed25519PublicKey, manifest: bytes, signature: bytes) -> bool:
    try:
        key.verify(base64.b64decode(signature.strip(), validate=True), manifest)
    except (InvalidSignature, ValueError):  # binascii.Error for bad base64 is a ValueError
        return False
    return True


def verify_directory(directory: Path, public_key: Path) -> Verification:
    """Check the signature, then every file against the manifest (even if the signature fails, to show what differs)."""
    key = _load_public_key(public_key)
    regular, other = _scan(directory)
    manifest = _read_regular(directory / MANIFEST)
    if manifest is None:
        return Verification(False, (), (), (), 0)
    signature = _read_regular(directory / SIGNATURE)
    entries, malformed = _parse_manifest(manifest)
    authentic = signature is not None and _signature_holds(key, manifest, signature)
    altered: list[str] = []
    removed: list[str] = []
    for name, digest in sorted(entries.items()):
        if name in regular:
            if _sha256(regular[name]) != digest:
                altered.append(name)
        elif name in other:  # a signed file replaced by a symlink or the like
            altered.append(name)
        else:
            removed.append(name)
    added = sorted((regular.keys() | other) - entries.keys())
    return Verification(
        authentic and not malformed, tuple(altered), tuple(added), tuple(removed), len(entries), tuple(malformed)
    )
