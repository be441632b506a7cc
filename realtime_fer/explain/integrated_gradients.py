"""Integrated Gradients for our emotion networks, with a Captum-like ``attribute()`` API.

IG attributes the difference ``F(x) - F(x')`` between an input ``x`` and a baseline ``x'`` to
the input's coordinates by integrating the gradient along the straight path
``x' + a (x - x')``, ``a`` in [0, 1]:

    IG_i(x) = (x_i - x'_i) * integral_0^1 dF/dx_i (x' + a (x - x')) da

The integral is computed by Gauss-Legendre quadrature (default; exact for polynomials up to
degree 2n-1) or a Riemann rule. The path is integrated in the pooled feature space (T times
cheaper) and spread back over the frames. For linear pooling (mean, delta) this is identical to
integrating over windows. Spread and extremes (std, min, max) are not linear in general, but
along the straight path from a *static* baseline face (every baseline we use) they are:
``min_t(b + a (x_t - b)) = b + a (min_t x_t - b)``, and the spread grows as ``a`` (up to the
tiny ``STD_EPSILON``), so the pooled path is the window path; their attribution is shared
equally by the window's frames. The attributions of a window sum to ``F(x) - F(x')`` up to the
quadrature error; every call measures that *completeness* gap and reports it. ``F`` is the
calibrated logit (see :mod:`realtime_fer.explain.gradients`).
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from typing import Literal

import numpy as np

from realtime_fer.explain.gradients import Precision, expand_gradient, pooled_block, pooled_gradient
from realtime_fer.models.network import LINEAR_POOLINGS, Network

log = logging.getLogger(__name__)

Method = Literal["gausslegendre", "riemann_left", "riemann_right", "riemann_middle", "riemann_trapezoid"]


@functools.lru_cache(maxsize=32)
def quadrature(method: Method, n_steps: int) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_quadrature`, cached (the live stream asks for the same rule every frame) and
    returned read-only."""
    alphas, weights = _quadrature(method, n_steps)
    alphas.flags.writeable = False
    weights.flags.writeable = False
    return alphas, weights


def _quadrature(method: Method, n_steps: int) -> tuple[np.ndarray, np.ndarray]:
    """Nodes ``alphas`` in [0, 1] and weights (summing to 1) of a quadrature rule, matching
    Captum's approximation methods of the same names (``riemann_trapezoid`` is the textbook
    trapezoid rule, weights 1/(n-1) with halved ends; Captum 0.9 uses 1/n with halved ends,
    which sum to (n-1)/n, so only that one differs from Captum)."""
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
    """(N, T, L, 3): contribution of every coordinate of every frame; from
    :meth:`IntegratedGradients.attribute_pooled`, (N, P, L, 3): of every pooled part (time
    already combined)."""
    output: np.ndarray
    """(N,) F(x), the explained output (calibrated logit)."""
    baseline_output: np.ndarray
    """(N,) F(baseline)."""
    delta: np.ndarray
    """(N,) completeness gap: sum(attributions) - (output - baseline_output)."""
    blendshapes: np.ndarray | None = None
    """(N, T, B) (or (N, P, B) from ``attribute_pooled``): contribution of every blendshape
    score, for networks that read them; ``None`` otherwise."""

    @property
    def total(self) -> np.ndarray:
        """(N,) sum of all attributions of each window (landmarks and blendshapes)."""
        out = self.attributions.reshape(len(self.attributions), -1).sum(axis=1)
        if self.blendshapes is not None:
            out = out + self.blendshapes.reshape(len(self.blendshapes), -1).sum(axis=1)
        return out

    def per_blendshape(self) -> np.ndarray | None:
        """(N, B) signed attribution of each blendshape (time summed), or ``None``."""
        return None if self.blendshapes is None else self.blendshapes.sum(axis=1)

    def per_landmark(self) -> np.ndarray:
        """(N, L) signed attribution of each landmark (x, y, z and time summed)."""
        return self.attributions.sum(axis=(1, 3))

    def per_landmark_abs(self) -> np.ndarray:
        """(N, L) |attribution| of each landmark, summed over x, y, z and time."""
        return np.abs(self.attributions).sum(axis=(1, 3))

    def relative_gap(self) -> np.ndarray:
        """(N,) |delta| relative to max(1, |output - baseline_output|)."""
        return np.abs(self.delta) / np.maximum(1.0, np.abs(self.output - self.baseline_output))


class IntegratedGradients:
    """Integrated Gradients of one emotion network.

    Args:
        net: the network to explain.
        tolerance: relative completeness tolerance; a larger gap is logged as a warning.
        dtype: arithmetic precision (``float32`` is about 3x faster, with completeness gaps of
            ~1e-5 instead of ~1e-12 beyond the quadrature error).
    """

    def __init__(self, net: Network, tolerance: float = 1e-3, dtype: Precision = "float64", *, visible_only: bool = False, talking_baseline: bool = False) -> None:
        self.net = net
        self.tolerance = tolerance
        self.dtype = dtype
        self.invisible = None
        """With ``visible_only``: the directions of the pooled ``mean`` part the network cannot
        see (:class:`~realtime_fer.explain.invisible.InvisibleSubspace`); every baseline is
        first moved along them to the input's position, so their zero-sum weights are not
        attributed (``F(baseline)`` is unchanged)."""
        self.talking_baseline = talking_baseline
        """With ``visible_only``: :meth:`attribute` also adds to every baseline window the
        explained window's motion along those directions (its frames minus their mean,
        projected), so the baseline face talks as the window does and the talking spread is
        not attributed (windows only; :meth:`attribute_pooled` cannot)."""
        if visible_only:
            from realtime_fer.explain.invisible import InvisibleSubspace

            self.invisible = InvisibleSubspace(net)

    def integrated_gradient(
        self,
        pooled: np.ndarray,
        pooled_baselines: np.ndarray,
        n_steps: int = 32,
        method: Method = "gausslegendre",
        batch_size: int = 4096,
    ) -> np.ndarray:
        """The path integral of the pooled-feature gradient, ``integral_0^1 dF/dp (p' + a (p - p')) da``,
        for pooled inputs (N, D) and baselines (N, D) (or one (D,) for all)."""
        x = np.asarray(pooled, dtype=self.dtype)
        base = np.broadcast_to(np.asarray(pooled_baselines, dtype=self.dtype), x.shape)
        alphas, weights = quadrature(method, n_steps)
        alphas, weights = alphas.astype(self.dtype), weights.astype(self.dtype)
        out = np.zeros_like(x)
        per_call = max(1, batch_size // max(len(alphas), 1))
        for s in range(0, len(x), per_call):
            bs, ds = base[s : s + per_call], x[s : s + per_call] - base[s : s + per_call]
            path = bs[None] + alphas[:, None, None] * ds[None]
            _, g = pooled_gradient(self.net, path.reshape(-1, x.shape[1]), self.dtype)
            out[s : s + per_call] = np.tensordot(weights, g.reshape(len(alphas), len(bs), x.shape[1]), axes=(0, 0))
        return out

    def attribute(
        self,
        inputs: np.ndarray,
        baselines: np.ndarray | float = 0.0,
        n_steps: int = 32,
        method: Method = "gausslegendre",
        batch_size: int = 4096,
        *,
        blendshapes: np.ndarray | None = None,
        blendshape_baselines: np.ndarray | float | None = None,
    ) -> Attribution:
        """Attribute the calibrated logit of each window to its coordinates.

        Args:
            inputs: (N, T, L, 3) windows.
            baselines: a scalar, one window (T, L, 3) for all inputs, or (N, T, L, 3).
            n_steps: quadrature points on the path.
            method: quadrature rule.
            batch_size: most path points evaluated in one gradient call.
            blendshapes: (N, T, B) blendshape scores of the windows, for networks that read them.
            blendshape_baselines: their baseline: a scalar, (T, B), (B,) held over the window,
                or (N, T, B).
        """
        x = np.asarray(inputs, dtype=self.dtype)
        if x.ndim != 4:
            raise ValueError(f"inputs must be (N, T, L, 3), got {x.shape}")
        base = np.broadcast_to(np.asarray(baselines, dtype=self.dtype), x.shape)
        xb = bb = None
        if self.net.n_blendshapes:
            if blendshapes is None or blendshape_baselines is None:
                raise ValueError("this network reads blendshapes: pass blendshapes and blendshape_baselines")
            xb = np.asarray(blendshapes, dtype=self.dtype)
            bb = np.ascontiguousarray(np.broadcast_to(np.asarray(blendshape_baselines, dtype=self.dtype), xb.shape))
        if self.invisible is not None and self.invisible.rank:
            if self.talking_baseline:
                base = base + self.invisible.motion(x)
            base, bb = self.invisible.shift(x, base, xb, bb)
            base = np.ascontiguousarray(base, dtype=self.dtype)
            bb = None if bb is None else np.ascontiguousarray(bb, dtype=self.dtype)
        px = self.net.pooled(x, xb, self.dtype)
        pb = self.net.pooled(np.ascontiguousarray(base), bb, self.dtype)
        ig = self.integrated_gradient(px, pb, n_steps, method, batch_size)
        attr = self._per_frame(x, base, px, pb, ig, "landmarks")
        battr = self._per_frame(xb, bb, px, pb, ig, "blendshapes") if xb is not None else None
        return self._finish(attr, px, pb, battr)

    def _per_frame(self, x: np.ndarray, base: np.ndarray, px: np.ndarray, pb: np.ndarray, ig: np.ndarray, block: str) -> np.ndarray:
        """Per-frame attributions of one input (``block``: the window (N, T, L, 3) or its
        blendshapes (N, T, B)) from the integrated pooled gradient: exact per frame for linear
        parts (mean, delta); a spread or extreme's attribution (the part's ``(p - p') * IG``) is
        shared equally by the window's frames."""
        net = self.net
        n, t = len(x), x.shape[1]
        start, inner = pooled_block(net, block)
        width = int(np.prod(inner))
        out = (x - base) * expand_gradient(net, ig, t, parts=LINEAR_POOLINGS, block=block)
        for part, p in enumerate(net.pooling):
            if p not in LINEAR_POOLINGS:
                cols = slice(start + part * width, start + (part + 1) * width)
                out += ((px[:, cols] - pb[:, cols]) * ig[:, cols]).reshape((n, 1) + inner) / t
        return out

    def attribute_pooled(
        self,
        pooled: np.ndarray,
        pooled_baselines: np.ndarray,
        n_steps: int = 32,
        method: Method = "gausslegendre",
        batch_size: int = 4096,
    ) -> Attribution:
        """Attributions of pooled features (N, D) against pooled baselines ((N, D) or (D,)),
        shaped (N, P, L, 3) (P pooling parts), and (N, P, B) for the blendshapes of networks
        that read them. For windows whose frames are all equal (still images) this is the
        window attribution summed over time."""
        px = np.asarray(pooled, dtype=self.dtype)
        pb = np.broadcast_to(np.asarray(pooled_baselines, dtype=self.dtype), px.shape)
        if self.invisible is not None and self.invisible.rank:
            pb = self.invisible.shift_pooled(px, pb).astype(self.dtype)
        attr = (px - pb) * self.integrated_gradient(px, pb, n_steps, method, batch_size)
        p = len(self.net.pooling)
        start, inner = pooled_block(self.net, "blendshapes")
        lm = attr[:, :start].reshape((len(px), p) + pooled_block(self.net, "landmarks")[1])
        blend = attr[:, start:].reshape((len(px), p) + inner) if self.net.n_blendshapes else None
        return self._finish(lm, px, np.ascontiguousarray(pb), blend)

    def _finish(self, attributions: np.ndarray, px: np.ndarray, pb: np.ndarray, blendshapes: np.ndarray | None = None) -> Attribution:
        both, _ = pooled_gradient(self.net, np.concatenate([px, pb]), self.dtype)  # one pass for both
        out, base_out = both[: len(px)], both[len(px) :]
        result = Attribution(attributions, out, base_out, np.zeros(len(px)), blendshapes)
        result.delta = result.total - (out - base_out)
        worst = float(np.max(result.relative_gap())) if len(px) else 0.0
        if worst > self.tolerance:
            log.warning("integrated gradients: completeness gap %.2e (relative) exceeds %.0e; use more n_steps", worst, self.tolerance)
        return result
