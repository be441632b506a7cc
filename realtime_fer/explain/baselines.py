"""Baselines for Integrated Gradients: what a face is compared with when we ask which landmarks
made the network call it, say, happy.

Every baseline is a **static face** (one normalised 468-point frame, held for the whole window:
the frame repeated T times), so it has the expression of the baseline and no movement (a delta
pooling sees zero). Three kinds:

``neutral``
    The same person's neutral face: the mean of the neutral frames of the sample's group
    (subject, actor or track) where the data has them (the original CK+ layout gives each
    subject's first, neutral frame; a video track can supply its own); else the mean neutral
    face of the data; else, for data without any neutral face (CK+48), the shipped mean neutral
    face of RAF-DB train (``assets/neutral_face.npy``, ``tools/build_neutral_face.py``). The
    attributions then explain "why this expression rather than this person at rest".
``others``
    **The paper's choice**: the typical faces of the *other* classes. For each other label in the
    data (including neutral when present), the typical face is the **medoid**-like sample
    nearest to the label's mean face (a real face, unlike the mean, which blurs expressions
    together). Emotion *e*'s attributions are averaged over the other labels' typical faces:
    "what distinguishes *e* from each other expression", and they sum to
    ``F(x) - mean_k F(typical_k)``.
``zero``
    The all-zero input (every landmark at the origin), for comparison: far from any face, so
    its attributions mostly measure the landmarks' distance from the origin.

A :class:`BaselineSet` holds K baseline faces and an (N, K) row-stochastic weight matrix saying
which baselines each of N explained samples is compared with (one-hot for ``neutral``, uniform
for ``others``); :func:`realtime_fer.explain.relevance.attribute_against` runs the engine on it.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass, field
from typing import Literal, Sequence

import numpy as np

from realtime_fer.assets import load_array
from realtime_fer.errors import DataError
from realtime_fer.landmarks.detector import NUM_BLENDSHAPES, NUM_MESH_LANDMARKS

log = logging.getLogger(__name__)

BaselineKind = Literal["neutral", "others", "zero"]
BASELINE_KINDS: tuple[str, ...] = ("neutral", "others", "zero")


@functools.lru_cache(maxsize=1)
def shipped_neutral_face() -> np.ndarray:
    """(468, 3) float32 mean normalised neutral face of RAF-DB train (fallback neutral baseline)."""
    return load_array("neutral_face.npy", (NUM_MESH_LANDMARKS, 3), np.float32)


def bundle_neutral_face(bundle) -> np.ndarray:  # noqa: ANN001 - a ModelBundle (no import cycle)
    """The shipped mean neutral face in ``bundle``'s geometry: moved by its domain offset, when
    its training moved RAF-DB's faces (``ModelBundle.domain_offset``)."""
    offset = bundle.domain_offset[0]
    face = shipped_neutral_face()
    return face if offset is None else (face + offset).astype(np.float32)


def shipped_neutral_blendshapes() -> np.ndarray:
    """(52,) float32 mean blendshape scores of RAF-DB train's neutral faces (the neutral baseline
    of models that read blendshapes; ``tools/build_neutral_face.py --blendshapes``)."""
    return load_array("neutral_blendshapes.npy", (NUM_BLENDSHAPES,), np.float32)


def bundle_neutral_blendshapes(bundle) -> np.ndarray:  # noqa: ANN001 - a ModelBundle (no import cycle)
    """The shipped neutral blendshape scores in ``bundle``'s geometry: moved by its blendshape
    domain offset, when its training moved RAF-DB's blendshapes (``ModelBundle.domain_offset``)."""
    offset = bundle.domain_offset[1]
    scores = shipped_neutral_blendshapes()
    return scores if offset is None else (scores + offset).astype(np.float32)


def check_kind(kind: str) -> str:
    """``kind`` if it is a baseline kind, else a :class:`DataError` naming the known ones."""
    if kind not in BASELINE_KINDS:
        raise DataError(f"unknown baseline {kind!r}; choose one of {', '.join(BASELINE_KINDS)}")
    return kind


@dataclass
class BaselineSet:
    """The baselines of one emotion's explanation of N samples."""

    kind: str
    faces: np.ndarray
    """(K, 468, 3) static baseline faces over the full mesh."""
    weights: np.ndarray
    """(N, K): sample n's attribution is ``sum_k weights[n, k] * IG(x_n; face_k)``; rows sum to 1."""
    descriptions: list[str] = field(default_factory=list)
    """What each face is (e.g. ``typical anger (ckplus48 S010_004_00000017.png)``)."""

    def windows(self, k: int, length: int, landmarks: Sequence[int] | None = None) -> np.ndarray:
        """Face ``k`` as a static window (T, L, 3) on ``landmarks`` (default all)."""
        face = self.faces[k] if landmarks is None else self.faces[k][np.asarray(landmarks, np.int64)]
        return np.repeat(face[None], length, axis=0).astype(np.float32)

    def summary(self) -> dict[str, object]:
        """JSON-ready description: kind, the faces used and how often."""
        use = self.weights.sum(axis=0)
        return {
            "kind": self.kind,
            "faces": [{"description": d, "weight": round(float(u / max(len(self.weights), 1)), 6)} for d, u in zip(self.descriptions, use)],
        }


@dataclass
class BaselineBank:
    """Baseline faces derived once from a labelled set of normalised faces."""

    neutral_by_group: dict[str, np.ndarray]
    """group -> mean neutral face of that subject/actor/track."""
    neutral_mean: np.ndarray
    """Mean neutral face of the data, or the shipped one when the data has none."""
    neutral_source: str
    typical: dict[str, np.ndarray]
    """label -> the sample face nearest to the label's mean face."""
    typical_source: dict[str, str]

    @classmethod
    def from_faces(
        cls,
        faces: np.ndarray,
        labels: Sequence[str],
        groups: Sequence[str] | None = None,
        names: Sequence[str] | None = None,
    ) -> "BaselineBank":
        """Build the bank from N normalised faces.

        Args:
            faces: (N, 468, 3) normalised faces (a window's mean frame).
            labels: (N,) their labels.
            groups: (N,) subject/actor/track ids (per-group neutral faces); None: no groups.
            names: (N,) a readable id of each face (file name), for the report.
        """
        f = np.asarray(faces, np.float32)
        lab = np.asarray(labels).astype(str)
        if f.ndim != 3 or f.shape[1:] != (NUM_MESH_LANDMARKS, 3) or len(f) != len(lab):
            raise ValueError(f"faces must be (N, {NUM_MESH_LANDMARKS}, 3) with one label each, got {f.shape} and {len(lab)} labels")
        grp = np.asarray(groups).astype(str) if groups is not None else None
        neutral = lab == "neutral"
        by_group: dict[str, np.ndarray] = {}
        if grp is not None and neutral.any():
            for g in np.unique(grp[neutral]):
                by_group[str(g)] = f[neutral & (grp == g)].mean(axis=0)
        if neutral.any():
            mean, source = f[neutral].mean(axis=0), f"mean of the data's {int(neutral.sum())} neutral faces"
        else:
            mean, source = shipped_neutral_face(), "shipped mean neutral face of RAF-DB train (the data has no neutral face)"
        typical, typical_source = {}, {}
        for label in np.unique(lab):
            rows = np.nonzero(lab == label)[0]
            centre = f[rows].mean(axis=0)
            best = rows[int(np.argmin(((f[rows] - centre) ** 2).sum(axis=(1, 2))))]
            typical[str(label)] = f[best]
            typical_source[str(label)] = f"typical {label}: " + (str(names[best]) if names is not None else f"face {int(best)}") + f" (nearest to the mean of {len(rows)})"
        return cls(by_group, mean.astype(np.float32), source, typical, typical_source)

    def baselines(self, kind: str, emotion: str, groups: Sequence[str] | None, n: int | None = None) -> BaselineSet:
        """The :class:`BaselineSet` for explaining ``n`` samples of ``emotion`` whose groups are
        ``groups`` (or ``n`` samples of unknown groups).

        Raises:
            DataError: unknown kind, or ``others`` without any other label in the data.
        """
        check_kind(kind)
        count = len(groups) if groups is not None else int(n or 0)
        if kind == "zero":
            return BaselineSet("zero", np.zeros((1, NUM_MESH_LANDMARKS, 3), np.float32), np.ones((count, 1)), ["all-zero input"])
        if kind == "others":
            labels = [l for l in self.typical if l != emotion]
            if not labels:
                raise DataError(f"the 'others' baseline for {emotion!r} needs faces of other labels; the data has only {', '.join(self.typical) or 'none'}")
            faces = np.stack([self.typical[l] for l in labels])
            return BaselineSet("others", faces, np.full((count, len(labels)), 1.0 / len(labels)), [self.typical_source[l] for l in labels])
        # neutral: the sample's own group where known, else the data's (or the shipped) mean
        keys = sorted(self.neutral_by_group)
        faces = [self.neutral_mean] + [self.neutral_by_group[g] for g in keys]
        descriptions = [self.neutral_source] + [f"mean neutral face of {g}" for g in keys]
        column = {g: k + 1 for k, g in enumerate(keys)}
        weights = np.zeros((count, len(faces)))
        for i in range(count):
            weights[i, column.get(str(groups[i]), 0) if groups is not None else 0] = 1.0
        used = weights.sum(axis=0) > 0
        used[0] = used[0] or not used.any()
        return BaselineSet("neutral", np.stack(faces)[used], weights[:, used], [d for d, u in zip(descriptions, used) if u])
