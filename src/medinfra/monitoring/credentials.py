"""bcrypt hashes for exporter-toolkit web configs, with a salt derived from the inputs so reruns change nothing."""

from __future__ import annotations

import base64
import hashlib

import bcrypt

# bcrypt's own base64 alphabet, in the order of the standard one.
_STANDARD = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_BCRYPT = b"./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
MIN_COST = 10


def derived_salt(password: str, seed: str, cost: int) -> bytes:
    """A bcrypt salt from the password and a per-host seed: stable across runs, different between hosts."""
    if not MIN_COST <= cost <= 16:
        raise ValueError(f"bcrypt cost must be between {MIN_COST} and 16, got {cost}")
    digest = hashlib.sha256(b"medinfra-bcrypt-salt\0" + seed.encode() + b"\0" + password.encode()).digest()[:16]
    encoded = base64.b64encode(digest).rstrip(b"=").translate(bytes.maketrans(_STANDARD, _BCRYPT))
    # The 22nd character carries only 2 bits of the salt; bcrypt ignores the rest, so normalise it.
    encoded = encoded[:21] + bytes([_BCRYPT[_BCRYPT.index(encoded[21]) & 0x30]])
    return b"$2b$%02d$" % cost + encoded


def bcrypt_hash(password: str, seed: str, cost: int = 12) -> str:
    if not password:
        raise ValueError("the password is empty")
    return bcrypt.hashpw(password.encode(), derived_salt(password, seed, cost)).decode()
