"""SHA-256 of files, read in chunks (a model, a bundle member, a dataset sample)."""

from __future__ import annotations

import hashlib
import os
from typing import Any

_CHUNK = 1 << 20


def update_from_file(h: Any, path: str | os.PathLike[str]) -> None:
    """Feed the bytes of ``path`` into the hash object ``h``, 1 MiB at a time."""
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(_CHUNK), b""):
            h.update(chunk)


def file_sha256(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of the bytes of ``path``."""
    h = hashlib.sha256()
    update_from_file(h, path)
    return h.hexdigest()
