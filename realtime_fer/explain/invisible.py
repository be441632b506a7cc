"""Directions of the input a network cannot see, and a baseline moved along them.

Training projects some directions off each network's pooled ``mean`` shape before fitting
(the speech subspace: a talking mouth; optionally the identity subspace) and folds the
projection into the first layer, so the network's output does not change when a window's
frames all move along one of them. Integrated Gradients still gives every coordinate of such
a displacement a weight, ``(x_i - b_i) * dF/dx_i``, and those weights sum to zero over the
direction: regions that move together with speech (the lips, below the lower lip, the chin)
receive large weights of opposite sign that cancel. They are not evidence; they are the part
of the difference between the face and its baseline that the network ignores by construction.

:class:`InvisibleSubspace` finds those directions from the network's weights alone (no
training data): the left null space of the map from the pooled ``mean`` part (landmarks and
blendshapes) to the first hidden layer and the direct link, computed with the pooled inputs
standardised so that every coordinate weighs alike. Only a network whose first layer (with
the direct link) is at least as wide as its pooled ``mean`` part has them identifiable: a
narrower layer has a null space of its own, random directions spread over the whole face,
and none is removed then. :meth:`InvisibleSubspace.shift` moves a
baseline window by the component of ``mean(x) - mean(b)`` along them (the same shift in every
frame), so the baseline scores the same as before (up to the float16 rounding of the folded
weights) and the attributions explain only what the network reads.
"""

from __future__ import annotations

import numpy as np

from realtime_fer.models.network import Network

DEFAULT_TOLERANCE = 1e-4
"""A direction is invisible when its gain through the first layer is below this fraction of
the largest gain. In the shipped networks the folded directions' gains are 3e-6 to 3e-5 of the
largest (what float16 rounding of the folded weights leaves) and the next ones 3e-3 to 7e-2."""


SHIFT_INVARIANT = frozenset({"mean", "std", "delta"})
"""Poolings whose other parts a shift of every frame leaves unchanged (``mean`` aside): only
for networks pooled by these is a baseline moved."""


class InvisibleSubspace:
    """The directions of a network's pooled ``mean`` part that do not change its output.

    Args:
        net: the network.
        tolerance: relative singular-value threshold (see :data:`DEFAULT_TOLERANCE`).
    """

    def __init__(self, net: Network, tolerance: float = DEFAULT_TOLERANCE) -> None:
        self.net = net
        pooling = list(net.pooling)
        self.basis_landmarks: np.ndarray | None = None
        self.basis_blendshapes: np.ndarray | None = None
        self.rank = 0
        if "mean" not in pooling or not net.layers or set(pooling) - SHIFT_INVARIANT:
            # min / max parts move with the baseline's shift, and the network sees them
            return
        part = pooling.index("mean")
        width = 3 * net.n_landmarks
        n_b = net.n_blendshapes
        lm_cols = np.arange(part * width, (part + 1) * width)
        bs_start = len(pooling) * width + part * n_b
        bs_cols = np.arange(bs_start, bs_start + n_b)
        cols = np.concatenate([lm_cols, bs_cols])
        maps = [np.asarray(net.layers[0][0], np.float64)]
        direct = net.direct_link()
        if direct is not None:
            maps.append(np.asarray(net.head_w, np.float64)[direct, None])
        sigma = np.asarray(net.std, np.float64)
        # gains of the standardised mean coordinates (z-space rows): each coordinate weighs alike
        # when finding the null space
        az = np.concatenate(maps, axis=1)[cols]
        if len(cols) > az.shape[1]:
            # a first layer narrower than the mean part has a null space of its own (random
            # directions all over the face); the folded ones cannot be told from it, and moving
            # the baseline along it would smear the difference over the face: leave it
            return
        u, s, _ = np.linalg.svd(az, full_matrices=True)
        s_full = np.zeros(len(cols))
        s_full[: len(s)] = s
        null = s_full < tolerance * max(float(s_full.max()), 1e-300)
        if not null.any():
            return
        v = u[:, null]  # z-space null vectors; raw direction = sigma * v
        raw = v * sigma[cols, None]
        q, _ = np.linalg.qr(raw)
        self.rank = int(q.shape[1])
        self._q = q
        self._cols = cols
        self._n_lm = len(lm_cols)
        self.basis_landmarks = q[: len(lm_cols)]
        self.basis_blendshapes = q[len(lm_cols) :] if n_b else None

    def shift(
        self,
        windows: np.ndarray,
        baselines: np.ndarray,
        blendshapes: np.ndarray | None = None,
        blendshape_baselines: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Baselines (N, T, L, 3) (and blendshape baselines (N, T, B)) moved, in every frame,
        by the component of the windows' mean minus the baselines' mean along the invisible
        directions (orthogonal projection in raw coordinates). Unchanged when there are none."""
        if not self.rank:
            return baselines, blendshape_baselines
        x = np.asarray(windows, np.float64)
        b = np.broadcast_to(np.asarray(baselines, np.float64), x.shape)
        n = len(x)
        diff = [(x.mean(axis=1) - b.mean(axis=1)).reshape(n, -1)]
        bb = None
        if self.net.n_blendshapes:
            xb = np.asarray(blendshapes, np.float64)
            bb = np.broadcast_to(np.asarray(blendshape_baselines, np.float64), xb.shape)
            diff.append(xb.mean(axis=1) - bb.mean(axis=1))
        d = np.concatenate(diff, axis=1)
        step = (d @ self._q) @ self._q.T  # (N, cols)
        new_b = b + step[:, : self._n_lm].reshape(n, 1, self.net.n_landmarks, 3)
        new_bb = None if bb is None else bb + step[:, self._n_lm :][:, None, :]
        return new_b.astype(np.asarray(baselines).dtype, copy=False), (None if new_bb is None else new_bb.astype(np.asarray(blendshape_baselines).dtype, copy=False))

    def shift_pooled(self, pooled: np.ndarray, pooled_baselines: np.ndarray) -> np.ndarray:
        """:meth:`shift` for pooled features (N, D) and their baselines ((N, D) or (D,)): the
        baselines' ``mean`` part moved along the invisible directions to the inputs'."""
        x = np.asarray(pooled, np.float64)
        b = np.array(np.broadcast_to(np.asarray(pooled_baselines, np.float64), x.shape))
        if not self.rank:
            return b
        d = x[:, self._cols] - b[:, self._cols]
        b[:, self._cols] += (d @ self._q) @ self._q.T
        return b

    def motion(self, windows: np.ndarray) -> np.ndarray | None:
        """(N, T, L, 3) the windows' frames minus their mean, projected on the invisible landmark
        directions: the part of a window's motion the network ignores in its mean shape (for the
        shipped networks, talking), or None when there is none. Added to a still baseline, it
        makes the baseline talk as the window does (``talking_baseline``)."""
        if self.basis_landmarks is None:
            return None
        x = np.asarray(windows, np.float64)
        dev = (x - x.mean(axis=1, keepdims=True)).reshape(len(x), x.shape[1], -1)
        q = self.basis_landmarks
        return ((dev @ q) @ q.T).reshape(x.shape)
