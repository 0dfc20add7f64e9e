"""Files people send medinfra, read within bounds: regular files only, never more than the caller's cap."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path

from medinfra.problems import Problem, UserInputError
from medinfra.safe_text import one_line

_FILE_KINDS: tuple[tuple[Callable[[int], bool], str], ...] = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def read_regular_file(path: Path, max_bytes: int, *, follow_symlinks: bool = True) -> bytes:
    """The bytes of ``path`` if it is a regular file of at most ``max_bytes``; else UserInputError.

    Opened without blocking and checked with fstat before any read, so that a FIFO waiting for a writer
    or a device that never ends is refused at once. `follow_symlinks=False` refuses a symlink too (a file inside
    a directory someone sent, which must not make medinfra read elsewhere).
    """
    name = one_line(str(path))
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC | (0 if follow_symlinks else os.O_NOFOLLOW)
    try:
        descriptor = os.open(path, flags)
    except FileNotFoundError:
        raise UserInputError([Problem(name, (), "file not found")]) from None
    except OSError as exc:
        if not follow_symlinks and os.path.islink(path):
            raise UserInputError([Problem(name, (), "is a symlink; give the file itself")]) from None
        raise UserInputError([Problem(name, (), f"cannot read file: {exc.strerror or exc}")]) from None
    try:
        info = os.fstat(descriptor)
        if not stat.S_ISREG(info.st_mode):
            kind = next((what for test, what in _FILE_KINDS if test(info.st_mode)), "something else")
            raise UserInputError([Problem(name, (), f"not a regular file but {kind}")])
        too_big = f"larger than {max_bytes:,} bytes, the most medinfra reads from such a file"
        if info.st_size > max_bytes:
            raise UserInputError([Problem(name, (), f"{info.st_size:,} bytes: {too_big}")])
        with open(descriptor, "rb", closefd=False) as file:
            content = file.read(info.st_size + 1)  # a buffer of the file's size, not of the cap
            if len(content) > info.st_size:  # grown since fstat, or a /proc file that says 0
                content += file.read(max_bytes + 1 - len(content))
    finally:
        os.close(descriptor)
    if len(content) > max_bytes:
        raise UserInputError([Problem(name, (), too_big)])
    return content
