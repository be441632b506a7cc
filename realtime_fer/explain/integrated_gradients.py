"""Integrated Gradients for our emotion networks, with a Captum-like ``attribute()`` API.

IG attributes the difference ``F(x) - F(x')`` between an input ``x`` and a baseline ``x'`` to
the input's coordinates by integrating the gradient along the straight path
``x' + a (x - x')``, ``a`` in [0, 1]:

    IG_i(x) = (x_i - x'_i) * integral_0^1 dF/dx_i (x' + a (x - x')) da

The integral is computed by Gauss-Legendre quadrature (default; exact for polynomials up to
degree 2n-1) or a Riemann rule. The attributions of a window sum to ``F(x) - F(x')`` up to the
quadrature error; every call measures that *completeness* gap and reports it. ``F`` is the
calibrated logit (see :mod:`realtime_fer.explain.gradients`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Literal

import numpy as np

from realtime_fer.explain.gradients import input_gradient
from realtime_fer.models.network import Network

log = logging.getLogger(__name__)

Method = Literal["gausslegendre", "riemann_left", "riemann_right", "riemann_middle", "riemann_trapezoid"]


def quadrature(method: Method, n_steps: int) -> tuple[np.ndarray, np.ndarray]:
    """Nodes ``alphas`` in [0, 1] and weights (summing to 1) of a quadrature rule, matching
    Captum's approximation methods of the same names."""
    if n_steps < 1:
        raise ValueError("n_steps must be >= 1")
    if method == "gausslegendre":
        x, w = np.polynomial.legendre.leggauss(n_steps)
        return (x + 1) / 2, w / 2
    if method == "riemann_trapezoid":
        if n_steps < 2:
            raise ValueError("riemann_trapezoid needs n_steps >= 2")
        alphas = np.linspace(0, 1, n_steps)
        w = np.full(n_steps, 1.0 / (n_steps - 1))
        w[[0, -1]] /= 2
        return alphas, w
    k = np.arange(n_steps)
    if method == "riemann_left":
        return k / n_steps, np.full(n_steps, 1.0 / n_steps)
    if method == "riemann_right":
        return (k + 1) / n_steps, np.full(n_steps, 1.0 / n_steps)
    if method == "riemann_middle":
        return (k + 0.5) / n_steps, np.full(n_steps, 1.0 / n_steps)
    raise ValueError(f"unknown method {method!r}")


@dataclass
class Attribution:
    """Attributions of a batch of windows."""

    attributions: np.ndarray
    """(N, T, L, 3): contribution of every coordinate of every frame."""
    output: np.ndarray
    """(N,) F(x), the explained output (calibrated logit)."""
    baseline_output: np.ndarray
    """(N,) F(baseline)."""
    delta: np.ndarray
    """(N,) completeness gap: sum(attributions) - (output - baseline_output)."""

    @property
    def total(self) -> np.ndarray:
        """(N,) sum of all attributions of each window."""
        return self.attributions.reshape(len(self.attributions), -1).sum(axis=1)

    def per_landmark(self) -> np.ndarray:
        """(N, L) signed attribution of each landmark (x, y, z and time summed)."""
        return self.attributions.sum(axis=(1, 3))


class IntegratedGradients:
    """Integrated Gradients of one emotion network.

    Args:
        net: the network to explain.
        tolerance: relative completeness tolerance; a larger gap is logged as a warning.
    """

    def __init__(self, net: Network, tolerance: float = 1e-3) -> None:
        self.net = net
        self.tolerance = tolerance

    def attribute(
        self,
        inputs: np.ndarray,
        baselines: np.ndarray | float = 0.0,
        n_steps: int = 32,
        method: Method = "gausslegendre",
        batch_size: int = 4096,
    ) -> Attribution:
        """Attribute the calibrated logit of each window to its coordinates.

        Args:
            inputs: (N, T, L, 3) windows.
            baselines: a scalar, one window (T, L, 3) for all inputs, or (N, T, L, 3).
            n_steps: quadrature points on the path.
            method: quadrature rule.
            batch_size: most path points evaluated in one gradient call.
        """
        x = np.asarray(inputs, dtype=np.float64)
        if x.ndim != 4:
            raise ValueError(f"inputs must be (N, T, L, 3), got {x.shape}")
        base = np.broadcast_to(np.asarray(baselines, dtype=np.float64), x.shape)
        alphas, weights = quadrature(method, n_steps)
        diff = x - base
        grad_sum = np.zeros_like(x)
        per_call = max(1, batch_size // max(len(alphas), 1))
        for s in range(0, len(x), per_call):
            xs, bs, ds = x[s : s + per_call], base[s : s + per_call], diff[s : s + per_call]
            path = bs[None] + alphas[:, None, None, None, None] * ds[None]
            _, g = input_gradient(self.net, path.reshape((-1,) + x.shape[1:]))
            g = g.reshape((len(alphas), len(xs)) + x.shape[1:])
            grad_sum[s : s + per_call] = np.tensordot(weights, g, axes=(0, 0))
        attributions = diff * grad_sum
        out, _ = input_gradient(self.net, x)
        base_out, _ = input_gradient(self.net, np.ascontiguousarray(base))
        result = Attribution(attributions, out, base_out, np.zeros(len(x)))
        result.delta = result.total - (out - base_out)
        scale = np.maximum(1.0, np.abs(out - base_out))
        worst = float(np.max(np.abs(result.delta) / scale)) if len(x) else 0.0
        if worst > self.tolerance:
            log.warning("integrated gradients: completeness gap %.2e (relative) exceeds %.0e; use more n_steps", worst, self.tolerance)
        return result
