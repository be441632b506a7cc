"""Speech-subspace projection: the models ignore the directions in which talking moves a face.

A talking face's window has its mouth open on average, so its pooled ``mean`` shape leans along
the directions in which speech (and the residual head motion) moves the face, and a model
trained on photos reads that lean as an expression: an open mouth is surprise, a dropped jaw is
sadness. :class:`SpeechSubspace` learns those directions from real talking clips (the principal
components of every frame around its own clip's mean face: the :class:`MotionBank` of the
training config's ``data.motion``) and gives, for any landmark subset, an orthonormal basis
``B`` of them in the coordinates of a network's pooled ``mean`` part (and, optionally, of its
blendshape ``mean`` part). Training projects them off (``x - x B B^T``) before fitting, as a
*nuisance attribute projection*.

The projection is linear, so :func:`fold_projection` folds it into the fitted network's first
hidden layer and direct link: the exported model reads the raw window like any other, costs
nothing more per frame, and every explanation, ONNX export and import path stays as it is.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from typing import Sequence

import numpy as np

from realtime_fer.labels import canonical_label
from realtime_fer.landmarks.detector import NUM_MESH_LANDMARKS
from realtime_fer.landmarks.normalize import mirror_index
from realtime_fer.models.half import round_to_half
from realtime_fer.models.network import Network, blendshape_part

log = logging.getLogger(__name__)


@dataclass
class SpeechSubspaceOptions:
    """YAML ``model.speech_subspace`` of the training config."""

    rank: int = 0
    """Landmark directions removed from the pooled ``mean`` shape (0: none); they are the
    leading principal components of the talking clips' motion, restricted to each model's
    landmarks."""
    ranks: dict[str, int] = field(default_factory=dict)
    """Per-emotion ``rank`` (emotion -> directions removed from that emotion's model); the
    others use ``rank``. An expression that shares a motion with speech (surprise opens the
    mouth) can keep more of it."""
    blendshape_rank: int = 0
    """Blendshape directions removed from the pooled ``mean`` of the blendshape scores."""
    sources: list[str] | None = None
    """Folders of clips of people talking; default: ``data.motion.sources``."""

    def __post_init__(self) -> None:
        if self.rank < 0 or self.blendshape_rank < 0 or any(int(v) < 0 for v in self.ranks.values()):
            raise ValueError("speech_subspace.rank, ranks and blendshape_rank must be >= 0")
        self.ranks = {canonical_label(k): int(v) for k, v in self.ranks.items()}

    def rank_of(self, emotion: str | None) -> int:
        """The landmark rank of ``emotion``'s model (``ranks``, else ``rank``)."""
        return self.ranks.get(emotion, self.rank) if emotion is not None else self.rank

    @property
    def enabled(self) -> bool:
        return self.rank > 0 or self.blendshape_rank > 0 or any(v > 0 for v in self.ranks.values())


class SpeechSubspace:
    """Second moments of real talking motion, and the bases of their leading directions.

    Args:
        frames: (F, 468, 3) motion of normalised faces around each clip's mean face (a
            :attr:`MotionBank.frames`); their mirror images are added, so that the directions
            are left/right symmetric.
        blendshapes: (F, 52) blendshape motion of the same frames, or None.
        options: how many directions to remove.
    """

    def __init__(self, frames: np.ndarray, blendshapes: np.ndarray | None, options: SpeechSubspaceOptions, blendshape_mirror: np.ndarray | None = None) -> None:
        f = np.asarray(frames, np.float64)
        if f.ndim != 3 or f.shape[1:] != (NUM_MESH_LANDMARKS, 3) or len(f) < 2:
            raise ValueError(f"expected motion frames (F >= 2, {NUM_MESH_LANDMARKS}, 3), got {f.shape}")
        m = f[:, mirror_index(), :].copy()
        m[..., 0] = -m[..., 0]
        x = np.concatenate([f, m]).reshape(2 * len(f), -1)
        self.options = options
        self.n_frames = len(f)
        self._cov = x.T @ x / len(x)
        """(1404, 1404) second moment of the motion (it is zero-mean by construction)."""
        self._blend_basis: np.ndarray | None = None
        self.blendshape_share: float | None = None
        if blendshapes is not None and options.blendshape_rank:
            b = np.asarray(blendshapes, np.float64)
            bm = b[:, blendshape_mirror] if blendshape_mirror is not None else b
            bx = np.concatenate([b, bm])
            vals, vecs = np.linalg.eigh(bx.T @ bx / len(bx))
            order = np.argsort(vals)[::-1]
            k = min(options.blendshape_rank, len(vals))
            self._blend_basis = vecs[:, order[:k]]
            self.blendshape_share = float(vals[order[:k]].sum() / max(vals.sum(), 1e-12))
        self._cache: dict[tuple[int, ...], tuple[np.ndarray, float]] = {}

    @classmethod
    def from_bank(cls, bank, options: SpeechSubspaceOptions) -> SpeechSubspace:
        """From a :class:`realtime_fer.data.motion.MotionBank` (its blendshapes, when it has them)."""
        from realtime_fer.data.motion import blendshape_mirror

        sub = cls(bank.frames, bank.blendshapes, options, blendshape_mirror() if bank.blendshapes is not None else None)
        per = "".join(f", {e} {r}" for e, r in sorted(options.ranks.items()))
        log.info("speech subspace: %d directions of landmark motion%s (of %d frames)%s", options.rank, per, sub.n_frames,
                 f", {options.blendshape_rank} of blendshape motion ({sub.blendshape_share:.0%} of its variance)" if sub.blendshape_share is not None else "")
        return sub

    def landmark_basis(self, landmarks: Sequence[int], rank: int | None = None) -> tuple[np.ndarray, float]:
        """(3L, rank) orthonormal leading directions of the motion of ``landmarks`` (x, y, z per
        landmark, landmark-major, as pooled) and the share of that motion's variance they hold.
        ``rank``: default ``options.rank``."""
        rank = self.options.rank if rank is None else int(rank)
        key = tuple(int(i) for i in landmarks)
        if key not in self._cache:
            idx = np.asarray(key, np.int64)
            cols = (3 * idx[:, None] + np.arange(3)[None, :]).reshape(-1)
            vals, vecs = np.linalg.eigh(self._cov[np.ix_(cols, cols)])
            order = np.argsort(vals)[::-1]
            self._cache[key] = (vals[order], vecs[:, order])
        vals, vecs = self._cache[key]
        k = min(rank, len(vals) - 1)
        share = float(vals[:k].sum() / max(vals.sum(), 1e-12))
        return vecs[:, :k], share

    def basis(self, landmarks: Sequence[int], pooling: Sequence[str], n_blendshapes: int, emotion: str | None = None) -> np.ndarray | None:
        """(D, k) orthonormal basis, in the pooled input of a network on ``landmarks`` (see
        :func:`realtime_fer.models.network.pool`), of the directions to project off: the
        landmark and blendshape motion directions in the ``mean`` part; None when the pooling
        has no ``mean`` or nothing is removed. ``emotion``: whose rank (``options.ranks``)."""
        if "mean" not in pooling or not self.options.enabled:
            return None
        width = 3 * len(landmarks)
        dim = len(pooling) * (width + n_blendshapes)
        k = list(pooling).index("mean")
        blocks = []
        rank = self.options.rank_of(emotion)
        if rank:
            u, _ = self.landmark_basis(landmarks, rank)
            b = np.zeros((dim, u.shape[1]))
            b[k * width : (k + 1) * width] = u
            blocks.append(b)
        if self._blend_basis is not None and n_blendshapes:
            if n_blendshapes != len(self._blend_basis):
                raise ValueError(f"the speech subspace has {len(self._blend_basis)} blendshapes, the network reads {n_blendshapes}")
            b = np.zeros((dim, self._blend_basis.shape[1]))
            b[blendshape_part(len(landmarks), len(pooling), n_blendshapes, k)] = self._blend_basis
            blocks.append(b)
        return np.concatenate(blocks, axis=1) if blocks else None


def project(features: np.ndarray, basis: np.ndarray | None) -> np.ndarray:
    """``features - features B B^T`` (float32); ``features`` itself when ``basis`` is None."""
    if basis is None:
        return features
    x = np.asarray(features, np.float32)
    b = basis.astype(np.float32)
    return x - (x @ b) @ b.T


def fold_projection(net: Network, basis: np.ndarray | None, half: bool = False) -> Network:
    """The network that computes, on raw pooled features, what ``net`` (fitted on features
    projected off ``basis``) computes on projected ones.

    With ``z = (x P - mu) / sigma``, ``P = I - B B^T`` and ``mu = mean(x P)`` (so ``mu P = mu``),
    ``z = ((x - mu) / sigma) M`` with ``M = diag(sigma) P diag(1 / sigma)``: ``M`` is folded into
    the first hidden layer's weights and the direct link's head weights. ``half``: round the
    folded first-layer weights to float16-representable values (the exported model then stores
    them in half the space, as it does the random weights; the head is not rounded).
    """
    if basis is None:
        return net
    sigma = np.asarray(net.std, np.float64)
    b = np.asarray(basis, np.float64)
    left = sigma[:, None] * b  # diag(sigma) B
    right = b / sigma[:, None]  # (B^T diag(1/sigma))^T

    def apply(w: np.ndarray) -> np.ndarray:  # M @ w
        w = np.asarray(w, np.float64)
        return w - left @ (right.T @ w)

    layers = list(net.layers)
    if layers:
        w1 = apply(layers[0][0]).astype(np.float32)
        if half:
            w1 = round_to_half(w1)
        layers[0] = (w1, layers[0][1])
    head_w = np.asarray(net.head_w, np.float32).copy()
    direct = net.direct_link()
    if direct is not None:
        head_w[direct] = apply(head_w[direct]).astype(np.float32)
    return replace(net, layers=layers, head_w=head_w)
