"""Analytic input gradients of a :class:`~realtime_fer.models.network.Network` (numpy, no torch).

The explained output is the network's calibrated **logit**, ``platt_a * score + platt_b``
(log-odds of the emotion): it is what the probability is a sigmoid of, and it is linear in the
network's score, so attributions add up in the same units everywhere.
"""

from __future__ import annotations

import numpy as np

from realtime_fer.models.network import Network, pool


def logit(net: Network, windows: np.ndarray) -> np.ndarray:
    """Calibrated log-odds (N,) of windows (N, T, L, 3)."""
    return (net.platt_a * net.score(windows).astype(np.float64) + net.platt_b).astype(np.float64)


def _act_grad(pre: np.ndarray, post: np.ndarray, kind: str) -> np.ndarray:
    if kind == "tanh":
        return 1.0 - post * post
    if kind == "relu":
        return (pre > 0).astype(post.dtype)
    if kind == "sigmoid":
        return post * (1.0 - post)
    raise ValueError(f"unknown activation {kind!r}")


def input_gradient(net: Network, windows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Gradient of the calibrated logit with respect to the window.

    Args:
        windows: (N, T, L, 3) float.

    Returns:
        ``(logits, grads)``: (N,) float64 logits and (N, T, L, 3) float64 gradients.
    """
    w = np.asarray(windows, dtype=np.float64)
    n, t, l, _ = w.shape
    z = (pool(w, net.pooling).astype(np.float64) - net.mean) / net.std
    pres, reps = [], [z]
    for wk, bk in net.layers:
        pre = reps[-1] @ wk.astype(np.float64) + bk
        pres.append(pre)
        reps.append(np.tanh(pre) if net.activation == "tanh" else np.maximum(pre, 0) if net.activation == "relu" else 1 / (1 + np.exp(-pre)))
    # score and the head's direct contribution to each representation's gradient
    grads = [np.zeros_like(r) for r in reps]
    offset = 0
    score = np.full(n, net.head_b, np.float64)
    for i in net.head_inputs:
        width = reps[i].shape[1]
        seg = net.head_w[offset : offset + width].astype(np.float64)
        score += reps[i] @ seg
        grads[i] += seg[None, :]
        offset += width
    for k in range(len(net.layers), 0, -1):
        delta = grads[k] * _act_grad(pres[k - 1], reps[k], net.activation)
        grads[k - 1] += delta @ net.layers[k - 1][0].astype(np.float64).T
    g_pooled = grads[0] / net.std * net.platt_a
    out = np.zeros((n, t, l, 3), np.float64)
    width = 3 * l
    for part, p in enumerate(net.pooling):
        g = g_pooled[:, part * width : (part + 1) * width].reshape(n, l, 3)
        if p == "mean":
            out += g[:, None] / t
        elif p == "delta":
            out[:, -1] += g
            out[:, 0] -= g
    return net.platt_a * score + net.platt_b, out
