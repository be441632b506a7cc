"""Writing result files atomically: a temporary file beside the target, renamed when complete.

A reader (or a user looking at the folder) sees the previous file, or none, until the complete
new one appears; an interruption (SIGTERM, Ctrl-C, a crash) or a full disk never leaves a
half-written file under the target's name. The temporary file is hidden
(``.<name>.<random>.tmp``) and removed when the write fails.

Example::

    with atomic_write("metrics.json") as fh:
        json.dump(metrics, fh)
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path
from typing import IO, Iterator


def temp_path_for(path: Path) -> Path:
    """A fresh hidden temporary name beside ``path``."""
    return path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")


@contextlib.contextmanager
def atomic_write(path: str | Path, mode: str = "w", encoding: str | None = "utf-8") -> Iterator[IO]:
    """Open a temporary file for writing; on success it is flushed, fsynced and renamed to
    ``path``; on any exception it is removed and ``path`` is left as it was.

    Args:
        path: the final file.
        mode: ``"w"`` (text) or ``"wb"`` (binary).
        encoding: text encoding (ignored for binary mode).

    Raises:
        OSError: the folder is not writable, the disk is full, ... (nothing is left behind).
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_write mode must be 'w' or 'wb', got {mode!r}")
    target = Path(path)
    while True:
        tmp = temp_path_for(target)
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # the umask applies
            break
        except FileExistsError:
            continue
    try:
        with os.fdopen(fd, mode, encoding=None if "b" in mode else encoding) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def write_text_atomic(path: str | Path, text: str, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` atomically (see :func:`atomic_write`); returns the path."""
    with atomic_write(path, "w", encoding) as fh:
        fh.write(text)
    return Path(path)
