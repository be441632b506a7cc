"""Dataset-level relevance of each landmark for an emotion (the paper's improvement over
per-sample Integrated Gradients).

For every explained sample (a window of the emotion's positive class), IG attributes the
network's calibrated logit to the window's coordinates against the chosen baselines
(:mod:`realtime_fer.explain.baselines`). Per landmark, the **relevance** is the magnitude of its
attribution, ``sum over x, y, z and frames of |attribution|``, averaged over the samples and
normalised to sum 1 over the landmarks; the **signed mean** (attribution summed over x, y, z and
frames, averaged over samples, in logit units) tells whether the landmark's position pushes
towards the emotion (> 0) or away from it.

Pooled inputs (:func:`landmark_relevance` with ``pooled=True``; used by pruning on training
features) attribute the time-pooled features instead: for still images (every frame the same)
that is exactly the per-frame attribution summed over time.

**Regions and blendshapes** (what ``top`` of ``relevance.json`` lists): per sample, the signed
attributions of the landmarks of each named region are summed (the same grouping as the live
messages, :func:`~realtime_fer.explain.regions.region_groups`), and each blendshape's over time;
an item's relevance is the mean over the samples of the *size of that sum*, normalised to sum 1
over the regions and blendshapes together. Opposite attributions of neighbouring landmarks
cancel inside their region, as they do in the network's output.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from realtime_fer.explain.baselines import BaselineSet, shipped_neutral_blendshapes
from realtime_fer.explain.gradients import Precision
from realtime_fer.explain.integrated_gradients import Attribution, IntegratedGradients, Method
from realtime_fer.explain.regions import face_regions, region_groups
from realtime_fer.models.network import Network, pool

log = logging.getLogger(__name__)


def attribute_against(
    ig: IntegratedGradients,
    inputs: np.ndarray,
    baselines: BaselineSet,
    landmarks: Sequence[int],
    *,
    pooled: bool = False,
    n_steps: int = 16,
    method: Method = "gausslegendre",
    batch_size: int = 4096,
    blendshapes: np.ndarray | None = None,
) -> Attribution:
    """IG of N inputs against a :class:`BaselineSet`: ``sum_k weights[n, k] * IG(x_n; face_k)``.

    For networks that read blendshapes, ``blendshapes`` are the windows' scores (N, T, B) (not
    needed with ``pooled``: the pooled features hold them); the blendshape part of every
    baseline is the mean of RAF-DB train's neutral faces (their landmark part is the baseline
    face).

    Args:
        ig: the engine of the emotion's network.
        inputs: (N, T, L, 3) windows on ``landmarks``, or with ``pooled`` (N, D) pooled features.
        baselines: N rows of weights over K baseline faces (full mesh).
        landmarks: the mesh indices the network sees (selects the baseline faces' landmarks).

    Returns:
        The weighted :class:`Attribution`; its ``baseline_output`` is the weighted mean of the
        baselines' outputs, so completeness (``delta``) holds for the combination.
    """
    x = np.asarray(inputs)
    n = len(x)
    net_blend = ig.net.n_blendshapes
    if net_blend and not pooled and blendshapes is None:
        raise ValueError("this network reads blendshapes: pass the windows' blendshapes")
    # the blendshape part of every baseline: the neutral faces' mean scores, held still
    blend_base = np.repeat(shipped_neutral_blendshapes()[None], ig.net.window_length, axis=0) if net_blend else None
    if baselines.weights.shape[0] != n:
        raise ValueError(f"{baselines.weights.shape[0]} baseline weight rows for {n} inputs")
    net = ig.net
    shape = (n, len(net.pooling), net.n_landmarks, 3) if pooled else x.shape
    blend_attr: np.ndarray | None = None
    attributions = np.zeros(shape, ig.dtype)
    output = np.zeros(n, ig.dtype)
    base_out = np.zeros(n, ig.dtype)
    delta = np.zeros(n, ig.dtype)
    for k in range(baselines.faces.shape[0]):
        w = baselines.weights[:, k]
        rows = np.nonzero(w > 0)[0]
        if not len(rows):
            continue
        window = baselines.windows(k, net.window_length, landmarks)
        if pooled:
            base_pooled = pool(window[None], net.pooling, ig.dtype, None if blend_base is None else blend_base[None])[0]
            a = ig.attribute_pooled(x[rows], base_pooled, n_steps=n_steps, method=method, batch_size=batch_size)
        elif net_blend:
            a = ig.attribute(x[rows], window, n_steps=n_steps, method=method, batch_size=batch_size, blendshapes=np.asarray(blendshapes)[rows], blendshape_baselines=blend_base)
        else:
            a = ig.attribute(x[rows], window, n_steps=n_steps, method=method, batch_size=batch_size)
        wk = w[rows].astype(ig.dtype)
        attributions[rows] += wk[:, None, None, None] * a.attributions
        if a.blendshapes is not None:
            if blend_attr is None:
                blend_attr = np.zeros((n,) + a.blendshapes.shape[1:], ig.dtype)
            blend_attr[rows] += wk[:, None, None] * a.blendshapes
        base_out[rows] += wk * a.baseline_output
        delta[rows] += wk * a.delta
        output[rows] = a.output
    return Attribution(attributions, output, base_out, delta, blend_attr)


@dataclass
class LandmarkRelevance:
    """Dataset-level relevance of an emotion network's landmarks."""

    emotion: str
    landmarks: np.ndarray
    """(L,) mesh indices, in the network's (bundle's) order."""
    relevance: np.ndarray
    """(L,) mean |attribution| normalised to sum 1."""
    mean_abs: np.ndarray
    """(L,) mean |attribution| (x, y, z and time summed), logit units."""
    signed_mean: np.ndarray
    """(L,) mean signed attribution, logit units."""
    n_samples: int
    baseline: dict[str, Any] = field(default_factory=dict)
    completeness: dict[str, float] = field(default_factory=dict)
    region_names: tuple[str, ...] = ()
    """The named regions of :attr:`landmarks` (:func:`region_groups` order)."""
    region_mean_abs: np.ndarray = field(default_factory=lambda: np.zeros(0))
    """(R,) mean over samples of |signed attribution summed over the region|, logit units."""
    region_signed_mean: np.ndarray = field(default_factory=lambda: np.zeros(0))
    """(R,) mean signed attribution of each region, logit units."""
    blendshape_names: tuple[str, ...] = ()
    """Names of the network's blendshapes (empty for landmark-only networks)."""
    blendshape_mean_abs: np.ndarray = field(default_factory=lambda: np.zeros(0))
    """(B,) mean |attribution| of each blendshape (time summed), logit units."""
    blendshape_signed_mean: np.ndarray = field(default_factory=lambda: np.zeros(0))
    """(B,) mean signed attribution of each blendshape, logit units."""

    def order(self) -> np.ndarray:
        """Positions into :attr:`landmarks`, most relevant first (ties: lower index first)."""
        return np.lexsort((self.landmarks, -self.relevance))

    def order_by_region(self) -> np.ndarray:
        """Positions into :attr:`landmarks`, ranked through their regions: the landmarks of the
        region with the largest :attr:`region_mean_abs` first, each region's landmarks by their
        own relevance (ties: lower index first). A region's mean |summed attribution| does not
        count the parts of its landmarks' attributions that cancel within it."""
        if len(self.region_mean_abs) == 0:
            return self.order()
        index = region_groups(self.landmarks).index
        return np.lexsort((self.landmarks, -self.relevance, -self.region_mean_abs[index]))

    def order_spread(self) -> np.ndarray:
        """Positions into :attr:`landmarks`, spread over the regions: the most relevant landmark
        of every region (regions by decreasing :attr:`region_mean_abs`), then the second of
        every region that has one, and so on."""
        if len(self.region_mean_abs) == 0:
            return self.order()
        by_region = self.order_by_region()
        index = region_groups(self.landmarks).index[by_region]
        rank_in_region = np.zeros(len(by_region), np.int64)
        for r in np.unique(index):
            rank_in_region[index == r] = np.arange(int((index == r).sum()))
        return by_region[np.lexsort((np.arange(len(by_region)), rank_in_region))]

    def most_relevant(self, k: int, by: str = "landmark") -> list[int]:
        """The ``k`` most relevant mesh indices, most relevant first, ranked by their own
        relevance (``by="landmark"``), through their regions' (``by="region"``,
        :meth:`order_by_region`) or spread over the regions (``by="spread"``,
        :meth:`order_spread`)."""
        orders = {"landmark": self.order, "region": self.order_by_region, "spread": self.order_spread}
        if by not in orders:
            raise ValueError(f"by must be one of {', '.join(orders)}, got {by!r}")
        return [int(self.landmarks[i]) for i in orders[by]()[:k]]

    def top(self, k: int = 10) -> list[dict[str, Any]]:
        """The ``k`` most relevant landmarks with region names."""
        names = face_regions().names
        return [
            {"landmark": int(self.landmarks[i]), "region": names[int(self.landmarks[i])], "relevance": float(self.relevance[i]), "signed": float(self.signed_mean[i])}
            for i in self.order()[:k]
        ]

    def items(self) -> list[dict[str, Any]]:
        """Every region and blendshape, most relevant first: ``{"region" | "blendshape": name,
        "relevance": share of the regions' and blendshapes' mean |attribution| (sums to 1),
        "signed": mean signed attribution (logit units)}``."""
        sizes = np.concatenate([self.region_mean_abs, self.blendshape_mean_abs])
        signed = np.concatenate([self.region_signed_mean, self.blendshape_signed_mean])
        keys = [("region", n) for n in self.region_names] + [("blendshape", n) for n in self.blendshape_names]
        total = float(sizes.sum())
        share = sizes / total if total > 0 else np.full(len(sizes), 1.0 / max(len(sizes), 1))
        order = sorted(range(len(keys)), key=lambda k: (-share[k], keys[k][1]))
        return [{keys[k][0]: keys[k][1], "relevance": float(share[k]), "signed": float(signed[k])} for k in order]

    def to_dict(self, top_k: int = 10) -> dict[str, Any]:
        """JSON-ready form (the per-emotion entry of ``relevance.json``)."""
        names = face_regions().names
        items = self.items()
        return {
            "n_samples": self.n_samples,
            "baseline": self.baseline,
            "completeness": self.completeness,
            "landmarks": [int(i) for i in self.landmarks],
            "relevance": [round(float(v), 8) for v in self.relevance],
            "signed_mean": [round(float(v), 8) for v in self.signed_mean],
            "regions": [names[int(i)] for i in self.landmarks],
            "top": [{k: (round(v, 8) if isinstance(v, float) else v) for k, v in t.items()} for t in items[:top_k]],
            "top_landmarks": self.top(top_k),
            "region_relevance": {t["region"]: round(t["relevance"], 6) for t in items if "region" in t},
            "blendshape_relevance": {t["blendshape"]: round(t["relevance"], 6) for t in items if "blendshape" in t},
        }


def completeness_stats(attr: Attribution) -> dict[str, float]:
    """Summary of the completeness gaps of a batch of attributions."""
    gap = np.abs(attr.delta)
    return {
        "mean_abs_delta": float(gap.mean()),
        "max_abs_delta": float(gap.max()),
        "max_relative_delta": float(attr.relative_gap().max()),
        "mean_output": float(attr.output.mean()),
        "mean_baseline_output": float(attr.baseline_output.mean()),
        "mean_output_difference": float((attr.output - attr.baseline_output).mean()),
    }


def landmark_relevance(
    net: Network,
    inputs: np.ndarray,
    baselines: BaselineSet,
    landmarks: Sequence[int],
    *,
    emotion: str = "",
    pooled: bool = False,
    n_steps: int = 16,
    method: Method = "gausslegendre",
    dtype: Precision = "float32",
    batch_size: int = 4096,
    tolerance: float = 1e-2,
    blendshapes: np.ndarray | None = None,
    blendshape_names: Sequence[str] | None = None,
    visible_only: bool = True,
    talking_baseline: bool = True,
) -> LandmarkRelevance:
    """Dataset-level relevance of ``net``'s landmarks over N samples (see the module docstring).

    Args:
        net: the emotion's network; ``landmarks`` its mesh indices (len = ``net.n_landmarks``).
        inputs: (N, T, L, 3) windows, or with ``pooled`` (N, D) pooled features.
        baselines: the samples' baselines (:meth:`BaselineBank.baselines`).
        n_steps, method: quadrature of the path integral.
        dtype: arithmetic precision (``float32``: ~3x faster, gaps ~1e-5 of the output).
        tolerance: relative completeness gap above which a warning is logged.
        blendshape_names: the network's blendshape names (default ``blendshape_<k>``).
        visible_only: move every baseline along the directions the network cannot see first
            (:mod:`realtime_fer.explain.invisible`), as the live stream does.
        talking_baseline: with ``visible_only``, the baselines also talk as each window does
            along those directions (windows only, not ``pooled``), as the live stream does.

    Raises:
        ValueError: no sample, or ``landmarks`` does not match the network.
    """
    lms = np.asarray(landmarks, np.int64)
    if len(lms) != net.n_landmarks:
        raise ValueError(f"{len(lms)} landmark indices for a network on {net.n_landmarks} landmarks")
    if len(inputs) == 0:
        raise ValueError(f"no sample to explain {emotion or 'the emotion'} with")
    ig = IntegratedGradients(net, tolerance=tolerance, dtype=dtype, visible_only=visible_only, talking_baseline=talking_baseline)
    attr = attribute_against(ig, inputs, baselines, lms, pooled=pooled, n_steps=n_steps, method=method, batch_size=batch_size, blendshapes=blendshapes)
    mean_abs = attr.per_landmark_abs().mean(axis=0).astype(np.float64)
    total = mean_abs.sum()
    relevance = mean_abs / total if total > 0 else np.full(len(lms), 1.0 / len(lms))
    groups = region_groups(lms)
    per_region = groups.sum(attr.per_landmark().astype(np.float64))
    per_bs = attr.per_blendshape()
    per_bs = np.zeros((len(inputs), 0)) if per_bs is None else per_bs.astype(np.float64)
    bs_names = tuple(blendshape_names) if blendshape_names is not None else tuple(f"blendshape_{k}" for k in range(per_bs.shape[1]))
    if len(bs_names) != per_bs.shape[1]:
        raise ValueError(f"{len(bs_names)} blendshape names for a network on {per_bs.shape[1]} blendshapes")
    return LandmarkRelevance(
        emotion=emotion,
        landmarks=lms,
        relevance=relevance,
        mean_abs=mean_abs,
        signed_mean=attr.per_landmark().mean(axis=0).astype(np.float64),
        n_samples=len(inputs),
        baseline=baselines.summary(),
        completeness=completeness_stats(attr),
        region_names=groups.names,
        region_mean_abs=np.abs(per_region).mean(axis=0),
        region_signed_mean=per_region.mean(axis=0),
        blendshape_names=bs_names,
        blendshape_mean_abs=np.abs(per_bs).mean(axis=0),
        blendshape_signed_mean=per_bs.mean(axis=0),
    )
