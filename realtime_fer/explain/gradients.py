"""Analytic input gradients of a :class:`~realtime_fer.models.network.Network` (numpy, no torch).

The explained output is the network's calibrated **logit**, ``platt_a * score + platt_b``
(log-odds of the emotion): it is what the probability is a sigmoid of, and it is linear in the
network's score, so attributions add up in the same units everywhere.

A network starts with a temporal pooling of its window (mean, spread, extremes over time, last
minus first frame), so the gradient is computed with respect to the pooled features
(:func:`pooled_gradient`) and spread back over the frames (:func:`expand_gradient`, through the
pooling's Jacobian); Integrated Gradients integrates in the (T times smaller) pooled space.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from realtime_fer.models.network import Network, activate, activation_derivative, dtype_eps

Precision = Literal["float64", "float32"]


def logit(net: Network, windows: np.ndarray) -> np.ndarray:
    """Calibrated log-odds (N,) of windows (N, T, L, 3)."""
    return (net.platt_a * net.score(windows).astype(np.float64) + net.platt_b).astype(np.float64)


def pooled_gradient(net: Network, pooled: np.ndarray, dtype: Precision = "float64") -> tuple[np.ndarray, np.ndarray]:
    """Calibrated logit and its gradient with respect to the pooled features.

    Args:
        pooled: (N, D) pooled features (``D = net.input_dim``).
        dtype: arithmetic precision; ``float32`` is about 3x faster (dataset-level relevance).

    Returns:
        ``(logits, grads)``: (N,) logits and (N, D) gradients, in ``dtype``.
    """
    dt = np.dtype(dtype)
    z = (np.asarray(pooled, dtype=dt) - np.asarray(net.mean, dt)) / np.asarray(net.std, dt)
    n = len(z)
    pres, reps = [], [z]
    for wk, bk in net.layers:
        pre = reps[-1] @ np.asarray(wk, dt) + np.asarray(bk, dt)
        pres.append(pre)
        reps.append(activate(pre, net.activation))
    # score and the head's direct contribution to each representation's gradient
    grads = [np.zeros_like(r) for r in reps]
    offset = 0
    score = np.full(n, net.head_b, dt)
    head_w = np.asarray(net.head_w, dt)
    for i in net.head_inputs:
        width = reps[i].shape[1]
        seg = head_w[offset : offset + width]
        score += reps[i] @ seg
        grads[i] += seg[None, :]
        offset += width
    for k in range(len(net.layers), 0, -1):
        delta = grads[k] * activation_derivative(pres[k - 1], reps[k], net.activation)
        grads[k - 1] += delta @ np.asarray(net.layers[k - 1][0], dt).T
    g_pooled = grads[0] / np.asarray(net.std, dt) * dt.type(net.platt_a)
    return (dt.type(net.platt_a) * score + dt.type(net.platt_b)).astype(dt), g_pooled


def pooled_block(net: Network, block: str) -> tuple[int, tuple[int, ...]]:
    """Where an input's pooled parts sit in the pooled features: ``(first column, per-frame
    shape)`` of ``block`` (``landmarks``: (L, 3), first; ``blendshapes``: (B,), after all the
    landmark parts). Part ``k`` of the block spans ``prod(shape)`` columns from
    ``first + k * prod(shape)``."""
    if block == "landmarks":
        return 0, (net.n_landmarks, 3)
    if block == "blendshapes":
        return len(net.pooling) * 3 * net.n_landmarks, (net.n_blendshapes,)
    raise ValueError(f"unknown block {block!r}")


def expand_gradient(
    net: Network,
    g_pooled: np.ndarray,
    windows: np.ndarray | int | None = None,
    parts: tuple[str, ...] | None = None,
    *,
    block: str = "landmarks",
) -> np.ndarray:
    """Spread a gradient over pooled features (N, D) back over the window's frames: the
    gradient with respect to the window (N, T, L, 3), or with ``block="blendshapes"`` with
    respect to its blendshapes (N, T, B) (``windows`` is then the (N, T, B) blendshapes).

    ``windows`` is the input, needed for the pooled parts that are not linear (``std``:
    ``(x_t - mean) / (T * std)``; ``min``/``max``: the frame that holds the extreme); for
    linear pooling (``mean``, ``delta``) the window length alone is enough. ``parts`` limits
    the result to those pooled parts (default: all)."""
    w = None if windows is None or isinstance(windows, (int, np.integer)) else np.asarray(windows, g_pooled.dtype)
    t = w.shape[1] if w is not None else int(windows or net.window_length)
    n = len(g_pooled)
    start, inner = pooled_block(net, block)
    width = int(np.prod(inner))
    out = np.zeros((n, t) + inner, g_pooled.dtype)
    for part, p in enumerate(net.pooling):
        if parts is not None and p not in parts:
            continue
        g = g_pooled[:, start + part * width : start + (part + 1) * width].reshape((n,) + inner)
        if p == "mean":
            out += g[:, None] / t
        elif p == "delta":
            out[:, -1] += g
            out[:, 0] -= g
        else:
            if w is None:
                raise ValueError(f"the gradient through {p!r} pooling needs the windows")
            if p == "std":
                centred = w - w.mean(axis=1, keepdims=True)
                std = np.sqrt((centred * centred).mean(axis=1) + dtype_eps(w.dtype))
                out += g[:, None] * centred / (t * std[:, None])
            elif p in ("min", "max"):
                pick = (w.argmin if p == "min" else w.argmax)(axis=1)
                np.put_along_axis(out, pick[:, None], np.take_along_axis(out, pick[:, None], axis=1) + g[:, None], axis=1)
            else:
                raise ValueError(f"unknown pooling {p!r}")
    return out


def input_gradients(net: Network, windows: np.ndarray, blendshapes: np.ndarray | None = None, dtype: Precision = "float64") -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Gradient of the calibrated logit with respect to the window and (for networks that read
    them) its blendshapes.

    Returns:
        ``(logits, grad_windows, grad_blendshapes)``: (N,), (N, T, L, 3) and (N, T, B) or
        ``None``, in ``dtype``.
    """
    w = np.asarray(windows, dtype=dtype)
    b = None if not net.n_blendshapes else np.asarray(blendshapes, dtype=dtype)
    logits, g = pooled_gradient(net, net.pooled(w, b, dtype), dtype)
    return logits, expand_gradient(net, g, w), (expand_gradient(net, g, b, block="blendshapes") if b is not None else None)


def input_gradient(net: Network, windows: np.ndarray, dtype: Precision = "float64", blendshapes: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Gradient of the calibrated logit with respect to the window.

    Args:
        windows: (N, T, L, 3) float.
        blendshapes: (N, T, B), for networks that read them.

    Returns:
        ``(logits, grads)``: (N,) logits and (N, T, L, 3) gradients, in ``dtype``.
    """
    logits, gw, _ = input_gradients(net, windows, blendshapes, dtype)
    return logits, gw
