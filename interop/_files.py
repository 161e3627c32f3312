"""Atomic file writes shared by every writer (checkpoints, exported models, `interop run -o`, the demo's files).

The data goes to a temporary file beside the destination, is flushed to disk and only then renamed over it, so an
interrupted or failing write leaves the previous file as it was, and readers never see half a file."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from typing import BinaryIO

__all__ = ["atomic_path", "atomic_write"]


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[str]:
    """Yield a temporary file name beside `path` for a writer that takes a name (not a file object); the file is
    moved onto `path` when the block ends without an error, and removed when it fails."""
    dest = os.path.abspath(os.fspath(path))
    directory, name = os.path.split(dest)
    tmp = os.path.join(directory, f".{name}.{uuid.uuid4().hex[:12]}.tmp")
    with open(tmp, "xb"):  # claims the name, with the permissions the user's umask gives new files
        pass
    mode = os.stat(tmp).st_mode & 0o777
    try:
        yield tmp
        os.chmod(tmp, mode)  # the writer may have recreated the file as owner-only
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, dest)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike) -> Iterator[BinaryIO]:
    """`atomic_path` for writers that take a binary file object."""
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        yield fh
