"""The attribution penalty of the randomized head (realtime_fer/models/attribution_penalty.py)."""

from __future__ import annotations

import numpy as np
import pytest

from realtime_fer.explain.gradients import pooled_gradient
from realtime_fer.models.attribution_penalty import AttributionTerm, attribution_gram, column_items
from realtime_fer.models.randomized import RandomizedOptions, fit_randomized
from realtime_fer.models.speech_subspace import fold_projection, project


def _data(n: int = 400, n_landmarks: int = 6, n_blendshapes: int = 4, seed: int = 0):
    rng = np.random.default_rng(seed)
    d = 2 * (3 * n_landmarks + n_blendshapes)
    codes = rng.integers(0, 3, size=n)
    x = rng.normal(size=(n, d)).astype(np.float32)
    # correlated neighbours: the situation in which ridge weights cancel
    x[:, 1] = x[:, 0] + 0.05 * rng.normal(size=n)
    x[:, 0] += 0.8 * (codes == 1)
    x[:, 1] += 0.8 * (codes == 1)
    return x, codes


def _term(x, codes, n_landmarks=6, n_blendshapes=4, basis=None):
    region_index = np.array([0, 0, 1, 1, 2, 2])[:n_landmarks]
    items = column_items(region_index, 3, ("mean", "std"), n_blendshapes)
    return AttributionTerm(items=items, n_items=3 + n_blendshapes, baseline_rows=np.flatnonzero(codes == 0), basis=basis)


def test_column_items_follow_the_pooled_layout():
    items = column_items([0, 1, 1], 2, ("mean", "std"), 2)
    assert items.tolist() == [0, 0, 0, 1, 1, 1, 1, 1, 1] * 2 + [2, 3, 2, 3]


@pytest.mark.parametrize("projected", [False, True])
def test_gram_is_the_mean_squared_item_attribution(projected):
    """beta^T G beta equals the mean over the drawn pairs of the sum of squared per-item
    Integrated Gradients (many-node quadrature of the real gradient, through the folded
    projection when there is one)."""
    x, codes = _data()
    basis = None
    if projected:
        basis = np.linalg.qr(np.random.default_rng(1).normal(size=(x.shape[1], 3)))[0]
        x = project(x, basis)
    term = _term(x, codes, basis=basis)
    opts = RandomizedOptions(hidden=[32], input_scale=0.5, ridge=1e-3, seed=3)
    net = fit_randomized(x, codes, {"e": np.array([1])}, opts, window_length=2, n_landmarks=6, pooling=("mean", "std"), n_blendshapes=4)["e"]
    pairs = 7
    gram = attribution_gram(x, net.mean, net.std, net.layers, net.activation, net.head_inputs, term, pairs=pairs, points=64, seed=5)
    beta = np.asarray(net.head_w, np.float64)
    predicted = beta @ gram @ beta
    # the same draw of pairs, attributions by the explainers' gradient on the folded network
    rng = np.random.default_rng([5, 0xA77])
    rows = rng.integers(0, len(x), size=pairs)
    base = term.baseline_rows[rng.integers(0, len(term.baseline_rows), size=pairs)]
    folded = fold_projection(net, basis) if basis is not None else net
    t, w = np.polynomial.legendre.leggauss(64)
    t, w = (t + 1) / 2, w / 2
    total = 0.0
    for r, b in zip(rows, base):
        xs, bs = x[r].astype(np.float64), x[b].astype(np.float64)
        g = sum(wk * pooled_gradient(folded, (bs + tk * (xs - bs))[None])[1][0] for tk, wk in zip(t, w))
        per_column = (xs - bs) * g
        per_item = np.bincount(term.items, weights=per_column, minlength=term.n_items)
        # completeness of the reference attributions (platt_a = 1: the logit is the score)
        f = pooled_gradient(folded, np.stack([xs, bs]))[0]
        assert per_item.sum() == pytest.approx(f[0] - f[1], rel=1e-3, abs=1e-5)
        total += float(per_item @ per_item)
    assert predicted == pytest.approx(total / pairs, rel=2e-3)


def test_the_penalty_shrinks_attributions_and_keeps_the_separation():
    x, codes = _data(n=1500)
    term = _term(x, codes)
    kwargs = dict(window_length=2, n_landmarks=6, pooling=("mean", "std"), n_blendshapes=4)
    plain = RandomizedOptions(hidden=[64], input_scale=0.5, ridge=1e-4, seed=0)
    nets = {}
    for mu in (0.0, 0.5):
        opts = RandomizedOptions(hidden=[64], input_scale=0.5, ridge=1e-4, seed=0, attribution_penalty=mu)
        nets[mu] = fit_randomized(x, codes, {"e": np.array([1])}, opts, attribution=term, **kwargs)["e"]
    ref = fit_randomized(x, codes, {"e": np.array([1])}, plain, **kwargs)["e"]
    assert np.array_equal(ref.head_w, nets[0.0].head_w)  # off: exactly the plain ridge
    gram = attribution_gram(x, ref.mean, ref.std, ref.layers, ref.activation, ref.head_inputs, term, pairs=256, points=3, seed=9)
    energy = {mu: float(np.asarray(n.head_w, np.float64) @ gram @ np.asarray(n.head_w, np.float64)) for mu, n in nets.items()}
    assert energy[0.5] < 0.5 * energy[0.0]
    s = nets[0.5].score_pooled(x)
    assert s[codes == 1].mean() - s[codes != 1].mean() > 0.05  # still separates (0.19 unpenalised, 0.10 here)


def test_the_penalty_needs_its_term_and_baselines():
    x, codes = _data()
    opts = RandomizedOptions(hidden=[16], attribution_penalty=0.1)
    kwargs = dict(window_length=2, n_landmarks=6, pooling=("mean", "std"), n_blendshapes=4)
    with pytest.raises(ValueError, match="attribution_penalty"):
        fit_randomized(x, codes, {"e": np.array([1])}, opts, **kwargs)
    empty = AttributionTerm(items=_term(x, codes).items, n_items=7, baseline_rows=np.zeros(0, np.int64))
    with pytest.raises(ValueError, match="baseline"):
        fit_randomized(x, codes, {"e": np.array([1])}, opts, attribution=empty, **kwargs)
    with pytest.raises(ValueError, match="attribution_penalty"):
        RandomizedOptions(attribution_penalty=-1.0)
