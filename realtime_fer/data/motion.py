"""Real talking and head motion, for turning still training faces into moving windows.

A model trained on photos has never seen a face talk: a window made by repeating a photo is
perfectly still, so an opening and closing mouth in a live stream looks like a new expression
(surprise, most often). A :class:`MotionBank` holds the *frame-to-frame motion* of real people
talking: the normalised landmarks of each clip (see :mod:`realtime_fer.landmarks.normalize`)
minus that clip's own mean face, so the bank keeps speech, blinks, nods and the landmarker's
jitter, and none of the speaker's identity or average expression. :meth:`MotionBank.sample`
draws segments of it, and :func:`moving_windows` adds them to still faces: each still becomes a
window of a face with that expression, talking, with its label kept.

Clips are read through the landmark cache (:func:`realtime_fer.data.extract.extract_dataset`),
so their file names need no label: any video below the given folders is used.

Windows in seconds: a bank built with a ``rate`` (the window's samples per second,
:attr:`WindowOptions.rate_hz <realtime_fer.features.windows.WindowOptions.rate_hz>`, given when
the training config sets ``window.seconds``) resamples each run of its clips onto that rate by
linear interpolation of the clip's timestamped frames (``i / fps``), so a segment of T samples
spans the window's seconds whatever the clip's frame rate (the talking clips are 30 fps).
Without a rate the clips are read frame by frame (the shipped model's recipe).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np

from realtime_fer.data.layouts import Discovery, SampleRef, media_kind
from realtime_fer.errors import DataError
from realtime_fer.landmarks.normalize import mirror_index, normalize_landmarks

if TYPE_CHECKING:
    from realtime_fer.landmarks.detector import LandmarkerOptions

log = logging.getLogger(__name__)


@dataclass
class MotionOptions:
    """Speech and head-motion augmentation of still training faces (YAML ``data.motion``)."""

    sources: list[str] = field(default_factory=list)
    """Folders (or files) of real videos of people talking; labels are not needed. Empty: no
    augmentation (stills get the Gaussian ``window.still_jitter`` instead)."""
    probability: float = 1.0
    """Share of still training windows that get real motion (the others get jitter)."""
    scale: tuple[float, float] = (0.5, 1.5)
    """Each segment's motion is multiplied by a factor drawn uniformly from this range."""
    mirror: bool = True
    """Also use every clip's mirror image (left and right swapped)."""
    copies: int = 1
    """Moving windows made from each still (each with its own motion segment): more copies
    sample the motion more evenly, at the cost of a larger training set."""
    calibrate_with_motion: bool = True
    """Calibration windows get motion from clips held out of training (so that thresholds are
    tuned for talking faces); validation stays still (comparable with today's figures)."""
    calibrate_with_stills: bool = False
    """With ``calibrate_with_motion``, the calibration images' still windows are kept beside
    their moving ones, so that Platt scaling and thresholds fit a face that holds an expression
    (a photo, a kiosk user who poses) as well as a talking one."""
    calibration_share: float = 0.25
    """Share of the clips kept for calibration windows (when ``calibrate_with_motion``)."""

    def __post_init__(self) -> None:
        self.scale = tuple(float(v) for v in self.scale)  # type: ignore[assignment]
        if not 0.0 <= self.probability <= 1.0:
            raise ValueError("motion.probability must be in [0, 1]")
        if len(self.scale) != 2 or not 0.0 <= self.scale[0] <= self.scale[1]:
            raise ValueError("motion.scale must be [low, high] with 0 <= low <= high")
        if self.copies < 1:
            raise ValueError("motion.copies must be >= 1")
        if not 0.0 < self.calibration_share < 1.0:
            raise ValueError("motion.calibration_share must be in (0, 1)")


def _video_files(paths: Sequence[str | os.PathLike[str]]) -> list[Path]:
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_file():
            candidates = [p]
        elif p.is_dir():
            candidates = sorted(f for f in p.rglob("*") if f.is_file() and not any(part.startswith(".") for part in f.relative_to(p).parts))
        else:
            raise DataError(f"motion source not found: {p}")
        files += [f for f in candidates if media_kind(f) == "video"]
    return sorted(set(files))


def motion_discovery(paths: Sequence[str | os.PathLike[str]]) -> Discovery:
    """Every video below ``paths`` as an (unlabelled) sample, for the landmark cache.

    Raises:
        DataError: a path does not exist or holds no video.
    """
    files = _video_files(paths)
    if not files:
        raise DataError(f"no video found in the motion sources {', '.join(map(str, paths))}")
    # the label is a placeholder: motion is label-free (extraction needs one)
    samples = [SampleRef(f, "neutral", f"motion:{f.stem}", "video", (), "motion") for f in files]
    return Discovery(Path(os.path.commonpath([str(f.parent) for f in files])), "motion", samples)


class MotionBank:
    """Frame-to-frame motion of real clips, relative to each clip's mean face.

    Args:
        clips: per clip, (F, 468, 3) normalised landmarks with NaN rows where no face was found.
        names: one name per clip (reports).
        min_run: shortest run of consecutive detected frames that is kept (counted after
            resampling).
        fps: per clip, its frame rate (``None``: unknown); used with ``rate``.
        rate: resample every run of a clip with a known frame rate onto this many samples a
            second (``None``: frames as they are).

    A clip's frames are cut into runs of consecutive detections (a lost face may come back as
    somebody else); each run's motion is its frames minus the run's mean face.
    """

    def __init__(
        self,
        clips: Sequence[np.ndarray],
        names: Sequence[str] | None = None,
        min_run: int = 2,
        blendshapes: Sequence[np.ndarray] | None = None,
        *,
        fps: Sequence[float | None] | None = None,
        rate: float | None = None,
    ) -> None:
        if rate is not None and not (np.isfinite(rate) and rate > 0):
            raise ValueError(f"motion rate must be > 0 samples a second, got {rate!r}")
        self.rate = rate
        """Samples per second of the bank's runs (``None``: the clips' own frames)."""
        runs: list[np.ndarray] = []
        blend_runs: list[np.ndarray] = []
        self.names = list(names) if names is not None else [f"clip{i}" for i in range(len(clips))]
        self.run_clip: list[int] = []
        for ci, clip in enumerate(clips):
            c = np.asarray(clip, np.float32)
            ok = np.isfinite(c).all(axis=(1, 2))
            b = None if blendshapes is None else np.asarray(blendshapes[ci], np.float32)
            if b is not None:
                ok &= np.isfinite(b).all(axis=1)
            edges = np.flatnonzero(np.diff(np.concatenate([[0], ok.astype(np.int8), [0]])))
            clip_fps = fps[ci] if fps is not None else None
            for s, e in zip(edges[::2], edges[1::2]):
                seg = c[s:e]
                bseg = None if b is None else b[s:e]
                if rate is not None and clip_fps:
                    seg = resample_run(seg, clip_fps, rate)
                    bseg = None if bseg is None else resample_run(bseg, clip_fps, rate)
                if len(seg) >= min_run:
                    runs.append((seg - seg.mean(axis=0, keepdims=True)).astype(np.float32))
                    if bseg is not None:
                        blend_runs.append((bseg - bseg.mean(axis=0, keepdims=True)).astype(np.float32))
                    self.run_clip.append(ci)
        if not runs:
            raise DataError("no motion: no clip has a face in two consecutive frames")
        self.frames = np.concatenate(runs)
        """(total frames, 468, 3) motion of all runs, back to back."""
        self.blendshapes = np.concatenate(blend_runs) if blendshapes is not None else None
        """(total frames, 52) blendshape scores minus each run's mean, aligned with ``frames``
        (when the bank was built with blendshapes)."""
        self.run_start = np.cumsum([0] + [len(r) for r in runs[:-1]]).astype(np.int64)
        self.run_length = np.array([len(r) for r in runs], np.int64)

    @classmethod
    def from_videos(
        cls,
        paths: Sequence[str | os.PathLike[str]],
        cache_dir: str | os.PathLike[str],
        options: LandmarkerOptions | None = None,
        *,
        workers: int | None = None,
        progress: bool = False,
        rate: float | None = None,
    ) -> MotionBank:
        """Extract (or read from the cache) every video below ``paths`` and build the bank
        (``rate``: resample the clips onto that many samples a second, see the class)."""
        from realtime_fer.data.extract import extract_dataset

        res = extract_dataset(motion_discovery(paths), cache_dir, options, workers=workers, progress=progress)
        for path, reason in res.failed:
            log.warning("motion clip %s skipped: %s", path, reason)
        clips = [s for s in res.samples if s.detected.sum() >= 2]
        with_blend = bool(options is not None and options.blendshapes)
        if not clips:
            raise DataError(f"no face found in any motion clip of {', '.join(map(str, paths))}")
        normed = []
        for s in clips:
            frames = np.full((s.n_frames, 468, 3), np.nan, np.float32)
            frames[s.detected] = normalize_landmarks(s.landmarks[s.detected])
            normed.append(frames)
        if rate is not None:
            for s in clips:
                if not s.fps:
                    log.warning("motion clip %s reports no frame rate: its frames are used as samples", s.ref.path.name)
        bank = cls(normed, [s.ref.path.name for s in clips], blendshapes=[s.blendshapes for s in clips] if with_blend else None, fps=[s.fps for s in clips], rate=rate)
        log.info("motion bank: %d clips, %d runs, %d %s", len(clips), len(bank.run_length), len(bank.frames), "frames" if rate is None else f"samples at {rate:g} Hz")
        return bank

    @property
    def n_clips(self) -> int:
        return len(self.names)

    def split(self, share: float, seed: int = 0) -> tuple[MotionBank, MotionBank]:
        """Two banks with disjoint clips: ``(1 - share)`` of the clips and the rest (at least one
        clip each when there are two or more)."""
        rng = np.random.default_rng(seed)
        order = rng.permutation(self.n_clips)
        k = min(max(1, int(round(share * self.n_clips))), max(1, self.n_clips - 1))
        held = set(order[:k].tolist()) if self.n_clips > 1 else set()
        return self._subset([c for c in range(self.n_clips) if c not in held]), self._subset(sorted(held) or [0])

    def _subset(self, clips: Sequence[int]) -> MotionBank:
        keep = set(int(c) for c in clips)
        out = object.__new__(MotionBank)
        out.rate = self.rate
        runs = [i for i, c in enumerate(self.run_clip) if c in keep]
        remap = {c: j for j, c in enumerate(sorted(keep))}
        out.names = [self.names[c] for c in sorted(keep)]
        out.run_clip = [remap[self.run_clip[i]] for i in runs]
        out.frames = np.concatenate([self.frames[self.run_start[i] : self.run_start[i] + self.run_length[i]] for i in runs])
        out.blendshapes = None if self.blendshapes is None else np.concatenate([self.blendshapes[self.run_start[i] : self.run_start[i] + self.run_length[i]] for i in runs])
        out.run_length = self.run_length[runs].copy()
        out.run_start = np.cumsum(np.concatenate([[0], out.run_length[:-1]])).astype(np.int64)
        return out

    def sample(self, n: int, length: int, rng: np.random.Generator, *, scale: tuple[float, float] = (1.0, 1.0), mirror: bool = False) -> np.ndarray:
        """``n`` motion segments (n, length, 468, 3) of ``length`` consecutive frames each, from
        runs chosen in proportion to the windows they hold (runs shorter than ``length`` are
        not used; when none is long enough, segments wrap around within a run)."""
        return self.sample_with_blendshapes(n, length, rng, scale=scale, mirror=mirror)[0]

    def sample_with_blendshapes(self, n: int, length: int, rng: np.random.Generator, *, scale: tuple[float, float] = (1.0, 1.0), mirror: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
        """:meth:`sample`, and the same segments' blendshape motion (n, length, 52) when the
        bank has blendshapes (scaled alike; mirroring swaps the Left/Right categories)."""
        windows = np.maximum(self.run_length - length + 1, 0)
        wrap = windows.sum() == 0
        weights = (self.run_length if wrap else windows).astype(np.float64)
        run = rng.choice(len(self.run_length), size=n, p=weights / weights.sum())
        if wrap:
            offset = rng.integers(0, self.run_length[run])[:, None] + np.arange(length)[None, :]
            idx = self.run_start[run][:, None] + offset % self.run_length[run][:, None]
        else:
            first = rng.integers(0, windows[run])
            idx = (self.run_start[run] + first)[:, None] + np.arange(length)[None, :]
        seg = self.frames[idx]
        factor = rng.uniform(scale[0], scale[1], size=n).astype(np.float32)
        seg = seg * factor[:, None, None, None]
        blend = None if self.blendshapes is None else self.blendshapes[idx] * factor[:, None, None]
        if mirror:
            flip = rng.random(n) < 0.5
            if flip.any():
                m = seg[flip][:, :, mirror_index(), :]
                m[..., 0] = -m[..., 0]
                seg[flip] = m
                if blend is not None:
                    blend[flip] = blend[flip][:, :, blendshape_mirror()]
        return seg.astype(np.float32, copy=False), (None if blend is None else blend.astype(np.float32, copy=False))


def resample_run(frames: np.ndarray, fps: float, rate: float) -> np.ndarray:
    """A run of consecutive frames (n, ...) at ``fps``, resampled onto ``rate`` samples a second
    from its first frame: samples at ``k / rate`` for ``k / rate <= (n - 1) / fps``, each
    linearly interpolated between the two frames around it (the window rule of
    :func:`~realtime_fer.features.windows.interpolation_plan`)."""
    from realtime_fer.features.windows import TIME_TOLERANCE_S, resample

    n = len(frames)
    times = np.arange(n, dtype=np.float64) / fps
    grid = np.arange(int(np.floor(times[-1] * rate + 1e-6)) + 1, dtype=np.float64) / rate
    older = np.clip(np.searchsorted(times, grid + TIME_TOLERANCE_S, side="right") - 1, 0, n - 1)
    exact = np.abs(times[older] - grid) <= TIME_TOLERANCE_S
    newer = np.where(exact, older, np.minimum(older + 1, n - 1))
    gap = times[newer] - times[older]
    weight = np.where(exact | (gap <= 0), 0.0, (grid - times[older]) / np.where(gap > 0, gap, 1.0))
    return resample(frames, older[:, None], newer[:, None], weight[:, None])[:, 0]


def blendshape_mirror() -> np.ndarray:
    """(52,) index of each blendshape's mirror-image category (``...Left`` <-> ``...Right``)."""
    from realtime_fer.landmarks.detector import BLENDSHAPE_NAMES

    pos = {n: i for i, n in enumerate(BLENDSHAPE_NAMES)}
    swap = lambda n: n.replace("Left", "\0").replace("Right", "Left").replace("\0", "Right")  # noqa: E731
    return np.array([pos.get(swap(n), i) for i, n in enumerate(BLENDSHAPE_NAMES)], np.int64)


def moving_windows(
    faces: np.ndarray,
    bank: MotionBank,
    length: int,
    rng: np.random.Generator,
    options: MotionOptions,
    jitter: float = 0.0,
    blendshapes: np.ndarray | None = None,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Windows (N * copies, length, 468, 3) of still faces (N, 468, 3) set in motion (the
    ``options.copies`` windows of a face are consecutive): a share ``options.probability`` of
    them get a real motion segment added, the others Gaussian ``jitter``. Labels are unchanged:
    the motion carries no expression of its own on average (it is relative to each clip's mean
    face).

    With ``blendshapes`` (N, 52), the stills' blendshape scores, returns ``(windows,
    blendshape_windows)``: the scores get the same segments' blendshape motion (clipped to
    [0, 1]; the bank must hold blendshapes)."""
    f = np.repeat(np.asarray(faces, np.float32), options.copies, axis=0)
    win = np.repeat(f[:, None], length, axis=1)
    bwin = None
    if blendshapes is not None:
        if bank.blendshapes is None:
            raise ValueError("the motion bank holds no blendshapes (build it with LandmarkerOptions(blendshapes=True))")
        bwin = np.repeat(np.repeat(np.asarray(blendshapes, np.float32), options.copies, axis=0)[:, None], length, axis=1)
    moving = rng.random(len(f)) < options.probability
    if moving.any():
        seg, bseg = bank.sample_with_blendshapes(int(moving.sum()), length, rng, scale=options.scale, mirror=options.mirror)
        win[moving] += seg
        if bwin is not None:
            bwin[moving] = np.clip(bwin[moving] + bseg, 0.0, 1.0)
    still = ~moving
    if jitter > 0 and still.any():
        win[still] += rng.normal(0.0, jitter, size=win[still].shape).astype(np.float32)
    return win if bwin is None else (win, bwin)
