"""The photo sources' face geometry moved to the video's: one constant offset per landmark.

MediaPipe's mesh of a tight 100x100 RAF-DB crop is not the mesh of the same kind of face in a
video frame. Measured in image pixels over the outer eye corners' distance (median;
``runs/report12/face_spans.py`` in session 12's notes): eyes to mouth 0.59 on RAF-DB neutral
photos against 0.72-0.90 on four video sources, mouth to chin 0.36 against 0.51-0.64, the face's
width 1.46 against 1.54-1.63; CK+ and FER2013 crops sit near the video. After normalisation the
video faces of every labelled clip are 1.6-2.6 RMS z-scores from RAF-DB's mean neutral face,
where a RAF-DB neutral photo is 0.8; **one constant offset per landmark**, the difference
between the resting faces of the talking clips (other people) and RAF-DB's neutral photos,
brings MEAD's neutral clip to 0.58 and wild's sad clip to 0.52. A model trained on the photos
as they are reads that systematic difference as an expression on every new face in video.

``data.domain_offset`` adds, per photo source with neutral training photos, ``target - source``
to the pooled ``mean`` shape of every window of that source (training, calibration and
validation alike, so photo metrics stay self-consistent): ``target`` is the median resting
face of the talking clips (per clip, the frames whose inner lips are at or below their
``rest_quantile`` gap), ``source`` the median face of the source's neutral training photos.
The live path is unchanged: video is the domain the models are moved to.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

import numpy as np

from realtime_fer.data.extract import extract_dataset
from realtime_fer.data.motion import motion_discovery
from realtime_fer.data.windows import normalized_frames
from realtime_fer.errors import DataError
from realtime_fer.landmarks.detector import BLENDSHAPE_NAMES, NUM_MESH_LANDMARKS
from realtime_fer.models.network import blendshape_part, landmark_part

if TYPE_CHECKING:
    from realtime_fer.landmarks.detector import LandmarkerOptions

log = logging.getLogger(__name__)

#: Inner lip landmarks (upper, lower) whose gap tells a resting mouth from a talking one.
INNER_LIPS = (13, 14)


@dataclass
class DomainOffsetOptions:
    """YAML ``data.domain_offset`` of the training config."""

    enabled: bool = False
    target: list[str] | None = None
    """Folders of clips of people talking or at rest; default ``data.motion.sources``."""
    rest_quantile: float = 0.25
    """Per clip, the frames whose inner-lip gap is at or below this quantile are its resting face."""
    label: str = "neutral"
    """The photos a source's face is measured on."""
    blendshapes: bool = False
    """Move the pooled mean blendshape scores likewise (target: the median over clips of each
    clip's median resting scores, so that one person's squint does not set it)."""

    def __post_init__(self) -> None:
        if not 0.0 < self.rest_quantile <= 1.0:
            raise ValueError("domain_offset.rest_quantile must be in (0, 1]")


def resting_rows(faces: np.ndarray, rest_quantile: float = 0.25) -> np.ndarray:
    """(F,) bool: the frames of one clip's normalised faces (F, 468, 3) whose inner-lip gap is
    at or below the clip's ``rest_quantile`` (its mouth at rest)."""
    gap = np.linalg.norm(faces[:, INNER_LIPS[0]] - faces[:, INNER_LIPS[1]], axis=1)
    return gap <= np.quantile(gap, rest_quantile)


def _clip_rest(clips: Sequence, rest_quantile: float) -> list[tuple[np.ndarray, np.ndarray, np.ndarray, object]]:
    """Per extracted clip with at least two detected faces: ``(detected (F,), resting rows of
    the detected frames, their normalised faces, the clip)``."""
    out = []
    for s in clips:
        frames, det = normalized_frames(s)
        f = frames[det]
        if len(f) >= 2:
            out.append((det, resting_rows(f, rest_quantile), f, s))
    return out


def resting_face(clips: Sequence, rest_quantile: float = 0.25) -> np.ndarray:
    """(468, 3) median normalised face over the resting frames of extracted ``clips``
    (:func:`resting_rows`).

    Raises:
        ValueError: no clip has a detected face.
    """
    rest = [f[rows] for _, rows, f, _ in _clip_rest(clips, rest_quantile)]
    if not rest:
        raise ValueError("no clip with a detected face for the resting face")
    return np.median(np.concatenate(rest), axis=0).astype(np.float64)


def resting_blendshapes(clips: Sequence, rest_quantile: float = 0.25) -> np.ndarray:
    """(52,) median over clips of each clip's median blendshape scores on its resting frames
    (as :func:`resting_face`).

    Raises:
        ValueError: no clip has a detected face with blendshapes.
    """
    per_clip = [np.median(np.asarray(s.blendshapes, np.float64)[det][rows], axis=0)
                for det, rows, _, s in _clip_rest([c for c in clips if c.blendshapes is not None], rest_quantile)]
    if not per_clip:
        raise ValueError("no clip with a detected face and blendshapes for the resting scores")
    return np.median(np.array(per_clip), axis=0)


def _neutral_training(sources: Sequence[str], labels: Sequence[str], train: np.ndarray, label: str):  # noqa: ANN202
    """(source name, indices of its ``label`` training samples), per source."""
    src, lab = np.asarray(sources), np.asarray(labels)
    for name in np.unique(src):
        yield str(name), np.flatnonzero((src == name) & (lab == label) & np.asarray(train, bool))


def source_blendshape_offsets(samples: Sequence, sources: Sequence[str], labels: Sequence[str], train: np.ndarray, target: np.ndarray, label: str = "neutral") -> dict[str, np.ndarray]:
    """Per source with ``label`` training photos, ``target`` minus their median blendshape
    scores (52,)."""
    out: dict[str, np.ndarray] = {}
    for name, idx in _neutral_training(sources, labels, train, label):
        rows = [np.asarray(samples[i].blendshapes, np.float64)[samples[i].detected] for i in idx if samples[i].blendshapes is not None]
        rows = [r for r in rows if len(r)]
        if rows:
            out[name] = target - np.median(np.concatenate(rows), axis=0)
    return out


def source_offsets(samples: Sequence, sources: Sequence[str], labels: Sequence[str], train: np.ndarray, target: np.ndarray, label: str = "neutral") -> dict[str, np.ndarray]:
    """Per source with ``label`` training photos, ``target`` minus the median normalised face of
    those photos (468, 3). ``sources``, ``labels``: per sample; ``train``: per sample, whether it
    is a training sample."""
    out: dict[str, np.ndarray] = {}
    for name, idx in _neutral_training(sources, labels, train, label):
        faces = [normalized_frames(samples[i])[0][samples[i].detected] for i in idx]
        faces = [f for f in faces if len(f)]
        if not faces:
            log.info("domain offset: source %s has no %s training photos; not moved", name, label)
            continue
        out[name] = target - np.median(np.concatenate(faces), axis=0)
    return out


def apply_offsets(features: np.ndarray, pooling: Sequence[str], row_source: np.ndarray, offsets: dict[str, np.ndarray], *, n_blendshapes: int = 0, blendshapes: bool = False) -> None:
    """Add each row's source offset to the pooled ``mean`` part of ``features`` (N, D), in place
    (the ``std`` part of a constant shift is unchanged): the landmarks' (offsets of (468, 3)),
    or with ``blendshapes`` the blendshape scores' (offsets of (52,); ``n_blendshapes`` per
    pooled part after the landmarks)."""
    if "mean" not in pooling or not offsets:
        return
    k = list(pooling).index("mean")
    cols = blendshape_part(NUM_MESH_LANDMARKS, len(pooling), n_blendshapes, k) if blendshapes else landmark_part(NUM_MESH_LANDMARKS, k)
    for name, off in offsets.items():
        rows = np.flatnonzero(row_source == name)
        if len(rows):
            features[rows, cols] += off.reshape(-1).astype(features.dtype)


def domain_offsets(
    opts: DomainOffsetOptions, samples: Sequence, groups: Sequence[str], labels: Sequence[str], train: np.ndarray, *,
    motion_sources: Sequence[str], cache_dir: str, workers: int | None, options: LandmarkerOptions, blendshapes: bool, progress: bool = False,
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """``data.domain_offset`` (``opts``): per photo source (the part of each sample's group
    before ``:``), the offsets that move its neutral training photos' median face (and, with
    ``opts.blendshapes`` and models that read ``blendshapes``, their median blendshape scores) to
    the clips' resting ones (empty when off). ``train``: per sample, whether it is a training
    sample; the clips (``opts.target``, else ``motion_sources``) are extracted with the landmarker
    ``options`` through ``cache_dir``.

    Raises:
        DataError: no clips to measure the resting face on.
    """
    if not opts.enabled:
        return {}, {}
    target_dirs = opts.target if opts.target is not None else list(motion_sources)
    if not target_dirs:
        raise DataError("data.domain_offset needs clips of people talking: set its target or data.motion.sources")
    res = extract_dataset(motion_discovery(target_dirs), cache_dir, options, workers=workers, progress=progress)
    try:
        target = resting_face(res.samples, opts.rest_quantile)
    except ValueError as exc:
        raise DataError(f"data.domain_offset: {exc} below {', '.join(map(str, target_dirs))}") from None
    sources = np.array([g.split(":", 1)[0] for g in groups])
    offsets = source_offsets(samples, sources, labels, train, target, opts.label)
    for name, off in offsets.items():
        log.info("domain offset: source %s moved by %.4f RMS (normalised units) to the talking clips' resting face", name, float(np.sqrt(np.mean(off ** 2))))
    blend: dict[str, np.ndarray] = {}
    if opts.blendshapes and blendshapes:
        try:
            scores = resting_blendshapes(res.samples, opts.rest_quantile)
        except ValueError as exc:
            raise DataError(f"data.domain_offset: {exc} below {', '.join(map(str, target_dirs))}") from None
        blend = source_blendshape_offsets(samples, sources, labels, train, scores, opts.label)
        for name, off in blend.items():
            log.info("domain offset: source %s blendshapes moved by up to %.3f (%s)", name, float(np.abs(off).max()), BLENDSHAPE_NAMES[int(np.abs(off).argmax())])
    return offsets, blend
