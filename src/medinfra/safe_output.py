"""Every file medinfra writes goes through here: into a directory opened once, never through a symlink.

medinfra runs as root and writes where someone else may have prepared the place: a results directory that was sent
along, an `evidence/` that is a symlink, a `findings.csv` that links to `~/.ssh/authorized_keys` (or is a hard link
to it). So the directory is opened once without following a symlink, and each file is written to a new temporary
file (O_EXCL | O_NOFOLLOW, its final mode from creation on) in that directory and renamed over its name: the rename
replaces whatever was there, a symlink or a hard link included, and never writes into it or changes its mode.
Names are single path components; host names become file names through `file_name`.
"""

from __future__ import annotations

import errno
import hashlib
import os
import secrets
import stat
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import IO, Self

from medinfra.problems import Problem, UserInputError
from medinfra.safe_text import one_line

DIRECTORY_MODE = 0o750
# Audit results describe weaknesses: readable by the owner and group only, from creation on.
FILE_MODE = 0o640
PRIVATE_MODE = 0o600
TEMPORARY_PREFIX = ".medinfra-"
TEMPORARY_SUFFIX = ".tmp"
# Linux's NAME_MAX; a longer name is shortened and keeps a digest of the whole (see file_name).
NAME_MAX = 255
_PLAIN = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.")
_DIRECTORY_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_NEW_FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


def _refusal(path: Path, message: str) -> UserInputError:
    return UserInputError([Problem(one_line(str(path)), (), message)])


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc)


def is_single_name(name: str) -> bool:
    """Whether medinfra may create `name`: one path component, not '.' or '..', no NUL, at most NAME_MAX bytes."""
    try:
        size = len(os.fsencode(name))
    except UnicodeEncodeError:
        return False
    return name not in ("", ".", "..") and "/" not in name and "\0" not in name and size <= NAME_MAX


def file_name(text: str, suffix: str = "") -> str:
    """A file name for any text (a host name): readable when the text is plain, always one safe path component.

    Bytes outside [A-Za-z0-9._-] and a leading dot are written %XX, so distinct texts give distinct names and no
    name is '.', '..' or hidden. A name longer than NAME_MAX keeps its start and gets '~' and a digest of the whole
    text ('~' never appears in an unshortened name). `suffix` must itself be plain ('.json').
    """
    raw = text.encode("utf-8", "surrogatepass")
    encoded = "".join(
        chr(byte) if byte in _PLAIN and not (index == 0 and byte == ord(".")) else f"%{byte:02X}"
        for index, byte in enumerate(raw)
    )
    if len(encoded) + len(suffix) > NAME_MAX:
        digest = hashlib.sha256(raw).hexdigest()[:32]
        encoded = f"{encoded[: NAME_MAX - len(suffix) - len(digest) - 1]}~{digest}"
    return encoded + suffix


def _symlink_or_not_directory(exc: OSError, is_link: bool) -> str:
    if is_link:
        return "is a symlink; medinfra writes only into a real directory"
    if exc.errno == errno.ENOTDIR:
        return "is not a directory"
    return f"cannot open directory: {_reason(exc)}"


class OutputDirectory:
    """A directory opened once (not through a symlink), and the files medinfra writes in it, by name."""

    def __init__(self, path: Path, descriptor: int) -> None:
        self.path = path
        self._descriptor = descriptor

    @classmethod
    def open(cls, path: Path, mode: int = DIRECTORY_MODE) -> Self:
        """Open `path`, created with `mode` if missing; refuse a symlink or anything else that is not a directory."""
        if not os.path.lexists(path):
            try:
                path.mkdir(mode=mode, parents=True, exist_ok=True)
            except OSError as exc:
                raise _refusal(path, f"cannot create directory: {_reason(exc)}") from None
        try:
            return cls(path, os.open(path, _DIRECTORY_FLAGS))
        except OSError as exc:
            raise _refusal(path, _symlink_or_not_directory(exc, os.path.islink(path))) from None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        if self._descriptor >= 0:
            os.close(self._descriptor)
            self._descriptor = -1

    def _checked(self, name: str) -> Path:
        """The path of `name` here, for messages; refused unless it is a single name."""
        if not is_single_name(name):
            raise _refusal(self.path / name, "is not a single file name (no '/', '.', '..', NUL; at most 255 bytes)")
        return self.path / name

    def _lstat(self, name: str) -> os.stat_result | None:
        try:
            return os.lstat(name, dir_fd=self._descriptor)
        except OSError:
            return None

    def subdirectory(self, name: str) -> OutputDirectory:
        """The directory `name` in this one, created if missing; refused if it is a symlink or not a directory."""
        path = self._checked(name)
        try:
            os.mkdir(name, DIRECTORY_MODE, dir_fd=self._descriptor)
        except FileExistsError:
            pass
        except OSError as exc:
            raise _refusal(path, f"cannot create directory: {_reason(exc)}") from None
        found = self.existing_subdirectory(name)
        if found is None:
            raise _refusal(path, "cannot open directory: it vanished")
        return found

    def existing_subdirectory(self, name: str) -> OutputDirectory | None:
        """The directory `name` in this one if it exists; refused if it is a symlink or not a directory."""
        path = self._checked(name)
        try:
            return OutputDirectory(path, os.open(name, _DIRECTORY_FLAGS, dir_fd=self._descriptor))
        except FileNotFoundError:
            return None
        except OSError as exc:
            found = self._lstat(name)
            is_link = found is not None and stat.S_ISLNK(found.st_mode)
            raise _refusal(path, _symlink_or_not_directory(exc, is_link)) from None

    def names(self) -> list[str]:
        """Every entry's name, as they are (symlinks included, none followed)."""
        try:
            return os.listdir(self._descriptor)
        except OSError as exc:
            raise _refusal(self.path, f"cannot list directory: {_reason(exc)}") from None

    def remove(self, name: str) -> None:
        """Unlink `name` here if present: a symlink itself, never what it points to; a directory is left alone."""
        path = self._checked(name)
        try:
            os.unlink(name, dir_fd=self._descriptor)
        except (FileNotFoundError, IsADirectoryError):
            pass
        except OSError as exc:
            raise _refusal(path, f"cannot remove: {_reason(exc)}") from None

    def remove_leftovers(self) -> None:
        """Temporary files a killed run left behind: a signature must never cover one."""
        for name in self.names():
            if name.startswith(TEMPORARY_PREFIX) and name.endswith(TEMPORARY_SUFFIX):
                self.remove(name)

    def _create_temporary(self, path: Path, mode: int) -> tuple[str, int]:
        temporary = f"{TEMPORARY_PREFIX}{secrets.token_hex(8)}{TEMPORARY_SUFFIX}"
        try:
            descriptor = os.open(temporary, _NEW_FILE_FLAGS, mode, dir_fd=self._descriptor)
        except OSError as exc:
            raise _refusal(path, f"cannot write: {_reason(exc)}") from None
        return temporary, descriptor

    @contextmanager
    def _new_file(self, name: str, mode: int, exclusive: bool) -> Iterator[int]:
        """A descriptor on a fresh temporary file; when the block ends well it becomes `name`, else it is removed.

        `exclusive`: `name` must not exist (the file is linked, not renamed, into place), so nothing is replaced.
        """
        path = self._checked(name)
        temporary, descriptor = self._create_temporary(path, mode)
        try:
            os.fchmod(descriptor, mode)  # the umask may have cleared bits of a file that is ours alone
            yield descriptor
            if exclusive:
                os.link(temporary, name, src_dir_fd=self._descriptor, dst_dir_fd=self._descriptor,
                        follow_symlinks=False)
            else:
                os.replace(temporary, name, src_dir_fd=self._descriptor, dst_dir_fd=self._descriptor)
        except FileExistsError:
            raise _refusal(path, "already exists; refusing to overwrite it") from None
        except OSError as exc:
            raise _refusal(path, f"cannot write: {_reason(exc)}") from None
        finally:
            os.close(descriptor)
            with suppress(FileNotFoundError):
                os.unlink(temporary, dir_fd=self._descriptor)

    @contextmanager
    def open_text(
        self, name: str, encoding: str = "utf-8", newline: str | None = None, mode: int = FILE_MODE
    ) -> Iterator[IO[str]]:
        """Write `name` as text. Lone surrogates (from a JSON "\\ud800" a host sent) are written as escapes."""
        with (
            self._new_file(name, mode, exclusive=False) as descriptor,
            os.fdopen(os.dup(descriptor), "w", encoding=encoding, newline=newline, errors="backslashreplace") as handle,
        ):
            yield handle

    def write_text(self, name: str, text: str, mode: int = FILE_MODE) -> Path:
        with self.open_text(name, mode=mode) as handle:
            handle.write(text)
        return self.path / name

    def write_bytes(self, name: str, data: bytes, mode: int = FILE_MODE, *, exclusive: bool = False) -> Path:
        """Write `name`; `exclusive`: refuse if it exists (a key is never overwritten)."""
        with self._new_file(name, mode, exclusive) as descriptor:
            view = memoryview(data)
            while view:
                view = view[os.write(descriptor, view) :]
        return self.path / name

    def probe(self) -> None:
        """Fail now, not after the hosts were contacted, if no file can be created here."""
        temporary, descriptor = self._create_temporary(self.path, FILE_MODE)
        os.close(descriptor)
        os.unlink(temporary, dir_fd=self._descriptor)


def write_file(path: Path, text: str, mode: int = FILE_MODE) -> Path:
    """Write one file at `path` the safe way (its directory opened for this one write)."""
    with OutputDirectory.open(path.parent) as directory:
        return directory.write_text(path.name, text, mode)
