"""Probability calibration (Platt scaling) and decision thresholds for binary scores."""

from __future__ import annotations

from typing import Literal

import numpy as np


def fit_platt(scores: np.ndarray, labels: np.ndarray, iterations: int = 100) -> tuple[float, float]:
    """Fit ``p = sigmoid(a * score + b)`` by Newton's method on the log-loss, with Platt's
    smoothed targets ((n+ + 1)/(n+ + 2) and 1/(n- + 2)) so that perfectly separated data still
    gives finite parameters. Returns ``(a, b)``."""
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels).astype(bool)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        raise ValueError("Platt scaling needs both positive and negative samples")
    t = np.where(y, (n_pos + 1.0) / (n_pos + 2.0), 1.0 / (n_neg + 2.0))
    # start from a standardised slope so Newton steps are well scaled
    a, b = 1.0 / max(float(s.std()), 1e-6), float(np.log((n_pos + 1.0) / (n_neg + 1.0)))
    for _ in range(iterations):
        z = a * s + b
        p = 1.0 / (1.0 + np.exp(-z))
        g = np.array([np.sum((p - t) * s), np.sum(p - t)])
        w = p * (1 - p)
        h = np.array([[np.sum(w * s * s), np.sum(w * s)], [np.sum(w * s), np.sum(w)]]) + 1e-9 * np.eye(2)
        step = np.linalg.solve(h, g)
        # backtracking keeps the loss decreasing
        def loss(a_: float, b_: float) -> float:
            zz = a_ * s + b_
            return float(np.sum(np.logaddexp(0, zz) - t * zz))

        f0, lr = loss(a, b), 1.0
        while lr > 1e-6 and loss(a - lr * step[0], b - lr * step[1]) > f0:
            lr *= 0.5
        a, b = a - lr * step[0], b - lr * step[1]
        if np.abs(lr * step).max() < 1e-10:
            break
    return float(a), float(b)


def _criterion_values(p: np.ndarray, y: np.ndarray, cands: np.ndarray, criterion: str) -> np.ndarray:
    """``criterion`` of the rule ``p >= t`` for every candidate threshold ``t`` (vectorised)."""
    pos, neg = np.sort(p[y]), np.sort(p[~y])
    tp = len(pos) - np.searchsorted(pos, cands, side="left")
    fp = len(neg) - np.searchsorted(neg, cands, side="left")
    fn, tn = len(pos) - tp, len(neg) - fp
    if criterion == "f1":
        return 2 * tp / np.maximum(2 * tp + fp + fn, 1)
    if criterion == "balanced_accuracy":
        return 0.5 * (tp / max(len(pos), 1) + tn / max(len(neg), 1))
    if criterion == "accuracy":
        return (tp + tn) / len(p)
    raise ValueError(f"unknown threshold criterion {criterion!r}")


def _candidates(p: np.ndarray) -> np.ndarray:
    cands = np.unique(np.concatenate([p, [0.5]]))
    if len(cands) > 512:
        cands = np.unique(np.quantile(p, np.linspace(0, 1, 512)))
    return cands


def choose_threshold(
    probabilities: np.ndarray,
    labels: np.ndarray,
    criterion: Literal["f1", "balanced_accuracy", "accuracy"] = "f1",
    bootstrap: int = 0,
    seed: int = 0,
) -> float:
    """The probability threshold that maximises ``criterion`` on (probabilities, labels).

    With ``bootstrap`` > 0, the median of the best thresholds of that many resamples (drawn with
    replacement, ``seed``) of the pairs: the criterion's curve is often flat near its top, so the
    single best point moves with which few positives the held-out split happens to hold; the
    median of the resamples' best points is the steadier choice.
    """
    p = np.asarray(probabilities, dtype=np.float64)
    y = np.asarray(labels).astype(bool)
    if len(p) == 0:
        raise ValueError("choose_threshold needs at least one sample")
    if bootstrap < 0:
        raise ValueError("bootstrap must be >= 0")
    cands = _candidates(p)
    if bootstrap == 0:
        return float(cands[int(np.argmax(_criterion_values(p, y, cands, criterion)))])
    rng = np.random.default_rng(seed)
    best = np.empty(bootstrap)
    for b in range(bootstrap):
        i = rng.integers(0, len(p), len(p))
        best[b] = cands[int(np.argmax(_criterion_values(p[i], y[i], cands, criterion)))]
    return float(np.median(best))
