"""Signed results: any change to a signed directory is caught, and bad keys are user errors."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.rsa import generate_private_key

from medinfra.cli import main
from medinfra.problems import UserInputError
from medinfra.safe_output import OutputDirectory
from medinfra.signing import MANIFEST, SIGNATURE, generate_keypair, sign_directory, verify_directory

SAMPLE = {
    "findings.json": '{"findings": [{"control": "ssh-root-login", "status": "fail"}]}\n',
    "report.en.html": "<!doctype html><title>audit</title><p>2 hosts</p>\n",
    "junit.xml": '<?xml version="1.0"?><testsuites><testsuite name="his-db"/></testsuites>\n',
    "evidence/his-db.json": '{"sshd": {"permitrootlogin": "no"}}',
    "evidence/pacs-01.json": '{"sshd": {"permitrootlogin": "yes"}}',
    # Larger than hashlib's read buffer, so the manifest hash covers more than one chunk.
    "evidence/large.json": '{"packages": [' + ",".join(f'"pkg-{i}"' for i in range(60_000)) + "]}",
}


def sign(directory: Path, private_key: Path) -> Path:
    with OutputDirectory.open(directory) as out:
        return sign_directory(out, private_key)


def write_sample(directory: Path) -> Path:
    for name, text in SAMPLE.items():
        path = directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return directory


@pytest.fixture(scope="module")
def keypair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return generate_keypair(tmp_path_factory.mktemp("keys") / "audit")


@pytest.fixture
def signed(tmp_path: Path, keypair: tuple[Path, Path]) -> Path:
    directory = write_sample(tmp_path / "reports")
    sign(directory, keypair[0])
    return directory


def test_roundtrip(signed: Path, keypair: tuple[Path, Path]) -> None:
    result = verify_directory(signed, keypair[1])
    assert result.ok and result.signature_valid
    assert result.files == len(SAMPLE)
    assert (result.altered, result.added, result.removed) == ((), (), ())
    for name in (MANIFEST, SIGNATURE):
        assert stat.S_IMODE((signed / name).stat().st_mode) == 0o640


def test_manifest_is_sorted_relative_and_excludes_itself(signed: Path) -> None:
    names = [line.split("  ", 1)[1] for line in (signed / MANIFEST).read_text().splitlines()]
    assert names == sorted(SAMPLE)


def test_keys_are_private_and_public_pem(tmp_path: Path) -> None:
    private, public = generate_keypair(tmp_path / "new" / "keys" / "audit")
    assert (private.name, public.name) == ("audit.key", "audit.pub")
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert stat.S_IMODE(public.stat().st_mode) == 0o644
    assert stat.S_IMODE(private.parent.stat().st_mode) & 0o077 == 0
    assert private.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    assert public.read_bytes().startswith(b"-----BEGIN PUBLIC KEY-----")


@pytest.mark.parametrize("existing", ["audit.key", "audit.pub"])
def test_generate_refuses_to_overwrite(tmp_path: Path, existing: str) -> None:
    (tmp_path / existing).write_text("keep me")
    with pytest.raises(UserInputError, match="already exists; refusing to overwrite a signing key") as caught:
        generate_keypair(tmp_path / "audit")
    assert caught.value.problems[0].file == str(tmp_path / existing)
    assert (tmp_path / existing).read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == [existing]


@pytest.mark.parametrize("position", ["first", "middle", "last"])
@pytest.mark.parametrize("name", sorted(SAMPLE))
def test_one_flipped_byte_in_any_file_is_altered(
    signed: Path, keypair: tuple[Path, Path], name: str, position: str
) -> None:
    path = signed / name
    data = bytearray(path.read_bytes())
    index = {"first": 0, "middle": len(data) // 2, "last": len(data) - 1}[position]
    data[index] ^= 0x01
    path.write_bytes(bytes(data))
    result = verify_directory(signed, keypair[1])
    assert not result.ok
    assert result.signature_valid
    assert (result.altered, result.added, result.removed) == ((name,), (), ())


def test_added_and_removed_files(signed: Path, keypair: tuple[Path, Path]) -> None:
    (signed / "evidence" / "rogue.json").write_text("{}")
    (signed / "findings.json").unlink()
    result = verify_directory(signed, keypair[1])
    assert not result.ok
    assert (result.altered, result.added, result.removed) == ((), ("evidence/rogue.json",), ("findings.json",))


def test_symlinks_are_never_signed(signed: Path, keypair: tuple[Path, Path]) -> None:
    (signed / "link.json").symlink_to(signed / "findings.json")
    (signed / "evidence-link").symlink_to(signed / "evidence")
    (signed / "junit.xml").unlink()
    (signed / "junit.xml").symlink_to(signed / "findings.json")
    result = verify_directory(signed, keypair[1])
    assert result.added == ("evidence-link", "link.json")
    assert result.altered == ("junit.xml",)
    assert not result.ok


def test_signing_refuses_a_symlink(tmp_path: Path, keypair: tuple[Path, Path]) -> None:
    directory = write_sample(tmp_path / "reports")
    (directory / "evidence" / "link.json").symlink_to("/etc/passwd")
    with pytest.raises(UserInputError, match="not a regular file"):
        sign(directory, keypair[0])
    assert not (directory / MANIFEST).exists()


def test_rewriting_the_manifest_to_hide_a_change_breaks_the_signature(
    signed: Path, keypair: tuple[Path, Path]
) -> None:
    (signed / "findings.json").write_text('{"findings": []}\n')
    # The tamperer recomputes the manifest, but cannot sign it without the private key.
    lines = subprocess.run(
        ["sha256sum", *sorted(SAMPLE)], cwd=signed, capture_output=True, check=True
    ).stdout
    (signed / MANIFEST).write_bytes(lines)
    result = verify_directory(signed, keypair[1])
    assert not result.signature_valid and not result.ok
    assert (result.altered, result.added, result.removed) == ((), (), ())


def test_a_tampered_manifest_still_shows_which_files_differ(signed: Path, keypair: tuple[Path, Path]) -> None:
    manifest = signed / MANIFEST
    manifest.write_bytes(manifest.read_bytes().replace(b"junit.xml", b"junit.xmm"))
    result = verify_directory(signed, keypair[1])
    assert not result.signature_valid
    assert (result.altered, result.added, result.removed) == ((), ("junit.xml",), ("junit.xmm",))


@pytest.mark.parametrize(
    "bad_line",
    [
        b"not a manifest line",
        b"0" * 64 + b"  ../../etc/shadow",
        b"0" * 64 + b"  /etc/shadow",
        b"\\" + b"0" * 64 + b"  a\\x",  # an escape sha256sum does not define
    ],
)
def test_a_malformed_manifest_line_fails_without_a_traceback(
    signed: Path, keypair: tuple[Path, Path], bad_line: bytes
) -> None:
    manifest = signed / MANIFEST
    manifest.write_bytes(manifest.read_bytes() + bad_line + b"\n")
    result = verify_directory(signed, keypair[1])
    assert not result.signature_valid and not result.ok
    assert (result.altered, result.added, result.removed) == ((), (), ())


@pytest.mark.parametrize("missing", [MANIFEST, SIGNATURE])
def test_missing_manifest_or_signature(signed: Path, keypair: tuple[Path, Path], missing: str) -> None:
    (signed / missing).unlink()
    assert not verify_directory(signed, keypair[1]).signature_valid


def test_another_keypairs_public_key_fails(signed: Path, tmp_path: Path) -> None:
    _, other_public = generate_keypair(tmp_path / "other")
    result = verify_directory(signed, other_public)
    assert not result.signature_valid and not result.ok


@pytest.mark.skipif(shutil.which("sha256sum") is None, reason="needs GNU coreutils sha256sum")
def test_sha256sum_accepts_the_manifest(tmp_path: Path, keypair: tuple[Path, Path]) -> None:
    directory = write_sample(tmp_path / "reports")
    # Names GNU sha256sum escapes: the manifest must use the same escaping.
    for odd in ("back\\slash.json", "new\nline.json", "carriage\rreturn.json", "space name.json", "中文.json"):
        (directory / "evidence" / odd).write_text(odd)
    sign(directory, keypair[0])
    check = subprocess.run(["sha256sum", "--strict", "-c", MANIFEST], cwd=directory, capture_output=True, text=True,
                           check=False)
    assert check.returncode == 0, check.stdout + check.stderr
    assert check.stdout.count(": OK") == len(SAMPLE) + 5
    assert verify_directory(directory, keypair[1]).ok


def test_bad_key_files_are_user_errors(tmp_path: Path, keypair: tuple[Path, Path]) -> None:
    directory = write_sample(tmp_path / "reports")
    rsa = tmp_path / "rsa.pem"
    rsa.write_bytes(
        generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    encrypted = tmp_path / "encrypted.key"
    encrypted.write_bytes(
        Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"secret"),
        )
    )
    garbage = tmp_path / "garbage.pub"
    garbage.write_text("not a key\n")
    fifo = tmp_path / "fifo.pub"
    os.mkfifo(fifo)
    cases = [
        (sign, tmp_path / "nosuch.key", "file not found"),
        (sign, keypair[1], "is a public key"),
        (sign, garbage, "is not a PEM private key"),
        (sign, rsa, "is not an Ed25519 key"),
        (sign, encrypted, "is encrypted"),
        (verify_directory, tmp_path / "nosuch.pub", "file not found"),
        (verify_directory, keypair[0], "is a private key"),
        (verify_directory, garbage, "is not a PEM public key"),
        (verify_directory, tmp_path, "not a regular file but a directory"),
        (sign, Path("/dev/zero"), "not a regular file but a character device"),  # once read until memory ran out
        (verify_directory, fifo, "not a regular file but a FIFO"),  # once waited forever for a writer
    ]
    for function, key, message in cases:
        with pytest.raises(UserInputError, match=message) as caught:
            function(directory, key)
        assert caught.value.problems[0].file == str(key)
        assert b"PRIVATE KEY" not in str(caught.value).encode()


def test_cli_generate_sign_verify(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    prefix = tmp_path / "keys" / "audit"
    assert main(["keys", "generate", "--out", str(prefix)]) == 0
    out = capsys.readouterr().out
    assert f"{prefix}.key" in out and f"{prefix}.pub" in out and "private" in out
    assert main(["keys", "generate", "--out", str(prefix)]) == 2
    assert "refusing to overwrite" in capsys.readouterr().err

    directory = write_sample(tmp_path / "reports")
    sign(directory, Path(f"{prefix}.key"))
    assert main(["verify", str(directory), "--pubkey", f"{prefix}.pub"]) == 0
    assert capsys.readouterr().out == f"verified: {len(SAMPLE)} files, signature valid\n"


def test_cli_verify_reports_every_problem(signed: Path, keypair: tuple[Path, Path],
                                          capsys: pytest.CaptureFixture[str]) -> None:
    (signed / "junit.xml").write_text("<testsuites/>")
    (signed / "evidence" / "pacs-01.json").unlink()
    (signed / "extra.txt").write_text("x")
    (signed / SIGNATURE).write_text("AAAA\n")
    assert main(["verify", str(signed), "--pubkey", str(keypair[1])]) == 1
    assert capsys.readouterr().out.splitlines() == [
        "signature: INVALID (manifest or signature altered)",
        "altered: junit.xml",
        "added: extra.txt",
        "removed: evidence/pacs-01.json",
    ]
    (signed / MANIFEST).unlink()
    assert main(["verify", str(signed), "--pubkey", str(keypair[1])]) == 1
    assert capsys.readouterr().out == f"signature: INVALID ({MANIFEST} missing)\n"


def test_cli_verify_user_errors_exit_2(tmp_path: Path, keypair: tuple[Path, Path],
                                       capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["verify", str(tmp_path / "nosuch"), "--pubkey", str(keypair[1])]) == 2
    assert f"{tmp_path / 'nosuch'}: (top level): no such directory" in capsys.readouterr().err

    garbage = tmp_path / "garbage.pub"
    garbage.write_bytes(os.urandom(64))
    assert main(["verify", str(write_sample(tmp_path / "reports")), "--pubkey", str(garbage)]) == 2
    captured = capsys.readouterr()
    assert f"{garbage}: (top level): is not a PEM public key" in captured.err
    assert "Traceback" not in captured.err + captured.out
