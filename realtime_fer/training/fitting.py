"""Fitting, calibrating and scoring per-emotion models on pooled features.

Shared by ``realtime-fer train``, ``tools/reproduce_paper.py`` and pruning, so that every
number we report comes from the same code path.
"""

from __future__ import annotations

import dataclasses
import time
from collections import defaultdict
from typing import Literal, Sequence

import numpy as np

from realtime_fer.explain.regions import region_groups
from realtime_fer.models.attribution_penalty import AttributionTerm, column_items
from realtime_fer.models.blendshape_fusion import BlendshapeModelOptions, fit_fusion_weights, fixed_fusion_weights, fuse
from realtime_fer.models.calibration import choose_threshold, fit_platt
from realtime_fer.models.identity_subspace import IdentitySubspaceOptions, identity_basis, join_bases
from realtime_fer.models.ignored_inputs import column_basis, ignore_columns, ignored_columns
from realtime_fer.models.network import Network, standardization
from realtime_fer.models.randomized import RandomizedOptions, fit_randomized
from realtime_fer.models.rest_normalisation import RestNormalisationOptions, compose, fold_affine, rest_map
from realtime_fer.models.symmetric import odd_blendshape_basis, symmetric_basis, symmetrise
from realtime_fer.models.speech_subspace import SpeechSubspace, fold_projection, project
from realtime_fer.models.torch_mlp import TorchOptions, fit_torch
from realtime_fer.training.features import PooledSet

Family = Literal["randomized", "torch"]


def keeps_half(family: str, randomized: RandomizedOptions | None) -> bool:
    """Whether ``family``'s networks keep their first layer float16-representable (randomized
    with ``weight_dtype: float16``; the exporter then stores it in half precision), so that
    every fold of that layer must round it again."""
    return family == "randomized" and (randomized or RandomizedOptions()).weight_dtype == "float16"


def fit_models(
    family: Family,
    data: PooledSet,
    codes: np.ndarray,
    positives: dict[str, int],
    subsets: dict[str, Sequence[int]],
    *,
    window_length: int,
    randomized: RandomizedOptions | None = None,
    torch: TorchOptions | None = None,
    rows: np.ndarray | None = None,
    subspace: SpeechSubspace | None = None,
    shape_components: int = 0,
    identity: IdentitySubspaceOptions | None = None,
    identity_code: int | None = None,
    rest: RestNormalisationOptions | None = None,
    symmetric: bool = False,
    symmetric_parts: str = "all",
    ignored_blendshapes: Sequence[int] = (),
) -> tuple[dict[str, Network], float]:
    """Fit one binary model per emotion; emotions sharing a landmark subset share hidden
    features (randomized family). Returns the networks and the fitting time in seconds.

    Args:
        data: pooled features over the full mesh; ``rows`` selects the training windows.
        codes: (N,) label code of each window of ``data``.
        positives: emotion -> the label code that is positive for it.
        subsets: emotion -> landmark indices it sees.
        subspace: directions of talking motion projected off each subset's pooled ``mean``
            (as many as the emotion's rank) before fitting and folded into the returned
            networks (which then read raw pooled features like any other).
        shape_components: > 0: also project off all but the leading ``shape_components``
            principal directions of the (projected) pooled ``mean`` part (:func:`shape_basis`).
        identity: directions in which resting faces differ (the training windows labelled
            ``identity_code``), projected off after the speech subspace and folded likewise
            (:mod:`realtime_fer.models.identity_subspace`).
        identity_code: the label code of resting (neutral) faces: the identity subspace's
            windows and the baselines of ``randomized.attribution_penalty``.
        rest: resting-face normalisation of the pooled ``mean`` shape, applied after the
            projections and folded with them (:mod:`realtime_fer.models.rest_normalisation`);
            a subset with too few stable landmarks is fitted without it.
        symmetric: make each speech basis mirror-symmetric (:func:`symmetric_basis`; the
            subsets must be mirror-closed) and return each network symmetrised
            (:func:`realtime_fer.models.symmetric.symmetrise`).
        symmetric_parts: with ``symmetric``: ``all`` (above), ``blendshapes`` (symmetric in
            the blendshapes' Left/Right categories only: any subset, the speech bases as they
            are) or ``blendshape_sums`` (the blendshapes' odd directions projected off and folded
            in with the speech subspace, :func:`~realtime_fer.models.symmetric.odd_blendshape_basis`:
            no symmetrised twin layer).
        ignored_blendshapes: positions of blendshape categories no network reads, projected
            off and folded in with the speech subspace (:mod:`realtime_fer.models.ignored_inputs`).
    """
    rows = np.arange(len(data.features)) if rows is None else rows
    # emotions that see the same landmarks (and project off the same speech directions) share
    # hidden features
    by_subset: dict[tuple[tuple[int, ...], int], list[str]] = defaultdict(list)
    for emotion in positives:
        rank = subspace.options.rank_of(emotion) if subspace is not None else 0
        by_subset[(tuple(int(i) for i in subsets[emotion]), rank)].append(emotion)
    nets: dict[str, Network] = {}
    half = keeps_half(family, randomized)
    t0 = time.perf_counter()
    for (subset, _), emotions in by_subset.items():
        x = data.features[np.ix_(rows, data.columns(subset))]
        rmap = rest_map(subset, data.pooling, data.n_blendshapes, rest) if rest is not None and rest.enabled else None
        raw_stats = standardization(x) if rmap is not None else None
        basis = subspace.basis(subset, data.pooling, data.n_blendshapes, emotions[0]) if subspace is not None else None
        if symmetric and symmetric_parts == "all":
            basis = symmetric_basis(basis, subset, data.pooling, data.n_blendshapes)
        if symmetric and symmetric_parts == "blendshape_sums":
            basis = join_bases(basis, odd_blendshape_basis(len(subset), data.pooling, data.n_blendshapes, spread=x.std(axis=0)))
        blind = ignored_columns(len(subset), data.pooling, data.n_blendshapes, ignored_blendshapes)
        basis = join_bases(basis, column_basis(x.shape[1], blind))
        x = project(x, basis)
        if identity is not None and identity.enabled:
            if identity_code is None:
                raise ValueError("an identity subspace needs the label code of resting faces (identity_code)")
            ibasis = identity_basis(x, np.flatnonzero(codes[rows] == identity_code), pooling=data.pooling, n_landmarks=len(subset),
                                    n_blendshapes=data.n_blendshapes, options=identity)
            x = project(x, ibasis)
            basis = join_bases(basis, ibasis)
        if shape_components > 0 and "mean" in data.pooling:
            basis = shape_basis(x, data.pooling.index("mean"), len(subset), shape_components)
            x = project(x, basis)
        if rmap is not None:
            x = rmap.apply(x)
        pos = {e: np.array([positives[e]]) for e in emotions}
        kwargs = dict(window_length=window_length, n_landmarks=len(subset), pooling=data.pooling, n_blendshapes=data.n_blendshapes)
        if family == "randomized":
            ropts = randomized or RandomizedOptions()
            term = None
            if ropts.attribution_penalty > 0:
                if rmap is not None or identity_code is None:
                    raise ValueError("model.randomized.attribution_penalty needs the neutral label's code and does not combine with rest normalisation")
                term = attribution_term(subset, data, np.flatnonzero(codes[rows] == identity_code), basis)
            fitted = fit_randomized(x, codes[rows], pos, ropts, attribution=term, **kwargs)
        elif family == "torch":
            fitted = fit_torch(x, codes[rows], pos, torch or TorchOptions(), **kwargs)
        else:
            raise ValueError(f"unknown model family {family!r}")
        if rmap is not None and raw_stats is not None:
            a, c = compose(basis, *rmap.affine())
            nets.update({e: fold_affine(n, a, c, *raw_stats, half=half) for e, n in fitted.items()})
        else:
            nets.update({e: fold_projection(n, basis, half=half) for e, n in fitted.items()})
        nets.update({e: ignore_columns(nets[e], blind) for e in fitted})
        if symmetric and symmetric_parts != "blendshape_sums":
            nets.update({e: symmetrise(nets[e], subset, half=half, landmarks=symmetric_parts == "all") for e in fitted})
    return nets, time.perf_counter() - t0


def attribution_term(subset: Sequence[int], data: PooledSet, baseline_rows: np.ndarray, basis: np.ndarray | None) -> AttributionTerm:
    """The items (the subset's named regions, then each blendshape), baselines and folded
    projection of :mod:`realtime_fer.models.attribution_penalty` for one landmark subset."""
    groups = region_groups(subset)
    items = column_items(groups.index, len(groups.names), data.pooling, data.n_blendshapes)
    return AttributionTerm(items=items, n_items=len(groups.names) + data.n_blendshapes, baseline_rows=baseline_rows, basis=basis)


def shape_basis(x: np.ndarray, part: int, n_landmarks: int, keep: int) -> np.ndarray | None:
    """Orthonormal basis (D, 3L - keep), in the coordinates of pooled features ``x`` (N, D),
    of the pooled ``mean`` part's (part ``part``, 3L columns) principal directions after the
    first ``keep``: what :func:`~realtime_fer.models.speech_subspace.project` removes to keep
    only the leading shape components (directions already projected off have no variance and
    fall among the trailing ones). None when ``keep >= 3L``."""
    width = 3 * n_landmarks
    if keep >= width:
        return None
    cols = slice(part * width, (part + 1) * width)
    m = np.asarray(x[:, cols], np.float64)
    _, _, vt = np.linalg.svd(m - m.mean(axis=0), full_matrices=False)  # N > 3L: vt is (3L, 3L)
    basis = np.zeros((x.shape[1], width - keep), np.float64)
    basis[cols] = vt[keep:].T
    return basis


def fit_blendshape_fusion(
    nets: dict[str, Network],
    data: PooledSet,
    codes: np.ndarray,
    positives: dict[str, int],
    subsets: dict[str, Sequence[int]],
    *,
    rows: np.ndarray,
    cal_data: PooledSet,
    cal_rows: np.ndarray,
    cal_codes: np.ndarray,
    window_length: int,
    randomized: RandomizedOptions,
    options: BlendshapeModelOptions,
    symmetric: bool = False,
    symmetric_parts: str = "all",
    identity_code: int | None = None,
    half: bool = False,
    ignored_blendshapes: Sequence[int] = (),
) -> tuple[dict[str, Network], dict[str, dict[str, float]]]:
    """Fit a blendshape-only randomized network per emotion on the same training ``rows`` and
    fuse it with the emotion's landmark network (:mod:`realtime_fer.models.blendshape_fusion`),
    the fusion weights taken from the calibration windows ``cal_rows`` of ``cal_data`` (label
    codes ``cal_codes``). Returns the fused (uncalibrated) networks and each emotion's weights.
    ``symmetric``: the blendshape networks are symmetrised too (the landmark networks already
    are, by :func:`fit_models`). ``identity_code``: the neutral label's code (the baselines of
    ``randomized.attribution_penalty``). ``half``: the fused first layers are rounded to
    float16-representable values (:func:`realtime_fer.models.blendshape_fusion.fuse`), for
    landmark networks whose first layer already is (:func:`keeps_half`). ``ignored_blendshapes``:
    categories the blendshape networks do not read either (:func:`fit_models`)."""
    if not data.n_blendshapes:
        raise ValueError("model.blendshape_model needs model.blendshapes: true")
    # the blendshape model's own hyperparameters where given, the landmark models' otherwise
    own = {k: v for k in ("attribution_penalty", "input_scale", "ridge") if (v := getattr(options, k)) is not None}
    bopts = dataclasses.replace(randomized, hidden=list(options.hidden), **own)
    empty: dict[str, Sequence[int]] = {e: [] for e in nets}
    bs_nets, _ = fit_models("randomized", data, codes, {e: positives[e] for e in nets}, empty, window_length=window_length, randomized=bopts, rows=rows, symmetric=symmetric,
                            symmetric_parts=symmetric_parts, identity_code=identity_code, ignored_blendshapes=ignored_blendshapes)
    s_lm = scores(nets, cal_data, subsets, cal_rows)
    s_bs = scores(bs_nets, cal_data, empty, cal_rows)
    fused: dict[str, Network] = {}
    weights: dict[str, dict[str, float]] = {}
    for e, net in nets.items():
        truth = cal_codes == positives[e]
        if options.fusion == "fitted":
            w = fit_fusion_weights(s_lm[e], s_bs[e], truth, options.l2)
        else:
            w = fixed_fusion_weights(s_lm[e], s_bs[e], truth, options.weight)
        fused[e] = fuse(net, bs_nets[e], *w, half=half)
        weights[e] = {"w_landmarks": w[0], "w_blendshapes": w[1], "bias": w[2]}
    return fused, weights


def scores(nets: dict[str, Network], data: PooledSet, subsets: dict[str, Sequence[int]], rows: np.ndarray) -> dict[str, np.ndarray]:
    """Uncalibrated scores of every emotion's network on ``rows`` of ``data``."""
    return {e: net.score_pooled(data.features[np.ix_(rows, data.columns(subsets[e]))]) for e, net in nets.items()}


def calibrate(
    nets: dict[str, Network],
    calib_scores: dict[str, np.ndarray],
    calib_truth: dict[str, np.ndarray],
    criterion: Literal["f1", "balanced_accuracy", "accuracy"] = "f1",
    bootstrap: int = 0,
    seed: int = 0,
) -> dict[str, float]:
    """Set each network's Platt parameters from held-out scores; return decision thresholds
    (on calibrated probabilities) that maximise ``criterion`` on the same held-out data (with
    ``bootstrap`` > 0, the median over that many resamples: :func:`choose_threshold`)."""
    thresholds = {}
    for k, (e, net) in enumerate(nets.items()):
        net.platt_a, net.platt_b = fit_platt(calib_scores[e], calib_truth[e])
        thresholds[e] = choose_threshold(net.calibrate(calib_scores[e]), calib_truth[e], criterion, bootstrap=bootstrap, seed=seed + k)
    return thresholds
