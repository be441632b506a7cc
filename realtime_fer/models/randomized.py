"""The paper's fast network: a deep randomized network with a closed-form ridge output layer.

Hidden layers have random weights that are drawn once from a seed and **frozen**; only the
linear output layer is learned, by weighted ridge regression solved in closed form
(Di Luzio, Rosato & Panella, 2023/2024; a deep random-vector-functional-link network). With a
direct link, the output layer reads the standardised input as well as every hidden layer.

Training many one-vs-rest models on the same landmark set is cheap: the hidden features
``H`` and per-label Gram matrices ``H_c^T H_c`` are computed once, and each emotion's
class-balanced normal equations are assembled from them
(``H^T W H = w_neg * sum_c G_c + (w_pos - w_neg) * G_e``), so all emotions cost one pass over
the data plus one small ``d x d`` solve each.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from realtime_fer.models.attribution_penalty import AttributionTerm, attribution_gram
from realtime_fer.models.half import round_to_half
from realtime_fer.models.network import Network, activate, block_diagonal, standardization

log = logging.getLogger(__name__)


@dataclass
class RandomizedOptions:
    """Hyperparameters of the deep randomized network (YAML ``model.randomized``)."""

    hidden: list[int] = field(default_factory=lambda: [512, 512])
    """Widths of the random, frozen hidden layers."""
    activation: Literal["tanh", "relu", "sigmoid"] = "tanh"
    input_scale: float = 1.0
    """Random weights ~ N(0, (input_scale / sqrt(fan_in))^2)."""
    bias_scale: float = 0.5
    """Random biases ~ N(0, bias_scale^2)."""
    ridge: float = 1e-3
    """Ridge penalty, relative to a total sample weight of 1."""
    direct_link: bool = True
    """The output layer also reads the standardised input."""
    head_layers: Literal["all", "last"] = "all"
    """The output layer reads every hidden layer (deep RVFL) or only the last one."""
    seed: int = 0
    weight_dtype: Literal["float16", "float32"] = "float16"
    """Random weights are drawn as float16-representable values, so the exported model stores
    them exactly in half the space."""
    balance: bool = True
    """Weight both classes equally (one-vs-rest is heavily imbalanced)."""
    ensemble: int = 1
    """Fit this many networks with seeds ``seed * ensemble + k`` (k = 0 .. ensemble - 1: the
    members of seeds 0, 1, 2 ... never overlap; with 1, ``seed`` itself) on the same
    data and average their scores: one network whose random layers are the members' side by
    side (block-diagonal after the first) and whose head is the members' heads divided by
    ``ensemble``, so it exports, runs and is explained like any other."""
    balance_negatives: bool = False
    """With ``balance``, also weight every negative label equally within the negatives (each
    label's samples share ``0.5 / n_labels``): a rare label (fear among the negatives of
    surprise) counts as much as a common one (happy), instead of by its number of samples."""
    attribution_penalty: float = 0.0
    """> 0: the head's normal equations also penalise the mean squared Integrated Gradients
    attribution of each named item (face region, blendshape) of training windows against
    neutral training windows, times this (:mod:`realtime_fer.models.attribution_penalty`): a
    generalised ridge that prices the large opposite weights of cancelling explanations. Same
    network, same run-time cost; relative to a total sample weight of 1, like ``ridge``."""
    attribution_pairs: int = 512
    """(window, neutral window) pairs the penalty is averaged over."""
    attribution_points: int = 3
    """Gauss-Legendre nodes on each pair's path."""
    attribution_windows: Literal["all", "neutral"] = "all"
    """Windows whose attributions are penalised: every training window, or only the neutral
    ones (two resting faces of different people should score alike, region by region: an
    invariance to the identity gap that leaves the expressions' evidence unpriced)."""

    def __post_init__(self) -> None:
        if not self.hidden or any(h < 1 for h in self.hidden):
            raise ValueError("hidden must list at least one positive layer width")
        if self.ridge < 0:
            raise ValueError("ridge must be >= 0")
        if self.ensemble < 1:
            raise ValueError("ensemble must be >= 1")
        if self.attribution_penalty < 0:
            raise ValueError("attribution_penalty must be >= 0")
        if self.attribution_windows not in ("all", "neutral"):
            raise ValueError("attribution_windows must be 'all' or 'neutral'")
        if self.attribution_pairs < 1 or self.attribution_points < 1:
            raise ValueError("attribution_pairs and attribution_points must be >= 1")


def random_layers(input_dim: int, options: RandomizedOptions) -> list[tuple[np.ndarray, np.ndarray]]:
    """The frozen hidden layers, a pure function of (input_dim, options)."""
    rng = np.random.default_rng(options.seed)
    layers = []
    fan_in = input_dim
    for width in options.hidden:
        w = rng.normal(0.0, options.input_scale / np.sqrt(fan_in), size=(fan_in, width))
        b = rng.normal(0.0, options.bias_scale, size=width)
        if options.weight_dtype == "float16":
            w, b = round_to_half(w), round_to_half(b)
        layers.append((w.astype(np.float32), b.astype(np.float32)))
        fan_in = width
    return layers


def _head_inputs(options: RandomizedOptions) -> tuple[int, ...]:
    k = len(options.hidden)
    hidden = tuple(range(1, k + 1)) if options.head_layers == "all" else (k,)
    return ((0,) if options.direct_link else ()) + hidden


def fit_randomized(
    features: np.ndarray,
    labels: np.ndarray,
    positives: dict[str, np.ndarray],
    options: RandomizedOptions,
    *,
    window_length: int,
    n_landmarks: int,
    pooling: tuple[str, ...] = ("mean",),
    n_blendshapes: int = 0,
    attribution: AttributionTerm | None = None,
) -> dict[str, Network]:
    """Fit one binary randomized network per entry of ``positives``, sharing hidden features.

    Args:
        features: (N, D) pooled window features (see :func:`realtime_fer.models.network.pool`).
        labels: (N,) integer codes, one per sample's class; used to share Gram matrices.
        positives: emotion name -> the set of label codes that count as positive for it.
        options: hyperparameters.
        window_length, n_landmarks, pooling, n_blendshapes: recorded in the returned networks.
        attribution: items, baselines and projection for ``options.attribution_penalty``
            (required when it is > 0).

    Returns:
        emotion -> uncalibrated :class:`Network` (Platt parameters are set by the caller).
    """
    if options.ensemble > 1:
        single = dataclasses.replace(options, ensemble=1)
        members = [fit_randomized(features, labels, positives, dataclasses.replace(single, seed=options.seed * options.ensemble + k), window_length=window_length,
                                  n_landmarks=n_landmarks, pooling=pooling, n_blendshapes=n_blendshapes, attribution=attribution) for k in range(options.ensemble)]
        return {e: average_networks([m[e] for m in members]) for e in positives}
    x = np.asarray(features, dtype=np.float32)
    codes = np.asarray(labels)
    mean, std = standardization(x)
    layers = random_layers(x.shape[1], options)
    head_inputs = _head_inputs(options)

    # hidden features with a constant column for the intercept, computed in chunks
    d = sum((x.shape[1] if i == 0 else options.hidden[i - 1]) for i in head_inputs) + 1
    classes = np.unique(codes)
    grams = {int(c): np.zeros((d, d), np.float64) for c in classes}
    sums = {int(c): np.zeros(d, np.float64) for c in classes}
    counts = {int(c): int(np.sum(codes == c)) for c in classes}
    chunk = 4096
    for start in range(0, len(x), chunk):
        z = (x[start : start + chunk] - mean) / std
        reps = [z]
        for w, b in layers:
            reps.append(activate(reps[-1] @ w + b, options.activation))
        h = np.concatenate([reps[i] for i in head_inputs] + [np.ones((len(z), 1), np.float32)], axis=1).astype(np.float32)
        cc = codes[start : start + chunk]
        for c in np.unique(cc):
            hc = h[cc == c]
            grams[int(c)] += (hc.T @ hc).astype(np.float64)
            sums[int(c)] += hc.sum(axis=0, dtype=np.float64)
    g_all = sum(grams.values())
    n = len(x)
    penalty = np.diag(np.full(d, options.ridge))
    penalty[-1, -1] = 0.0  # intercept is not penalised
    if options.attribution_penalty > 0:
        if attribution is None:
            raise ValueError("model.randomized.attribution_penalty needs the items and baselines of the attributions (AttributionTerm)")
        if options.attribution_windows == "neutral":
            attribution = dataclasses.replace(attribution, window_rows=attribution.baseline_rows)
        gram = attribution_gram(x, mean, std, layers, options.activation, head_inputs, attribution, pairs=options.attribution_pairs,
                                points=options.attribution_points, seed=options.seed)
        penalty[:-1, :-1] += options.attribution_penalty * gram

    nets: dict[str, Network] = {}
    for emotion, pos_codes in positives.items():
        pos_codes = [int(c) for c in pos_codes if int(c) in grams]
        n_pos = sum(counts[c] for c in pos_codes)
        n_neg = n - n_pos
        if n_pos == 0 or n_neg == 0:
            raise ValueError(f"emotion {emotion!r} needs positive and negative samples (n_pos={n_pos}, n_neg={n_neg})")
        if options.balance:
            w_pos, w_neg = 0.5 / n_pos, 0.5 / n_neg
        else:
            w_pos = w_neg = 1.0 / n
        g_pos = sum(grams[c] for c in pos_codes)
        r_pos = sum(sums[c] for c in pos_codes)
        if options.balance and options.balance_negatives:
            negatives = [c for c in grams if c not in pos_codes]
            a = w_pos * g_pos + sum((0.5 / (len(negatives) * counts[c])) * grams[c] for c in negatives) + penalty
        else:
            a = w_neg * g_all + (w_pos - w_neg) * g_pos + penalty
        beta = np.linalg.solve(a, w_pos * r_pos)  # targets: 1 for positives, 0 for negatives
        nets[emotion] = Network(
            window_length=window_length,
            n_landmarks=n_landmarks,
            pooling=tuple(pooling),
            n_blendshapes=n_blendshapes,
            mean=mean,
            std=std,
            layers=layers,
            activation=options.activation,
            head_inputs=head_inputs,
            head_w=beta[:-1].astype(np.float32),
            head_b=float(beta[-1]),
            family="randomized",
        )
    return nets


def average_networks(nets: list[Network]) -> Network:
    """One network whose score is the mean of ``nets``' scores; they must read the same input
    with the same standardisation and head structure (members of one ensemble)."""
    first = nets[0]
    if len(nets) == 1:
        return first
    for n in nets[1:]:
        if n.head_inputs != first.head_inputs or len(n.layers) != len(first.layers) or not np.array_equal(n.mean, first.mean) or not np.array_equal(n.std, first.std):
            raise ValueError("ensemble members must share their input, standardisation and head structure")
    k = len(nets)
    layers = []
    for i in range(len(first.layers)):
        ws = [np.asarray(n.layers[i][0], np.float64) for n in nets]
        w = np.concatenate(ws, axis=1) if i == 0 else block_diagonal(ws)
        layers.append((w.astype(np.float32), np.concatenate([np.asarray(n.layers[i][1], np.float32) for n in nets])))
    parts = [n.head_parts() for n in nets]
    head = [np.sum([p[i] for p in parts], axis=0) / k if i == 0 else np.concatenate([p[i] for p in parts]) / k for i in first.head_inputs]
    return dataclasses.replace(first, layers=layers, head_w=np.concatenate(head).astype(np.float32),
                               head_b=float(np.mean([n.head_b for n in nets])), extras={**first.extras, "ensemble": k})
