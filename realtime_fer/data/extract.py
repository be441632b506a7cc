"""Extracting raw face landmarks from a whole dataset, in parallel, with a content cache.

:func:`extract_dataset` discovers the samples of a folder (:func:`~realtime_fer.data.layouts.discover`),
hashes every file, loads what the cache already holds and runs MediaPipe on the rest in a
pool of worker processes (``spawn`` context; one detector per worker), or on a Dask cluster
(an ``executor``, :mod:`realtime_fer.data.executors`); either way this process writes the cache.
Unreadable files never stop the run: they are listed in :attr:`ExtractionResult.failed`.

Defaults: stills (images and sequence frames) are padded by 25% of their longer side
(``LandmarkerOptions(pad_fraction=0.25)``), which raised detection on tight 48x48/100x100 crops
from ~83-91% to 93-97%; videos run in VIDEO mode without padding unless their frames are
smaller than 200 px. With several faces the largest is kept.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np

from realtime_fer.data import _worker
from realtime_fer.data.executors import Executor, LocalExecutor, current_executor
from realtime_fer.data.cache import CachedLandmarks, cache_key, content_sha256, entry_path, failure_entry, load_entry, save_entry
from realtime_fer.data.layouts import Discovery, SampleRef, discover
from realtime_fer.errors import DataError
from realtime_fer.labels import EMOTIONS
from realtime_fer.landmarks.detector import LandmarkerOptions
from realtime_fer.landmarks.model_file import find_model_file, sha256_of

log = logging.getLogger(__name__)

#: Padding for stills (fraction of the longer image side), see the module docstring.
DEFAULT_STILL_PAD_FRACTION = 0.25
#: Most images sent to a worker at once.
MAX_BATCH = 16


def default_options() -> LandmarkerOptions:
    """The landmarker options used for datasets when none are given: 25 % padding for tight
    crops, one face, and the face finder for images where the whole image shows none
    (``find_faces``: small faces are not dropped; RAF-DB 96.8 -> 97.8 %, FER2013 95.8 -> 96.2 %
    of 500 train images each, ``tools/bench_extract_faces.py``). Training configs that name
    their ``landmarker`` options keep theirs (the shipped recipe pins ``find_faces: false``)."""
    return LandmarkerOptions(pad_fraction=DEFAULT_STILL_PAD_FRACTION, num_faces=1, find_faces=True)


def with_blendshapes(options: LandmarkerOptions | None, needed: bool) -> LandmarkerOptions | None:
    """Extraction options that also compute blendshapes when ``needed`` (models that read them):
    a copy of ``options`` (default :func:`default_options`); ``options`` as given otherwise."""
    if not needed:
        return options
    return dataclasses.replace(options or default_options(), blendshapes=True)


@dataclass
class ExtractedSample:
    """The raw landmarks of one sample."""

    ref: SampleRef
    landmarks: np.ndarray
    """(F, 478, 3) float32 in pixels of the frame (x, y; z in x's scale); NaN rows: no face."""
    fps: float | None
    """Frame rate of a video (``None`` for images, sequences and videos that report none)."""
    frame_size: tuple[int, int]
    """(width, height) of the frames."""
    from_cache: bool = False
    blendshapes: np.ndarray | None = None
    """(F, 52) MediaPipe blendshape scores (NaN rows: no face), when extracted with
    ``LandmarkerOptions.blendshapes``."""

    @property
    def detected(self) -> np.ndarray:
        """(F,) bool: a face was found in the frame."""
        return np.isfinite(self.landmarks).all(axis=(1, 2))

    @property
    def detection_rate(self) -> float:
        """Fraction of frames with a face (0.0 for an empty sample)."""
        return float(self.detected.mean()) if len(self.landmarks) else 0.0

    @property
    def n_frames(self) -> int:
        return int(self.landmarks.shape[0])


@dataclass
class ExtractionResult:
    """Everything :func:`extract_dataset` produced."""

    data_dir: Path
    layout: str
    samples: list[ExtractedSample] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    """``(path, reason)`` of samples that could not be read."""
    skipped: list[tuple[str, str]] = field(default_factory=list)
    """``(path, reason)`` of files that discovery did not use."""
    n_cached: int = 0
    """Samples whose result (landmarks, or a recorded decode failure) came from the cache."""
    n_computed: int = 0
    """Samples read and run through MediaPipe in this call (failures included)."""
    elapsed_s: float = 0.0
    settings: dict[str, Any] = field(default_factory=dict)
    model_sha256: str = ""

    @property
    def per_label(self) -> dict[str, dict[str, float]]:
        """Per label: ``n`` samples, ``detected`` (a face in at least one frame), ``rate``,
        plus frame counts ``frames`` / ``frames_detected``; labels in canonical order."""
        acc: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
        for s in self.samples:
            det = s.detected
            a = acc[s.ref.label]
            a[0] += 1
            a[1] += int(det.any())
            a[2] += int(det.size)
            a[3] += int(det.sum())
        return {
            label: {"n": a[0], "detected": a[1], "rate": a[1] / a[0] if a[0] else 0.0, "frames": a[2], "frames_detected": a[3]}
            for label in EMOTIONS
            if (a := acc.get(label))
        }

    def to_report(self) -> dict[str, Any]:
        """A JSON-ready summary (counts, per-label detection, failed and skipped files)."""
        n = len(self.samples)
        detected = sum(bool(s.detected.any()) for s in self.samples)
        return {
            "data_dir": str(self.data_dir),
            "layout": self.layout,
            "n_samples": n,
            "n_detected": detected,
            "detection_rate": detected / n if n else 0.0,
            "n_cached": self.n_cached,
            "n_computed": self.n_computed,
            "n_failed": len(self.failed),
            "n_skipped": len(self.skipped),
            "elapsed_s": round(self.elapsed_s, 3),
            "model_sha256": self.model_sha256,
            "settings": self.settings,
            "per_label": self.per_label,
            "failed": [{"path": p, "reason": r} for p, r in self.failed],
            "skipped": [{"path": p, "reason": r} for p, r in self.skipped],
        }


# -- helpers ------------------------------------------------------------------------------
def _settings(options: LandmarkerOptions, max_video_frames: int | None) -> dict[str, Any]:
    """The options and library versions that change extracted landmarks (part of every cache key)."""
    import importlib.metadata

    import cv2

    return {
        "opencv": cv2.__version__,
        "mediapipe": importlib.metadata.version("mediapipe"),
        "pad_fraction": options.pad_fraction,
        "num_faces": options.num_faces,
        "min_detection_confidence": options.min_detection_confidence,
        "min_presence_confidence": options.min_presence_confidence,
        "min_tracking_confidence": options.min_tracking_confidence,
        "small_video_px": _worker.SMALL_VIDEO_PX,
        "max_video_frames": max_video_frames,
        **({"blendshapes": True} if options.blendshapes else {}),  # keys without them stay as they were
        **({"find_faces": True} if options.find_faces else {}),
    }


def _key_settings(settings: dict[str, Any], kind: str) -> dict[str, Any]:
    if kind == "video":
        return settings
    return {k: v for k, v in settings.items() if k not in ("max_video_frames", "small_video_px", "min_tracking_confidence")}


def _batches(refs: list[tuple[str, SampleRef]], workers: int) -> list[list[tuple[str, SampleRef]]]:
    """Work units: one per video (largest first), stills grouped so that each worker gets
    about 8 units, at most :data:`MAX_BATCH` per unit."""
    videos = [r for r in refs if r[1].kind == "video"]
    videos.sort(key=lambda r: _size(r[1].path), reverse=True)
    stills = [r for r in refs if r[1].kind != "video"]
    size = max(1, min(MAX_BATCH, math.ceil(len(stills) / max(1, workers * 8))))
    return [[v] for v in videos] + [stills[i : i + size] for i in range(0, len(stills), size)]


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _resolve_workers(workers: int | None) -> int:
    if workers is None:
        return os.cpu_count() or 1
    if workers < 0:
        raise DataError(f"workers must be >= 0 (0 runs in this process), got {workers}")
    return workers


class _Progress:
    """A rich progress bar on stderr, or nothing (no TTY / disabled)."""

    def __init__(self, enabled: bool) -> None:
        self._bar = None
        self._stack = ExitStack()
        if not enabled:
            return
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        console = Console(stderr=True)
        if not console.is_terminal:  # rich honours FORCE_COLOR / TTY_COMPATIBLE to force it
            return
        self._bar = Progress(
            TextColumn("[progress.description]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=console,
            transient=False,
        )
        self._stack.enter_context(self._bar)

    def task(self, description: str, total: int) -> Callable[[int], None]:
        """Add a bar; returns ``advance(n)``."""
        if self._bar is None:
            return lambda n: None
        tid = self._bar.add_task(description, total=total)
        return lambda n: self._bar.advance(tid, n)  # type: ignore[union-attr]

    def close(self) -> None:
        self._stack.close()


def _hash_all(refs: list[SampleRef], advance: Callable[[int], None]) -> list[str | Exception]:
    """Content hashes of all samples (threads: hashing is I/O bound and releases the GIL)."""

    def one(ref: SampleRef) -> str | Exception:
        try:
            return content_sha256(ref)
        except OSError as exc:
            return exc
        finally:
            advance(1)

    with ThreadPoolExecutor(max_workers=min(8, 2 * (os.cpu_count() or 1))) as pool:
        return list(pool.map(one, refs))


# -- the public entry point -----------------------------------------------------------------
def extract_dataset(
    data_dir_or_discovery: str | os.PathLike[str] | Discovery,
    cache_dir: str | os.PathLike[str],
    options: LandmarkerOptions | None = None,
    workers: int | None = None,
    progress: bool = True,
    max_video_frames: int | None = None,
    executor: Executor | None = None,
) -> ExtractionResult:
    """Extract the raw landmarks of every sample of a dataset, using and filling the cache.

    Args:
        data_dir_or_discovery: a dataset folder, or the :class:`Discovery` of one.
        cache_dir: folder of the cache (created if needed); one ``.npz`` per sample.
        options: landmarker options; default :func:`default_options` (25% padding for stills).
            ``pad_fraction`` applies to stills and to videos smaller than 200 px.
        workers: worker processes; default ``os.cpu_count()``; 0 runs in this process.
        progress: show a rich progress bar on stderr when it is a terminal.
        max_video_frames: read at most this many frames (the first ones) of each video.
        executor: where the landmarks are computed; default the one of an enclosing
            :func:`~realtime_fer.data.executors.use_executor` block, else a local pool of
            ``workers`` processes (``workers`` is not used with another executor).

    Raises:
        DataError: the folder is unusable (see :func:`discover`) or an argument is invalid.
        ModelFileError: the landmarker model is missing.
    """
    t0 = time.perf_counter()
    found = data_dir_or_discovery if isinstance(data_dir_or_discovery, Discovery) else discover(data_dir_or_discovery)
    options = options or default_options()
    workers = _resolve_workers(workers)
    executor = executor or current_executor() or LocalExecutor(workers)
    if max_video_frames is not None and max_video_frames < 1:
        raise DataError(f"max_video_frames must be >= 1, got {max_video_frames}")
    cache = Path(cache_dir)
    try:
        cache.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(f"cannot create cache folder {cache}: {exc.strerror or exc}") from None
    model_sha = sha256_of(find_model_file(options.model_path, verify=options.verify_model).resolve())
    settings = _settings(options, max_video_frames)
    result = ExtractionResult(found.data_dir, found.layout, skipped=list(found.skipped), settings=settings, model_sha256=model_sha)

    bar = _Progress(progress)
    try:
        by_ref = _extract_all(found.samples, cache, options, settings, model_sha, executor, max_video_frames, bar, result)
    finally:
        bar.close()
    result.samples = [by_ref[i] for i in range(len(found.samples)) if i in by_ref]
    result.failed.sort()
    result.elapsed_s = time.perf_counter() - t0
    log.info(
        "extracted %d samples (%d cached, %d computed, %d failed) in %.1fs",
        len(result.samples), result.n_cached, result.n_computed, len(result.failed), result.elapsed_s,
    )
    return result


def _extract_all(
    refs: list[SampleRef],
    cache: Path,
    options: LandmarkerOptions,
    settings: dict[str, Any],
    model_sha: str,
    executor: Executor,
    max_video_frames: int | None,
    bar: _Progress,
    result: ExtractionResult,
) -> dict[int, ExtractedSample]:
    """Fill ``result`` counters/failures; return the extracted samples by discovery index."""
    out: dict[int, ExtractedSample] = {}
    pending: dict[str, list[int]] = {}
    hashes = _hash_all(refs, bar.task("hashing", len(refs)))
    for i, (ref, h) in enumerate(zip(refs, hashes)):
        if isinstance(h, Exception):
            result.failed.append((str(ref.path), f"cannot read file: {getattr(h, 'strerror', None) or h}"))
            continue
        key = cache_key(h, ref.kind, model_sha, _key_settings(settings, ref.kind))
        if key in pending:
            pending[key].append(i)
            continue
        entry = load_entry(entry_path(cache, key))
        if entry is None:
            pending[key] = [i]
            continue
        result.n_cached += 1
        if entry.failure:
            result.failed.append((str(ref.path), entry.failure))
        else:
            out[i] = ExtractedSample(ref, entry.landmarks, entry.fps, entry.frame_size, from_cache=True, blendshapes=entry.blendshapes)
    if not pending:
        return out

    advance = bar.task("extracting", sum(len(v) for v in pending.values()))

    def on_result(key: str, ref: SampleRef, res: tuple[str, Any]) -> None:
        status, value = res
        indices = pending[key]
        result.n_computed += len(indices)
        if status == "ok":
            _store(cache, key, value, ref)
            for i in indices:
                out[i] = ExtractedSample(refs[i], value.landmarks, value.fps, value.frame_size, blendshapes=value.blendshapes)
        else:
            if status == "failed":  # a decode failure is a property of the bytes: remember it
                _store(cache, key, failure_entry(value), ref)
            result.failed.extend((str(refs[i].path), value) for i in indices)
        advance(len(indices))

    config = _worker.WorkerConfig(options=options, max_video_frames=max_video_frames, quiet_native=not log.isEnabledFor(logging.DEBUG))
    units = _batches([(key, refs[idx[0]]) for key, idx in pending.items()], executor.parallelism())
    executor.run(units, config, on_result)
    return out


def _store(cache: Path, key: str, value: CachedLandmarks, ref: SampleRef) -> None:
    try:
        save_entry(entry_path(cache, key), value)
    except OSError as exc:
        log.warning("cannot write cache entry for %s: %s", ref.path, exc)


def iter_detected(result: ExtractionResult) -> Iterable[ExtractedSample]:
    """The samples with a face in at least one frame."""
    return (s for s in result.samples if s.detected.any())


__all__ = [
    "DEFAULT_STILL_PAD_FRACTION",
    "ExtractedSample",
    "ExtractionResult",
    "default_options",
    "with_blendshapes",
    "extract_dataset",
    "iter_detected",
]
