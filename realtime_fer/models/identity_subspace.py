"""Identity-subspace projection: the models ignore the directions in which resting faces differ.

Two people at rest differ in face shape (a wider mouth, lower brows, a longer nose), and a model
fitted on a few thousand photos can learn some of those differences as expressions: a face whose
brows sit low at rest reads as angry, a wide mouth as happy. On new people that is a bias per
person, the kind of error the generalisation report shows (a clip goes nearly 100 % to one
wrong label). :func:`identity_basis` takes the principal directions of the pooled ``mean``
shape (and, optionally, of the pooled ``mean`` blendshape scores) over the training windows of
*neutral* faces: how faces differ when they express nothing. Training projects the leading
``rank`` of them off, like the speech subspace (a *nuisance attribute projection*), and the
projection is folded into the network's first layer
(:func:`realtime_fer.models.speech_subspace.fold_projection`): no cost per frame, no change to
the exported graph's inputs or to the explanations' completeness.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from realtime_fer.labels import canonical_label


@dataclass
class IdentitySubspaceOptions:
    """YAML ``model.identity_subspace`` of the training config."""

    rank: int = 0
    """Landmark directions removed from the pooled ``mean`` shape (0: none): the leading
    principal components of the ``label`` training windows' pooled shapes, per model."""
    blendshape_rank: int = 0
    """Blendshape directions removed from the pooled ``mean`` blendshape scores."""
    label: str = "neutral"
    """Whose training windows show how resting faces differ."""

    def __post_init__(self) -> None:
        if self.rank < 0 or self.blendshape_rank < 0:
            raise ValueError("identity_subspace.rank and blendshape_rank must be >= 0")
        self.label = canonical_label(self.label)

    @property
    def enabled(self) -> bool:
        return self.rank > 0 or self.blendshape_rank > 0


def _leading(m: np.ndarray, k: int) -> np.ndarray:
    """(C, k) leading principal directions of the rows of ``m`` (N, C)."""
    m = np.asarray(m, np.float64)
    _, _, vt = np.linalg.svd(m - m.mean(axis=0), full_matrices=False)
    return vt[: min(k, len(vt))].T


def identity_basis(
    x: np.ndarray,
    rest_rows: np.ndarray,
    *,
    pooling: Sequence[str],
    n_landmarks: int,
    n_blendshapes: int,
    options: IdentitySubspaceOptions,
) -> np.ndarray | None:
    """(D, k) orthonormal basis, in the coordinates of pooled features ``x`` (N, D), of the
    leading directions in which the ``rest_rows`` (resting faces) differ: ``options.rank`` in
    the pooled ``mean`` shape, ``options.blendshape_rank`` in the pooled ``mean`` blendshapes.
    Directions already projected off ``x`` (the speech subspace) have no variance, so the basis
    is orthogonal to them. None when nothing is removed or there is no ``mean`` pooling.

    Raises:
        ValueError: fewer resting rows than directions asked for.
    """
    if not options.enabled or "mean" not in pooling:
        return None
    rest = np.asarray(x)[np.asarray(rest_rows)]
    need = max(options.rank, options.blendshape_rank) + 1
    if len(rest) < need:
        raise ValueError(f"identity subspace: {len(rest)} {options.label} training windows, need at least {need}")
    part = list(pooling).index("mean")
    width = 3 * n_landmarks
    blocks = []
    if options.rank:
        cols = slice(part * width, (part + 1) * width)
        u = _leading(rest[:, cols], options.rank)
        b = np.zeros((x.shape[1], u.shape[1]))
        b[cols] = u
        blocks.append(b)
    if options.blendshape_rank and n_blendshapes:
        start = len(pooling) * width + part * n_blendshapes
        cols = slice(start, start + n_blendshapes)
        u = _leading(rest[:, cols], options.blendshape_rank)
        b = np.zeros((x.shape[1], u.shape[1]))
        b[cols] = u
        blocks.append(b)
    return np.concatenate(blocks, axis=1) if blocks else None


def join_bases(*bases: np.ndarray | None) -> np.ndarray | None:
    """One orthonormal basis spanning every non-None basis (columns of the first kept as they
    are when the others are already orthogonal to it)."""
    kept = [b for b in bases if b is not None and b.shape[1]]
    if not kept:
        return None
    if len(kept) == 1:
        return kept[0]
    q, r = np.linalg.qr(np.concatenate(kept, axis=1))
    keep = np.abs(np.diag(r)) > 1e-9
    return q[:, keep]
