"""A content-addressed cache of extracted landmarks: one ``.npz`` per sample.

The key of a sample is the SHA-256 of (its bytes, the landmarker model's SHA-256, the
extraction settings that change the result, a format version), so renaming or moving a
dataset keeps its cache valid while any change of content, model or settings misses it.
Entries are written atomically (temporary file + :func:`os.replace`); an unreadable entry is
treated as a miss and rewritten.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from realtime_fer.data.layouts import SampleRef
from realtime_fer.hashing import update_from_file
from realtime_fer.landmarks.detector import NUM_BLENDSHAPES, NUM_LANDMARKS

log = logging.getLogger(__name__)

#: Bump when the stored arrays or the way they are computed change.
CACHE_FORMAT = 2


@dataclass(frozen=True)
class CachedLandmarks:
    """The stored result of one sample."""

    landmarks: np.ndarray
    """(F, 478, 3) float32 pixels, NaN rows where no face was found."""
    fps: float | None
    frame_size: tuple[int, int]
    """(width, height) of the frames as read."""
    failure: str | None = None
    """Why the sample cannot be read (a deterministic decode failure); landmarks are then empty."""
    blendshapes: np.ndarray | None = None
    """(F, 52) float32 MediaPipe blendshape scores (NaN rows where no face was found), when the
    extraction asked for them (``LandmarkerOptions.blendshapes``)."""


def content_sha256(ref: SampleRef) -> str:
    """SHA-256 of the bytes of a sample (of each frame in order, length-prefixed, for a sequence)."""
    h = hashlib.sha256()
    files = ref.files()
    for f in files:
        if len(files) > 1:
            h.update(f.stat().st_size.to_bytes(8, "little"))
        update_from_file(h, f)
    return h.hexdigest()


def cache_key(content_sha: str, kind: str, model_sha: str, settings: dict[str, Any]) -> str:
    """The cache key of a sample with content hash ``content_sha`` extracted with ``settings``."""
    blob = json.dumps(
        {"format": CACHE_FORMAT, "content": content_sha, "kind": kind, "model": model_sha, "settings": settings},
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()


def entry_path(cache_dir: Path, key: str) -> Path:
    """Where the entry for ``key`` lives (sharded by the first two hex digits)."""
    return cache_dir / key[:2] / f"{key}.npz"


def load_entry(path: Path) -> CachedLandmarks | None:
    """Read an entry; ``None`` when it is missing, and also (with a warning) when it is corrupt."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            landmarks = np.asarray(z["landmarks"])
            meta = np.asarray(z["meta"], dtype=np.float64)
            failure = str(z["failure"]) if "failure" in z.files else ""
            blend = np.asarray(z["blendshapes"]) if "blendshapes" in z.files else None
        if blend is not None and (blend.dtype != np.float32 or blend.shape != (len(landmarks), NUM_BLENDSHAPES)):
            raise ValueError(f"unexpected blendshapes {blend.shape} {blend.dtype}")
        if landmarks.dtype != np.float32 or landmarks.ndim != 3 or landmarks.shape[1:] != (NUM_LANDMARKS, 3) or meta.shape != (3,):
            raise ValueError(f"unexpected arrays: landmarks {landmarks.shape} {landmarks.dtype}, meta {meta.shape}")
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
        log.warning("cache entry %s is unreadable (%s); recomputing it", path, exc)
        return None
    fps = float(meta[0])
    return CachedLandmarks(landmarks, None if np.isnan(fps) else fps, (int(meta[1]), int(meta[2])), failure or None, blend)


def failure_entry(reason: str) -> CachedLandmarks:
    """An entry that records that a sample cannot be read."""
    return CachedLandmarks(np.zeros((0, NUM_LANDMARKS, 3), dtype=np.float32), None, (0, 0), reason)


def save_entry(path: Path, value: CachedLandmarks) -> None:
    """Write an entry atomically (a reader sees the old entry, or the complete new one).

    Two arrays keep reading fast: ``landmarks`` and ``meta`` = (fps or NaN, width, height);
    a ``failure`` string is added only for unreadable samples, ``blendshapes`` only when asked for.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {
        "landmarks": np.asarray(value.landmarks, dtype=np.float32),
        "meta": np.array([np.nan if value.fps is None else value.fps, *value.frame_size], dtype=np.float64),
    }
    if value.failure:
        arrays["failure"] = np.str_(value.failure)
    if value.blendshapes is not None:
        arrays["blendshapes"] = np.asarray(value.blendshapes, dtype=np.float32)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem[:16]}-", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, **arrays)
            fh.flush()
            os.fsync(fh.fileno())  # the data is on disk before the name points at it
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
