"""Self-training on unlabelled video: windows of real people the recipe labels itself.

Every training window of the landmark models is a still photo, set in talking motion or held
still; the people the models then meet talk, turn and move their faces in video. Clips of real
people moving their faces without labels (``../shared/data/video/unlabelled``: 17 clips of 17
people, talking, grimacing, exaggerated and subtle expressions) show what such faces look like.
Self-training (``data.pseudo_labels``) uses them in two passes:

1. the recipe is fitted and calibrated as usual;
2. its networks score every window of the unlabelled clips as the live stream would (the same
   windows, smoothing and decision rule; withheld emotions never decided), and the windows
   whose decided emotion has a smoothed probability of at least ``min_probability`` join the
   training windows with that label (at most ``max_windows_per_clip`` per clip, evenly
   spaced, so a long clip does not outweigh the others); the recipe is fitted and calibrated
   again on the enlarged training set.

Calibration and validation never see the clips. The clips must not be among the talking-motion
sources, whose clips the calibration windows move with.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np

from realtime_fer.data.extract import extract_dataset
from realtime_fer.data.motion import motion_discovery
from realtime_fer.errors import DataError
from realtime_fer.models.bundle import decide
from realtime_fer.models.network import Network, pool
from realtime_fer.models.smoothing import SmoothingOptions

if TYPE_CHECKING:
    from realtime_fer.landmarks.detector import LandmarkerOptions

log = logging.getLogger(__name__)


@dataclass
class PseudoLabelOptions:
    """YAML ``data.pseudo_labels`` of the training config."""

    sources: list[str] = field(default_factory=list)
    """Folders of unlabelled clips of real faces; empty: no self-training."""
    min_probability: float = 0.7
    """A window joins training when its decided emotion's smoothed probability is at least this."""
    max_windows_per_clip: int = 60
    """At most this many windows per clip (evenly spaced among the confident ones)."""

    def __post_init__(self) -> None:
        if not 0.0 < self.min_probability <= 1.0:
            raise ValueError("pseudo_labels.min_probability must be in (0, 1]")
        if self.max_windows_per_clip < 1:
            raise ValueError("pseudo_labels.max_windows_per_clip must be >= 1")

    @property
    def enabled(self) -> bool:
        return bool(self.sources)


@dataclass
class UnlabelledWindows:
    """The pooled windows of a set of unlabelled clips, over the full mesh, in decision order."""

    features: np.ndarray
    """(W, len(pooling) * (3 * 468 + n_blendshapes)) float32."""
    clip: np.ndarray
    """(W,) index of each window's clip in ``names``."""
    times: np.ndarray
    """(W,) source time of each window's last frame, seconds."""
    runs: np.ndarray
    """(W,) run of consecutive detections within its clip."""
    names: list[str]


def unlabelled_windows(samples: Sequence, window, pooling: Sequence[str], blendshapes: bool) -> UnlabelledWindows:
    """The live stream's windows of every extracted clip in ``samples`` (clips with fewer than
    two detected frames give none), pooled like the training windows."""
    from realtime_fer.data.windows import clip_windows

    feats, clip, times, runs, names = [], [], [], [], []
    for s in samples:
        if int(np.sum(s.detected)) < 2:
            continue
        cw = clip_windows(s, window, blendshapes=blendshapes)
        if not len(cw.windows):
            continue
        feats.append(pool(cw.windows, tuple(pooling), np.float32, cw.blendshapes))
        clip.append(np.full(len(cw.windows), len(names), np.int64))
        times.append(cw.times)
        runs.append(cw.run)
        names.append(s.ref.path.name)
    if not feats:
        width = len(pooling) * (3 * 468 + (52 if blendshapes else 0))
        return UnlabelledWindows(np.zeros((0, width), np.float32), np.zeros(0, np.int64), np.zeros(0), np.zeros(0, np.int64), [])
    return UnlabelledWindows(np.concatenate(feats), np.concatenate(clip), np.concatenate(times), np.concatenate(runs), names)


def pseudo_label(
    nets: dict[str, Network],
    subsets: dict[str, Sequence[int]],
    thresholds: dict[str, float],
    data: UnlabelledWindows,
    columns,
    options: PseudoLabelOptions,
    *,
    withheld: Sequence[str] = (),
    smoothing: SmoothingOptions | None = None,
) -> tuple[np.ndarray, np.ndarray, dict[str, int]]:
    """The windows of ``data`` that join training and their labels.

    Args:
        nets, subsets, thresholds: the first pass's calibrated networks, their landmarks and
            decision thresholds.
        columns: ``PooledSet.columns`` of the full-mesh layout (landmarks -> feature columns).
        withheld: emotions never decided (their probabilities are still smoothed).

    Returns:
        ``(rows, emotions, counts)``: rows of ``data``, each row's decided emotion name, and
        the number of windows per emotion.
    """
    from realtime_fer.training.evaluate import smooth_clip

    if not len(data.features):
        return np.zeros(0, np.int64), np.zeros(0, "<U16"), {}
    smoothing = smoothing or SmoothingOptions()
    probs = {e: net.calibrate(net.score_pooled(data.features[:, columns(subsets[e])])) for e, net in nets.items()}
    rows, labels = [], []
    thr = {e: (float("inf") if e in withheld else t) for e, t in thresholds.items()}
    for c in range(len(data.names)):
        idx = np.flatnonzero(data.clip == c)
        sm = smooth_clip({e: p[idx] for e, p in probs.items()}, data.times[idx], data.runs[idx], smoothing)
        top = decide(sm, thr)
        # the decided emotion's own probability: the neutral fallback (no emotion at or above
        # its threshold) is not a decision of the neutral model and never passes
        conf = np.array([sm[t][i] if t in sm else 0.0 for i, t in enumerate(top)])
        passed = np.array([t in sm and conf[i] >= thr[t] for i, t in enumerate(top)], bool)
        keep = np.flatnonzero(passed & (conf >= options.min_probability))
        if len(keep) > options.max_windows_per_clip:
            keep = keep[np.linspace(0, len(keep) - 1, options.max_windows_per_clip).round().astype(int)]
        rows.append(idx[keep])
        labels.append(top[keep])
    r, lab = np.concatenate(rows), np.concatenate(labels)
    counts = {str(e): int(np.sum(lab == e)) for e in np.unique(lab)}
    log.info("pseudo-labels: %d of %d windows of %d clips (%s)", len(r), len(data.features), len(data.names),
             ", ".join(f"{e} {n}" for e, n in sorted(counts.items())) or "none")
    return r, lab, counts


def unlabelled_clips(
    opts: PseudoLabelOptions, window, pooling: Sequence[str], *, motion_sources: Sequence[str], cache_dir: str, workers: int | None,  # noqa: ANN001
    options: LandmarkerOptions, blendshapes: bool, progress: bool = False,
) -> UnlabelledWindows:
    """The pooled windows (``window``: the recipe's :class:`~realtime_fer.features.windows.WindowOptions`)
    of every clip below ``opts.sources`` (``data.pseudo_labels``), extracted with the landmarker
    ``options`` through ``cache_dir``; ``motion_sources``: the talking-motion folders, which the
    clips must not be among.

    Raises:
        DataError: a folder is missing, is also a talking-motion source, or holds no clip (or none with a face).
    """
    sources = [Path(p) for p in opts.sources]
    missing = [str(p) for p in sources if not p.is_dir()]
    if missing:
        raise DataError(f"data.pseudo_labels: no such folder: {', '.join(missing)}")
    motion = {Path(p).resolve() for p in motion_sources}
    shared = [str(p) for p in sources if p.resolve() in motion]
    if shared:
        raise DataError(f"data.pseudo_labels: {', '.join(shared)} is also a talking-motion source (its clips move the calibration windows)")
    try:
        discovery = motion_discovery(sources)
    except DataError:
        raise DataError(f"data.pseudo_labels: no video below {', '.join(map(str, sources))}") from None
    res = extract_dataset(discovery, cache_dir, options, workers=workers, progress=progress)
    for path, reason in res.failed:
        log.warning("unlabelled clip %s skipped: %s", path, reason)
    windows = unlabelled_windows(res.samples, window, pooling, blendshapes)
    if not windows.names:
        raise DataError(f"data.pseudo_labels: no clip with a face below {', '.join(map(str, sources))}")
    log.info("unlabelled clips: %d with a face, %d windows", len(windows.names), len(windows.features))
    return windows
