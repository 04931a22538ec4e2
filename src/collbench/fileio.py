"""Reading files safely: regular files only (a FIFO or a device never blocks a command),
bounded in size, UTF-8, one clear error otherwise."""
from __future__ import annotations

import os
import stat
from pathlib import Path

MAX_PATH = 4096


def user_path(path: str | os.PathLike[str], what: str, error: type[Exception]) -> Path:
    """A file name as typed: not empty, no NUL byte, not longer than the OS allows; the name
    is quoted in messages (it may hold newlines)."""
    text = os.fspath(path)
    if not text or "\0" in text or len(text) > MAX_PATH or not Path(text).name:
        raise error(f"{what} {text[:80]!r} is not a usable file name")
    return Path(text)


def read_text_file(path: Path, what: str, error: type[Exception], limit: int) -> str:
    """The text of a regular file of at most ``limit`` bytes (never blocks on a FIFO or a
    device); ``error`` with one line otherwise."""
    path = user_path(path, what, error)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as exc:
        raise error(f"cannot read {what} {path}: {exc.strerror}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise error(f"{what} {path} is not a regular file")
        if st.st_size > limit:
            raise error(f"{what} {path} is {st.st_size:,} bytes; the limit is {limit:,}")
        with os.fdopen(fd, "rb", closefd=False) as f:
            data = f.read(limit + 1)
    except OSError as exc:
        raise error(f"cannot read {what} {path}: {exc.strerror}") from None
    finally:
        os.close(fd)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise error(f"{what} {path} is not UTF-8 text") from None
