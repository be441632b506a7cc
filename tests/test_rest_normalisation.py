"""Resting-face normalisation (realtime_fer.models.rest_normalisation): the map, its fold into
the network and the ONNX export, and what it removes. Faces are drawn from the shipped RAF-DB
neutral-face statistics (assets/resting_face.npz), so no research data is needed."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from fold_checks import assert_folded_network_exports
from realtime_fer.explain.resting import RestingFacePredictor, resting_face_statistics
from realtime_fer.models.network import pool, standardization
from realtime_fer.models.randomized import RandomizedOptions, fit_randomized
from realtime_fer.models.rest_normalisation import RestNormalisationOptions, compose, fold_affine, rest_map
from realtime_fer.models.speech_subspace import project
from realtime_fer.training.features import PooledSet
from realtime_fer.training.fitting import fit_models

T, N = 6, 400


def _ranked() -> np.ndarray:
    return np.argsort(resting_face_statistics().stability, kind="stable")


def _expressive() -> list[int]:
    """The 12 landmarks expressions move most (relative to how resting faces differ)."""
    return [int(i) for i in _ranked()[::-1][:12]]


def _landmarks(n_stable: int = 30) -> list[int]:
    """A model's landmarks: ``n_stable`` of the most stable ones among the expressive ones, unsorted."""
    extra = _expressive()
    return extra[:5] + [int(i) for i in _ranked()[:n_stable]] + extra[5:]


def _faces(rng: np.random.Generator, n: int) -> np.ndarray:
    """(n, 468, 3) resting faces drawn from the neutral faces' principal components."""
    s = resting_face_statistics()
    coef = rng.normal(size=(n, len(s.variances))) * np.sqrt(s.variances)
    return (s.mean.reshape(-1) + coef @ s.components).reshape(n, -1, 3)


def _windows(lms: list[int], seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Windows (N, T, L, 3) of resting faces with an expression on the mouth, blendshapes, labels."""
    rng = np.random.default_rng(seed)
    rest = _faces(rng, N)[:, lms]
    codes = rng.integers(0, 2, N)
    expr = np.zeros((N, len(lms), 3))
    mouth = [i for i, m in enumerate(lms) if m in set(_expressive())]
    expr[:, mouth, 1] = 0.03 * codes[:, None]
    wins = rest[:, None] + expr[:, None] + rng.normal(0, 0.003, size=(N, T, len(lms), 3))
    blend = rng.uniform(0, 0.2, size=(N, T, 52))
    return wins.astype(np.float32), blend.astype(np.float32), codes


def test_options_and_too_few_stable_landmarks(caplog: pytest.LogCaptureFixture) -> None:
    with pytest.raises(ValueError, match="rest_normalisation"):
        RestNormalisationOptions(ridge=0)
    with pytest.raises(ValueError, match="rest_normalisation"):
        RestNormalisationOptions(min_stable=0)
    on = RestNormalisationOptions(enabled=True)
    lms = _landmarks()
    assert rest_map(lms, ("mean", "std"), 52, RestNormalisationOptions()) is None  # off by default
    assert rest_map(lms, ("std",), 52, on) is None  # no mean part
    assert rest_map([], ("mean",), 52, on) is None  # the blendshape model reads no landmarks
    few = _landmarks(3)
    assert len(few) == 15
    with caplog.at_level(logging.WARNING):
        assert rest_map(few, ("mean",), 0, on) is None  # 3 stable landmarks < min_stable = 5
    assert "not normalised" in caplog.text
    assert rest_map(few, ("mean",), 0, RestNormalisationOptions(enabled=True, min_stable=3)) is not None


def test_map_subtracts_the_predicted_resting_face_from_the_mean_part_only() -> None:
    lms = _landmarks()
    wins, blend, _ = _windows(lms)
    pooling = ("mean", "std")
    x = pool(wins, pooling, blendshapes=blend)
    rmap = rest_map(lms, pooling, 52, RestNormalisationOptions(enabled=True))
    assert rmap is not None and len(rmap.stable_cols) == 3 * 30
    got = rmap.apply(x)
    width = 3 * len(lms)
    np.testing.assert_array_equal(got[:, width:], x[:, width:])  # std and blendshapes untouched
    pred = RestingFacePredictor(lms)
    order = [lms.index(int(m)) for m in pred.stable]
    mean_face = x[:, :width].reshape(N, len(lms), 3)
    resting = np.stack([pred.predict(f[order]) for f in mean_face])
    want = mean_face - (resting - pred.mean_targets)
    np.testing.assert_allclose(got[:, :width].reshape(N, len(lms), 3), want, atol=1e-5)
    a, c = rmap.affine()
    np.testing.assert_allclose(x.astype(np.float64) @ a + c, got, atol=1e-5)
    # people's resting faces differ much less after it (what is left: the regression's residual)
    assert got[:, :width].std(axis=0).sum() < 0.5 * x[:, :width].std(axis=0).sum()


@pytest.mark.parametrize("half", [False, True])
def test_fold_is_exact_also_in_onnx(half: bool) -> None:
    """Fit on projected and normalised features, fold, and the folded network on the raw window
    gives the fitted network's score; its ONNX export too."""
    lms = _landmarks()
    wins, blend, codes = _windows(lms, seed=1)
    pooling = ("mean", "std")
    x = pool(wins, pooling, blendshapes=blend)
    rng = np.random.default_rng(2)
    basis = np.zeros((x.shape[1], 3))  # a projection before it, as the speech subspace's
    basis[: 3 * len(lms)] = np.linalg.qr(rng.normal(size=(3 * len(lms), 3)))[0]
    rmap = rest_map(lms, pooling, 52, RestNormalisationOptions(enabled=True))
    xn = rmap.apply(project(x, basis))
    opts = RandomizedOptions(hidden=[64, 32], seed=3, weight_dtype="float16" if half else "float32")
    fitted = fit_randomized(xn, codes, {"e": np.array([1])}, opts, window_length=T, n_landmarks=len(lms), pooling=pooling, n_blendshapes=52)["e"]
    folded = fold_affine(fitted, *compose(basis, *rmap.affine()), *standardization(x), half=half)
    want = fitted.score_pooled(xn)
    got = folded.score(wins, blend)
    assert want.std() > 0.1  # the network learnt something
    np.testing.assert_allclose(got, want, atol=5e-3 if half else 2e-4)
    assert_folded_network_exports(folded, wins, blend, half)


def test_a_resting_face_change_the_regression_predicts_leaves_the_score_unchanged() -> None:
    """Through fit_models: moving every frame by ``u W`` (the resting-face change the regression
    predicts from a change ``u`` of the stable landmarks) moves the normalised mean shape by
    ``u (I - W_SS) W``: for ``u`` along the directions in which resting faces differ most (an
    identity change), next to nothing, so the score stays; the model fitted without it moves."""
    lms = _landmarks()
    wins, blend, codes = _windows(lms, seed=4)
    pooling = ("mean", "std")
    subsets = {"e": lms}
    # a PooledSet holds the full mesh: put the windows' pooled landmarks where the mesh has them
    data = PooledSet(np.zeros((N, len(pooling) * (3 * 468 + 52)), np.float32), np.arange(N), pooling, 52)
    data.features[:, data.columns(lms)] = pool(wins, pooling, blendshapes=blend)
    rest = RestNormalisationOptions(enabled=True)
    ropts = RandomizedOptions(hidden=[32], seed=0, weight_dtype="float32")
    net = fit_models("randomized", data, codes, {"e": 1}, subsets, window_length=T, randomized=ropts, rest=rest)[0]["e"]
    plain = fit_models("randomized", data, codes, {"e": 1}, subsets, window_length=T, randomized=ropts)[0]["e"]
    rmap = rest_map(lms, pooling, 52, rest)
    pred = RestingFacePredictor(lms)
    xs = (3 * pred.stable[:, None] + np.arange(3)).reshape(-1)
    vals, vecs = np.linalg.eigh(resting_face_statistics().covariance(xs, xs))
    u = vecs[:, -3:] @ np.sqrt(vals[-3:])  # 1 sd along each of the 3 leading identity directions
    move = (u @ rmap.weights).reshape(len(lms), 3).astype(np.float32)
    residual = u @ (np.eye(len(u)) - rmap.weights[:, [list(rmap.mean_cols).index(c) for c in rmap.stable_cols]]) @ rmap.weights
    assert np.linalg.norm(residual) < 0.01 * np.linalg.norm(move)
    base, moved = net.score(wins, blend), net.score(wins + move, blend)
    plain_shift = np.abs(plain.score(wins + move, blend) - plain.score(wins, blend)).mean()
    assert plain_shift > 0.05
    assert np.abs(moved - base).mean() < 0.1 * plain_shift


def test_blendshape_fusion_of_a_normalised_landmark_model() -> None:
    """The blendshape model reads blendshapes only (no normalisation); fused with a normalised
    landmark model, the fused network scores the weighted sum of the two."""
    from realtime_fer.models.blendshape_fusion import BlendshapeModelOptions
    from realtime_fer.training.fitting import fit_blendshape_fusion, scores

    lms = _landmarks()
    wins, blend, codes = _windows(lms, seed=7)
    pooling = ("mean", "std")
    data = PooledSet(np.zeros((N, len(pooling) * (3 * 468 + 52)), np.float32), np.arange(N), pooling, 52)
    data.features[:, data.columns(lms)] = pool(wins, pooling, blendshapes=blend)
    ropts = RandomizedOptions(hidden=[32], seed=0, weight_dtype="float32")
    train, cal = np.arange(300), np.arange(300, N)
    nets = fit_models("randomized", data, codes, {"e": 1}, {"e": lms}, window_length=T, randomized=ropts, rows=train,
                      rest=RestNormalisationOptions(enabled=True))[0]
    fused, weights = fit_blendshape_fusion(nets, data, codes, {"e": 1}, {"e": lms}, rows=train, cal_data=data, cal_rows=cal, cal_codes=codes[cal],
                                           window_length=T, randomized=ropts, options=BlendshapeModelOptions(enabled=True, hidden=[32]))
    w = weights["e"]
    assert w["w_blendshapes"] != 0
    s_lm = scores(nets, data, {"e": lms}, cal)["e"]
    s_fused = fused["e"].score(wins[cal], blend[cal])
    s_bs = (s_fused - w["w_landmarks"] * s_lm - w["bias"]) / w["w_blendshapes"]
    # what is left is the blendshape model's score: it depends on the blendshapes only
    moved = fused["e"].score(wins[cal] + 0.01, blend[cal])
    assert np.abs(moved - s_fused).max() > 1e-3  # the landmark part moves with the landmarks
    np.testing.assert_allclose((moved - w["w_landmarks"] * nets["e"].score(wins[cal] + 0.01, blend[cal]) - w["bias"]) / w["w_blendshapes"], s_bs, atol=1e-3)
