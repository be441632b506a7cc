"""The common form of every per-emotion classifier: a small feed-forward network on a window.

Both model families (the paper's deep randomized network and the gradient-trained torch
network) end up as a :class:`Network`: numpy weights for

1. **temporal pooling** of the (T, L, 3) window, each part flattened landmark-major (x, y, z
   per landmark) and concatenated: ``mean`` over time (shape), ``std`` over time (spread: how
   much a coordinate moves, e.g. a talking mouth), ``min`` / ``max`` over time (the extremes of
   a coordinate: a mouth that closes between words has a closed ``min``), ``delta`` (last
   minus first frame);
2. **standardisation** with the training set's mean and std;
3. **hidden layers** ``h_k = act(h_{k-1} W_k + b_k)``;
4. a **linear head** on the concatenation of the chosen inputs (``head_inputs``: the
   standardised input ``z`` for a direct link, and/or the hidden layers) giving a score;
5. **Platt calibration**: ``probability = sigmoid(a * score + b)``.

The same structure is evaluated here in numpy, exported to ONNX by
:mod:`realtime_fer.models.onnx_export` (no torch needed), and differentiated analytically for
Integrated Gradients.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import numpy.typing  # noqa: F401 - for the DTypeLike annotation

Activation = Literal["tanh", "relu", "sigmoid"]
POOLINGS = ("mean", "delta", "std", "min", "max")
#: Pooled parts that are linear in the window (the others are integrated in pooled space).
LINEAR_POOLINGS = ("mean", "delta")
#: Added to the variance before its square root, so that ``std`` pooling is differentiable on a
#: still window (all frames equal) and matches the ONNX graph exactly.
STD_EPSILON = 1e-6


def _pool_part(w: np.ndarray, p: str) -> np.ndarray:
    """One pooled part over axis 1 (time) of (N, T, ...) ``w``: (N, ...)."""
    if p == "mean":
        return w.mean(axis=1)
    if p == "delta":
        return w[:, -1] - w[:, 0]
    if p == "std":
        return np.sqrt(w.var(axis=1) + dtype_eps(w.dtype))
    if p == "min":
        return w.min(axis=1)
    if p == "max":
        return w.max(axis=1)
    raise ValueError(f"unknown pooling {p!r}; known: {POOLINGS}")


def pool(windows: np.ndarray, pooling: tuple[str, ...], dtype: np.typing.DTypeLike = np.float32, blendshapes: np.ndarray | None = None) -> np.ndarray:
    """(N, T, L, 3) windows -> (N, len(pooling) * 3L) pooled, flattened features in ``dtype``
    (float32 for the models; float64 where explanations need the extra precision).

    With ``blendshapes`` (N, T, B) (the MediaPipe blendshape scores of the same frames), their
    parts follow the landmarks' (same poolings, same order): (N, len(pooling) * (3L + B))."""
    w = np.asarray(windows, dtype=dtype)
    if w.ndim != 4 or w.shape[-1] != 3:
        raise ValueError(f"expected windows of shape (N, T, L, 3), got {w.shape}")
    parts = [_pool_part(w, p).reshape(len(w), -1) for p in pooling]
    if blendshapes is not None:
        b = np.asarray(blendshapes, dtype=dtype)
        if b.ndim != 3 or b.shape[:2] != w.shape[:2]:
            raise ValueError(f"expected blendshapes of shape (N, T, B) = ({w.shape[0]}, {w.shape[1]}, B), got {b.shape}")
        parts += [_pool_part(b, p) for p in pooling]
    return np.concatenate(parts, axis=1)


def landmark_part(n_landmarks: int, part: int) -> slice:
    """Columns of pooling part ``part`` of ``n_landmarks`` landmarks in :func:`pool`'s layout
    (every landmark part first, ``3 * n_landmarks`` columns each, then the blendshape parts)."""
    width = 3 * int(n_landmarks)
    return slice(part * width, (part + 1) * width)


def blendshape_part(n_landmarks: int, n_parts: int, n_blendshapes: int, part: int) -> slice:
    """Columns of pooling part ``part``'s ``n_blendshapes`` blendshape scores in :func:`pool`'s
    layout of ``n_parts`` pooling parts over ``n_landmarks`` landmarks."""
    start = 3 * int(n_landmarks) * int(n_parts) + part * int(n_blendshapes)
    return slice(start, start + int(n_blendshapes))


def dtype_eps(dtype: np.typing.DTypeLike) -> float:
    """:data:`STD_EPSILON` in ``dtype`` (one constant for numpy, gradients and ONNX)."""
    return np.dtype(dtype).type(STD_EPSILON)


def standardization(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature mean and std (floored at 1e-6) of training features, both float32."""
    x = np.asarray(features, dtype=np.float32)
    return x.mean(axis=0).astype(np.float32), np.maximum(x.std(axis=0), 1e-6).astype(np.float32)


def activate(x: np.ndarray, kind: str) -> np.ndarray:
    if kind == "tanh":
        return np.tanh(x)
    if kind == "relu":
        return np.maximum(x, 0)
    if kind == "sigmoid":
        return 1.0 / (1.0 + np.exp(-x))
    raise ValueError(f"unknown activation {kind!r}")


def activation_derivative(pre: np.ndarray, post: np.ndarray, kind: str) -> np.ndarray:
    """The derivative of :func:`activate` at ``pre`` (``post = activate(pre, kind)``)."""
    if kind == "tanh":
        return 1.0 - post * post
    if kind == "relu":
        return (pre > 0).astype(post.dtype)
    if kind == "sigmoid":
        return post * (1.0 - post)
    raise ValueError(f"unknown activation {kind!r}")


@dataclass
class Network:
    """Weights of one binary classifier (see the module docstring for the computation)."""

    window_length: int
    n_landmarks: int
    pooling: tuple[str, ...]
    mean: np.ndarray
    std: np.ndarray
    layers: list[tuple[np.ndarray, np.ndarray]]
    activation: str
    head_inputs: tuple[int, ...]
    """Which representations the head reads: 0 = standardised input z, k = hidden layer k."""
    head_w: np.ndarray
    head_b: float
    platt_a: float = 1.0
    platt_b: float = 0.0
    family: str = "randomized"
    extras: dict = field(default_factory=dict)
    n_blendshapes: int = 0
    """MediaPipe blendshape scores read beside the landmarks (0: landmarks only); their pooled
    parts follow the landmarks' in the input (see :func:`pool`)."""

    @property
    def input_dim(self) -> int:
        return len(self.pooling) * (3 * self.n_landmarks + self.n_blendshapes)

    def head_parts(self) -> dict[int, np.ndarray]:
        """The head weights split by the representation they read (0: ``z``, k: hidden layer
        k), float64, in ``head_inputs`` order."""
        out, start = {}, 0
        for i in self.head_inputs:
            d = len(self.mean) if i == 0 else self.layers[i - 1][0].shape[1]
            out[i] = np.asarray(self.head_w[start : start + d], np.float64)
            start += d
        return out

    def direct_link(self) -> slice | None:
        """The rows of ``head_w`` that read the standardised input ``z`` (the direct link), or
        None when the head reads only hidden layers."""
        start = 0
        for i in self.head_inputs:
            if i == 0:
                return slice(start, start + len(self.mean))
            start += self.layers[i - 1][0].shape[1]
        return None

    def pooled(self, windows: np.ndarray, blendshapes: np.ndarray | None = None, dtype: np.typing.DTypeLike = np.float32) -> np.ndarray:
        """The network's pooled input for windows (N, T, L, 3) and, when it reads them, their
        blendshapes (N, T, B)."""
        if self.n_blendshapes and blendshapes is None:
            raise ValueError(f"this network also reads {self.n_blendshapes} blendshapes per frame")
        if self.n_blendshapes and np.shape(blendshapes)[-1] != self.n_blendshapes:
            raise ValueError(f"expected {self.n_blendshapes} blendshapes per frame, got {np.shape(blendshapes)[-1]}")
        return pool(windows, self.pooling, dtype, blendshapes if self.n_blendshapes else None)

    def representations(self, windows: np.ndarray, blendshapes: np.ndarray | None = None) -> list[np.ndarray]:
        """[z, h_1, ..., h_K] for a batch of windows."""
        return self.representations_pooled(self.pooled(windows, blendshapes))

    def representations_pooled(self, pooled: np.ndarray) -> list[np.ndarray]:
        """[z, h_1, ..., h_K] from already pooled features (N, input_dim)."""
        z = (np.asarray(pooled, np.float32) - self.mean) / self.std
        reps = [z.astype(np.float32)]
        for w, b in self.layers:
            reps.append(activate(reps[-1] @ w + b, self.activation).astype(np.float32))
        return reps

    def score(self, windows: np.ndarray, blendshapes: np.ndarray | None = None) -> np.ndarray:
        """Uncalibrated score (N,) of windows (N, T, L, 3) (and their blendshapes (N, T, B))."""
        return self.score_pooled(self.pooled(windows, blendshapes))

    def score_pooled(self, pooled: np.ndarray, chunk: int = 8192) -> np.ndarray:
        """Uncalibrated score (N,) from pooled features (N, input_dim), in chunks."""
        out = np.empty(len(pooled), np.float32)
        for s in range(0, len(pooled), chunk):
            reps = self.representations_pooled(pooled[s : s + chunk])
            feats = np.concatenate([reps[i] for i in self.head_inputs], axis=1)
            out[s : s + chunk] = feats @ self.head_w + self.head_b
        return out

    def calibrate(self, score: np.ndarray) -> np.ndarray:
        """Platt-calibrated probability of uncalibrated scores."""
        return (1.0 / (1.0 + np.exp(-(self.platt_a * np.asarray(score, np.float64) + self.platt_b)))).astype(np.float32)

    def probability(self, windows: np.ndarray, blendshapes: np.ndarray | None = None) -> np.ndarray:
        """Calibrated probability (N,) of windows (N, T, L, 3) (and their blendshapes)."""
        return self.calibrate(self.score(windows, blendshapes))


def block_diagonal(blocks: list[np.ndarray]) -> np.ndarray:
    """The block-diagonal matrix of ``blocks`` (float64): the layers after the first of
    networks placed side by side, each reading only its own units."""
    out = np.zeros((sum(b.shape[0] for b in blocks), sum(b.shape[1] for b in blocks)))
    r = c = 0
    for b in blocks:
        out[r : r + b.shape[0], c : c + b.shape[1]] = b
        r, c = r + b.shape[0], c + b.shape[1]
    return out
