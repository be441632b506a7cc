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


def _mesh_data(n: int = 600, seed: int = 0):
    """Pooled windows over the full mesh (as the trainer pools them): a per-person face shape,
    an expression that moves the mouth corners for label 1, and label 0 as neutral."""
    from realtime_fer.landmarks.detector import NUM_MESH_LANDMARKS
    from realtime_fer.models.network import pool
    from realtime_fer.training.features import PooledSet

    rng = np.random.default_rng(seed)
    t = 6
    codes = rng.integers(0, 3, n)
    base = rng.normal(0, 0.3, size=(1, 1, NUM_MESH_LANDMARKS, 3)).astype(np.float32)
    person = rng.normal(0, 0.02, size=(n, 1, NUM_MESH_LANDMARKS, 3)).astype(np.float32)
    wins = np.repeat(base + person, t, axis=1) + rng.normal(0, 0.002, size=(n, t, NUM_MESH_LANDMARKS, 3)).astype(np.float32)
    happy = np.flatnonzero(codes == 1)
    wins[np.ix_(happy, np.arange(t), [61, 291], [1])] -= 0.03  # mouth corners up
    blend = rng.uniform(0, 0.1, size=(n, t, 52)).astype(np.float32)
    blend[codes == 1, :, 44:46] += 0.4
    pooling = ("mean", "std")
    return PooledSet(pool(wins, pooling, blendshapes=blend), np.arange(n), pooling, 52), codes


def test_fit_models_penalises_the_explainers_region_attributions():
    """Through the trainer's path (fit_models: the subset's named regions and blendshapes, the
    neutral label's windows as baselines), the penalty lowers what the explainer itself
    reports: the mean squared region/blendshape attribution of the penalised windows (``all``:
    here the smiles; ``neutral``: resting faces of other people) against neutral faces, while
    the expression still separates."""
    from realtime_fer.explain.integrated_gradients import IntegratedGradients
    from realtime_fer.explain.regions import region_groups
    from realtime_fer.training.fitting import fit_models

    data, codes = _mesh_data()
    subset = [0, 13, 14, 17, 61, 291, 78, 308, 10, 151, 9, 105, 334]
    cols = data.columns(subset)
    groups = region_groups(subset)
    rng = np.random.default_rng(2)
    bs = rng.choice(np.flatnonzero(codes == 0), 60)
    explained = {"all": rng.choice(np.flatnonzero(codes == 1), 60), "neutral": rng.choice(np.flatnonzero(codes == 0), 60)}
    energy, separation = {}, {}
    for windows, xs in explained.items():
        for mu in (0.0, 1.0):
            opts = RandomizedOptions(hidden=[64], input_scale=0.5, ridge=1e-4, seed=1, attribution_penalty=mu, attribution_windows=windows)
            nets, _ = fit_models("randomized", data, codes, {"happy": 1}, {"happy": subset}, window_length=6, randomized=opts, identity_code=0)
            net = nets["happy"]
            att = IntegratedGradients(net).attribute_pooled(data.features[np.ix_(xs, cols)], data.features[np.ix_(bs, cols)], n_steps=16)
            per_landmark = att.attributions.sum(axis=(1, 3))  # (N, L): pooled parts and x, y, z summed
            items = np.concatenate([groups.sum(per_landmark), att.blendshapes.sum(axis=1)], axis=1)
            np.testing.assert_allclose(items.sum(axis=1), att.output - att.baseline_output, rtol=1e-3, atol=1e-6)
            energy[windows, mu] = float(np.mean(np.sum(items**2, axis=1)))
            s = net.score_pooled(data.features[:, cols])
            separation[windows, mu] = float(s[codes == 1].mean() - s[codes != 1].mean())
    # measured: all 0.496 -> 0.140 (separation 1.00 -> 0.66); neutral 0.00136 -> 0.00081 (1.00 -> 1.00)
    assert energy["all", 1.0] < 0.5 * energy["all", 0.0]
    assert energy["neutral", 1.0] < 0.7 * energy["neutral", 0.0]
    for windows in explained:
        assert separation[windows, 1.0] > 0.5 * separation[windows, 0.0]


def test_fit_models_needs_the_neutral_label_for_the_penalty():
    from realtime_fer.training.fitting import fit_models

    data, codes = _mesh_data(n=120)
    opts = RandomizedOptions(hidden=[16], attribution_penalty=0.1)
    with pytest.raises(ValueError, match="neutral"):
        fit_models("randomized", data, codes, {"happy": 1}, {"happy": [0, 13, 14]}, window_length=6, randomized=opts)
