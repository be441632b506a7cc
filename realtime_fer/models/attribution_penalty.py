"""A closed-form head that explains without cancelling: ridge plus an attribution penalty.

The randomized network's head ``beta`` is linear in its inputs, and so is every Integrated
Gradients attribution of the network: the attribution of an item (a named face region over
x, y, z and the pooled parts, or a blendshape) of window ``x`` against baseline ``b`` is

    a_r = sum_{i in r} (x - b)_i * mean_t dF/dx_i (b + t (x - b))  =  M_r(x, b) . beta

with ``M(x, b)`` fixed once the random layers are drawn. The penalty
``mu * E[ ||M(x, b) beta||^2 ]`` over pairs of training windows ``x`` and neutral training
windows ``b`` (another person's still or talking neutral face: the identity gap the stream's
baselines leave) is therefore a quadratic form ``beta^T G beta`` that joins the ridge's
normal equations: training stays one linear solve, the network and its run-time cost are
unchanged. Large opposite weights on neighbouring regions are what make a head's
attributions cancel (docs/faithfulness.md, "Why the weights cancel"); this is the price the
solve puts on them.

The path integral is approximated with Gauss-Legendre nodes (``points``). Features the
network is fitted on may have been projected off a basis ``B`` (the speech subspace and
other folded projections): the folded network's gradient on raw features is then the
projected gradient, and so is the attribution computed here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from realtime_fer.models.network import activate, activation_derivative

__all__ = ["AttributionTerm", "attribution_gram", "column_items"]


@dataclass(frozen=True)
class AttributionTerm:
    """What the penalty needs besides the training features (built by the trainer per
    landmark subset)."""

    items: np.ndarray
    """(D,) item index (0 .. n_items - 1) of every input column."""
    n_items: int
    baseline_rows: np.ndarray
    """Rows of the training features that serve as baselines (the neutral windows)."""
    basis: np.ndarray | None = None
    """(D, k) orthonormal directions projected off the features before fitting, or None."""
    window_rows: np.ndarray | None = None
    """Rows whose attributions are penalised; None: every row."""


def column_items(region_index: Sequence[int], n_regions: int, pooling: Sequence[str], n_blendshapes: int) -> np.ndarray:
    """(D,) item of each pooled column of a landmark subset: the region of each landmark
    (``region_index``, per landmark) for its x, y, z in every pooled part, then blendshape
    ``k`` as item ``n_regions + k`` in every part (the column order of
    :meth:`realtime_fer.training.features.PooledSet.columns`)."""
    per_part = np.repeat(np.asarray(region_index, np.int64), 3)
    parts = [per_part] * len(pooling)
    if n_blendshapes:
        parts += [n_regions + np.arange(n_blendshapes, dtype=np.int64)] * len(pooling)
    return np.concatenate(parts) if parts else np.zeros(0, np.int64)


def attribution_gram(
    x: np.ndarray,
    mean: np.ndarray,
    std: np.ndarray,
    layers: list[tuple[np.ndarray, np.ndarray]],
    activation: str,
    head_inputs: tuple[int, ...],
    term: AttributionTerm,
    *,
    pairs: int,
    points: int,
    seed: int,
    batch: int = 32,
) -> np.ndarray:
    """``E[M^T M]`` over ``pairs`` (window, baseline) pairs: (d, d) for a head of ``d`` weights
    reading ``head_inputs`` (the intercept not included; it has no attribution).

    Args:
        x: (N, D) training features as the network is fitted on them (projected).
        mean, std: the network's standardisation.
        layers, activation, head_inputs: the network's random layers and what its head reads.
        term: items, baseline rows and projection basis.
        pairs: number of pairs drawn (windows uniformly from ``term.window_rows``, all rows
            when None; baselines from ``term.baseline_rows``).
        points: Gauss-Legendre nodes on the path from baseline to window.
        seed: seeds the draw of pairs.
    """
    if len(term.baseline_rows) == 0:
        raise ValueError("the attribution penalty needs baseline (neutral) training windows; none were found")
    if len(term.items) != x.shape[1]:
        raise ValueError(f"items cover {len(term.items)} columns, the features have {x.shape[1]}")
    rng = np.random.default_rng([seed, 0xA77])
    pool = np.arange(len(x)) if term.window_rows is None else np.asarray(term.window_rows)
    if len(pool) == 0:
        raise ValueError("the attribution penalty has no training windows to draw from")
    rows = pool[rng.integers(0, len(pool), size=pairs)]
    base = np.asarray(term.baseline_rows)[rng.integers(0, len(term.baseline_rows), size=pairs)]
    nodes, weights = np.polynomial.legendre.leggauss(points)
    nodes, weights = (nodes + 1.0) / 2.0, weights / 2.0
    inv_std = (1.0 / np.asarray(std, np.float64)).astype(np.float32)
    widths = [x.shape[1] if i == 0 else layers[i - 1][0].shape[1] for i in head_inputs]
    d = sum(widths)
    gram = np.zeros((d, d), np.float64)
    onehot = np.zeros((term.n_items, x.shape[1]), np.float32)
    onehot[term.items, np.arange(x.shape[1])] = 1.0
    basis = None if term.basis is None else np.asarray(term.basis, np.float32)
    for start in range(0, pairs, batch):
        xs = np.asarray(x[rows[start : start + batch]], np.float32)
        bs = np.asarray(x[base[start : start + batch]], np.float32)
        delta = xs - bs
        # V = S diag(delta) P diag(1/std): (n, items, D); its rows dotted with dF/dz give a_r
        v = onehot[None, :, :] * delta[:, None, :]
        if basis is not None:
            v = v - (v @ basis) @ basis.T
        v = v * inv_std[None, None, :]
        # the direct link's block is V itself; a hidden layer's is V's chain through the layers,
        # averaged over the path's nodes
        blocks = {i: v if i == 0 else np.zeros((len(xs), term.n_items, w), np.float32) for i, w in zip(head_inputs, widths)}
        for t, wt in zip(nodes, weights):
            h = ((bs + t * delta) - mean) / std
            chain = v
            for k, (w, b) in enumerate(layers, start=1):
                pre = h @ w + b
                h = activate(pre, activation)
                chain = (chain @ w) * activation_derivative(pre, h, activation)[:, None, :]
                if k in blocks:
                    blocks[k] += wt * chain
        m = np.concatenate([blocks[i] for i in head_inputs], axis=2).reshape(-1, d)
        gram += (m.T @ m).astype(np.float64)
    return gram / pairs

