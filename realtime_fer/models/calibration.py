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


def choose_threshold(
    probabilities: np.ndarray, labels: np.ndarray, criterion: Literal["f1", "balanced_accuracy", "accuracy"] = "f1"
) -> float:
    """The probability threshold that maximises ``criterion`` on (probabilities, labels)."""
    p = np.asarray(probabilities, dtype=np.float64)
    y = np.asarray(labels).astype(bool)
    cands = np.unique(np.concatenate([p, [0.5]]))
    if len(cands) > 512:
        cands = np.unique(np.quantile(p, np.linspace(0, 1, 512)))
    best_t, best_v = 0.5, -1.0
    n_pos, n_neg = max(int(y.sum()), 1), max(int((~y).sum()), 1)
    for thr in cands:
        pred = p >= thr
        tp = np.sum(pred & y)
        fp = np.sum(pred & ~y)
        fn = np.sum(~pred & y)
        tn = np.sum(~pred & ~y)
        if criterion == "f1":
            v = 2 * tp / max(2 * tp + fp + fn, 1)
        elif criterion == "balanced_accuracy":
            v = 0.5 * (tp / n_pos + tn / n_neg)
        else:
            v = (tp + tn) / len(y)
        if v > best_v + 1e-12:
            best_t, best_v = float(thr), float(v)
    return best_t
