"""Are the explanations faithful? Deletion and insertion curves and an infidelity measure at the
level the messages show: named face regions and blendshapes ("items").

For every explained window ``x`` of an emotion, Integrated Gradients (the stream's engine and
baseline ``b``) gives each item a signed weight (its landmarks' attributions summed, or the
blendshape's); the items are ranked by ``|weight|``. Replacing an item by the baseline means
setting all frames of its landmarks (or its blendshape score) to the baseline's values.

* **Deletion**: ``|F(x) - F(x without the top k items)|`` against the same for ``k`` random
  items (averaged over random draws): a faithful ranking moves the output more.
* **Insertion**: starting from the baseline, put back the top ``k`` items of ``x``; the
  remaining gap ``|F(x) - F(b with the top k items)| / |F(x) - F(b)|`` falls faster than for
  random items when the ranking is faithful.
* **Infidelity** (after Yeh et al. 2019, "On the (in)fidelity and sensitivity of explanations",
  with perturbations that delete random sets of items): the attributions predict that deleting
  a set ``S`` changes the output by ``sum_{i in S} w_i``; infidelity is the mean squared error
  of that prediction against the true change ``F(x) - F(x without S)``, reported relative to
  the mean squared true change (0: exact; 1: no better than predicting no change), with the
  correlation of predicted and true changes.

``F`` is the calibrated logit (:mod:`realtime_fer.explain.gradients`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from realtime_fer.explain.integrated_gradients import IntegratedGradients, Method
from realtime_fer.explain.regions import RegionGroups, region_groups
from realtime_fer.models.network import Network

log = logging.getLogger(__name__)


@dataclass
class ItemAttribution:
    """Attributions of N windows over the items (regions, then blendshapes) of one network."""

    weights: np.ndarray
    """(N, I) signed attribution of each item (logit units)."""
    labels: list[dict[str, str]]
    """(I,) ``{"region": name}`` or ``{"blendshape": name}``, the message entries' keys."""
    output: np.ndarray
    """(N,) F(x)."""
    baseline_output: np.ndarray
    """(N,) F(b)."""

    @property
    def n_regions(self) -> int:
        return sum(1 for l in self.labels if "region" in l)

    def ranking(self) -> np.ndarray:
        """(N, I) items by decreasing ``|weight|`` (ties: lower index first)."""
        return np.argsort(-np.abs(self.weights), axis=1, kind="stable")

    def top_names(self, k: int) -> list[list[str]]:
        """The names of each window's ``k`` largest items."""
        order = self.ranking()[:, :k]
        return [[next(iter(self.labels[m].values())) for m in row] for row in order]


class ItemModel:
    """One emotion network seen through its items: attribute, and evaluate windows with some
    items replaced by the baseline.

    Args:
        net: the network; ``landmarks`` its mesh indices; ``blendshape_names`` the names of
            the blendshapes it reads (empty for a landmark-only network).
    """

    def __init__(self, net: Network, landmarks: Sequence[int], blendshape_names: Sequence[str] = (), *, dtype: str = "float64") -> None:
        if len(landmarks) != net.n_landmarks:
            raise ValueError(f"{len(landmarks)} landmark indices for a network on {net.n_landmarks} landmarks")
        if len(blendshape_names) != net.n_blendshapes:
            raise ValueError(f"{len(blendshape_names)} blendshape names for a network on {net.n_blendshapes} blendshapes")
        self.net = net
        self.groups: RegionGroups = region_groups(landmarks)
        self.blendshape_names = list(blendshape_names)
        self.labels = [{"region": n} for n in self.groups.names] + [{"blendshape": n} for n in self.blendshape_names]
        self.engine = IntegratedGradients(net, tolerance=1e-2, dtype=dtype)  # type: ignore[arg-type]
        self.dtype = dtype

    @property
    def n_items(self) -> int:
        return len(self.labels)

    def logit(self, windows: np.ndarray, blendshapes: np.ndarray | None = None, chunk: int = 4096) -> np.ndarray:
        """Calibrated logit (N,) of windows (N, T, L, 3) (and their blendshapes (N, T, B))."""
        out = np.empty(len(windows), np.float64)
        for s in range(0, len(windows), chunk):
            b = None if blendshapes is None else blendshapes[s : s + chunk]
            pooled = self.net.pooled(windows[s : s + chunk], b, self.dtype)
            out[s : s + chunk] = self.net.platt_a * self.net.score_pooled(pooled).astype(np.float64) + self.net.platt_b
        return out

    def attribute(self, windows: np.ndarray, baselines: np.ndarray, blendshapes: np.ndarray | None = None, blendshape_baselines: np.ndarray | None = None, *, n_steps: int = 16, method: Method = "gausslegendre") -> ItemAttribution:
        """IG of each window against its baseline (N, T, L, 3), summed per item."""
        extra = {} if not self.net.n_blendshapes else {"blendshapes": blendshapes, "blendshape_baselines": blendshape_baselines}
        attr = self.engine.attribute(windows, baselines, n_steps=n_steps, method=method, **extra)
        weights = self.groups.sum(attr.per_landmark().astype(np.float64))
        per_bs = attr.per_blendshape()
        if per_bs is not None:
            weights = np.concatenate([weights, per_bs.astype(np.float64)], axis=1)
        return ItemAttribution(weights, self.labels, attr.output.astype(np.float64), attr.baseline_output.astype(np.float64))

    def replace(self, windows: np.ndarray, sources: np.ndarray, mask: np.ndarray, blendshapes: np.ndarray | None = None, blend_sources: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None]:
        """``windows`` with the items of ``mask`` (N, I) taken from ``sources`` (same shapes):
        the baseline for a deletion, the explained window for an insertion."""
        r = self.groups.matrix.shape[1]
        lm_mask = mask[:, :r].astype(np.float32) @ self.groups.matrix.T  # (N, L) 1 where the landmark's region is taken
        take = lm_mask[:, None, :, None] > 0.5
        out = np.where(take, sources, windows)
        out_b = None
        if blendshapes is not None:
            out_b = np.where(mask[:, None, r:], blend_sources, blendshapes)
        return out, out_b


def _masks_top(order: np.ndarray, k: int, n_items: int) -> np.ndarray:
    mask = np.zeros((len(order), n_items), bool)
    np.put_along_axis(mask, order[:, :k], True, axis=1)
    return mask


def _masks_random(rng: np.random.Generator, n: int, k: int, n_items: int) -> np.ndarray:
    keys = rng.random((n, n_items))
    return _masks_top(np.argsort(keys, axis=1), k, n_items)


def faithfulness(
    model: ItemModel,
    windows: np.ndarray,
    baselines: np.ndarray,
    blendshapes: np.ndarray | None = None,
    blendshape_baselines: np.ndarray | None = None,
    *,
    ks: Sequence[int] = (1, 2, 3, 5, 8, 13),
    n_random: int = 20,
    n_perturbations: int = 50,
    delete_probability: float = 0.25,
    n_steps: int = 16,
    seed: int = 0,
) -> dict[str, Any]:
    """Deletion and insertion curves and infidelity of one emotion's explanations of N windows
    (see the module docstring). Baselines are (N, T, L, 3) (and (N, T, B)).

    Returns a JSON-ready dict: ``ks``, ``deletion`` {``top``, ``random``: mean |output change|
    per k; ``top_beats_random``: share of windows where the top k moved the output more than
    the mean of the random draws}, ``insertion`` {``top``, ``random``: mean remaining relative
    gap per k}, ``infidelity`` {``relative``, ``correlation``}, ``n_windows``, ``n_items``,
    ``mean_output_change`` (mean |F(x) - F(b)|).
    """
    x = np.asarray(windows, np.float64)
    base = np.ascontiguousarray(np.broadcast_to(np.asarray(baselines, np.float64), x.shape))
    xb = bb = None
    if model.net.n_blendshapes:
        xb = np.asarray(blendshapes, np.float64)
        bb = np.ascontiguousarray(np.broadcast_to(np.asarray(blendshape_baselines, np.float64), xb.shape))
    n, n_items = len(x), model.n_items
    if n == 0:
        raise ValueError("no window to measure")
    rng = np.random.default_rng(seed)
    attr = model.attribute(x, base, xb, bb, n_steps=n_steps)
    order = attr.ranking()
    fx, fb = attr.output, attr.baseline_output
    gap = np.maximum(np.abs(fx - fb), 1e-6)
    ks = [k for k in ks if 1 <= k <= n_items]
    deletion_top, deletion_random, beats, insertion_top, insertion_random = [], [], [], [], []
    for k in ks:
        mask = _masks_top(order, k, n_items)
        xd, xbd = model.replace(x, base, mask, xb, bb)
        top_move = np.abs(fx - model.logit(xd, xbd))
        xi, xbi = model.replace(base, x, mask, bb, xb)
        top_gap = np.abs(fx - model.logit(xi, xbi)) / gap
        rand_move = np.zeros(n)
        rand_gap = np.zeros(n)
        for _ in range(n_random):
            m = _masks_random(rng, n, k, n_items)
            xd, xbd = model.replace(x, base, m, xb, bb)
            rand_move += np.abs(fx - model.logit(xd, xbd)) / n_random
            xi, xbi = model.replace(base, x, m, bb, xb)
            rand_gap += np.abs(fx - model.logit(xi, xbi)) / gap / n_random
        deletion_top.append(float(top_move.mean()))
        deletion_random.append(float(rand_move.mean()))
        beats.append(float((top_move > rand_move).mean()))
        insertion_top.append(float(top_gap.mean()))
        insertion_random.append(float(rand_gap.mean()))
    pred, true = [], []
    for _ in range(n_perturbations):
        m = rng.random((n, n_items)) < delete_probability
        xd, xbd = model.replace(x, base, m, xb, bb)
        pred.append((attr.weights * m).sum(axis=1))
        true.append(fx - model.logit(xd, xbd))
    p, t = np.concatenate(pred), np.concatenate(true)
    corr = float(np.corrcoef(p, t)[0, 1]) if p.std() > 0 and t.std() > 0 else 0.0
    return {
        "n_windows": int(n),
        "n_items": int(n_items),
        "n_regions": attr.n_regions,
        "mean_output_change": float(np.abs(fx - fb).mean()),
        "ks": [int(k) for k in ks],
        "deletion": {"top": deletion_top, "random": deletion_random, "top_beats_random": beats},
        "insertion": {"top": insertion_top, "random": insertion_random},
        "infidelity": {"relative": float(((p - t) ** 2).mean() / max((t**2).mean(), 1e-12)), "correlation": corr, "delete_probability": delete_probability, "n_perturbations": n_perturbations},
    }
