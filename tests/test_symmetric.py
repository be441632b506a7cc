"""Left/right symmetric networks (realtime_fer.models.symmetric): the plane of symmetry, the
pooled mirror map, the symmetrised network (exact, exported, fused with a blendshape model) and
the training option. Faces are drawn from the shipped RAF-DB neutral-face statistics
(assets/resting_face.npz), so no research data is needed."""

from __future__ import annotations

import numpy as np
import pytest

from fold_checks import assert_folded_network_exports
from realtime_fer.explain.resting import resting_face_statistics
from realtime_fer.landmarks.normalize import mirror_index, mirror_normalized, reference_face
from realtime_fer.models.blendshape_fusion import fuse
from realtime_fer.models.network import pool
from realtime_fer.models.onnx_export import tail_only_units
from realtime_fer.models.randomized import RandomizedOptions, fit_randomized
from realtime_fer.models.speech_subspace import SpeechSubspace, SpeechSubspaceOptions
from realtime_fer.models.symmetric import mirror_closed, mirror_paired, mirror_plane, pooled_mirror, symmetric_basis, symmetrise
from realtime_fer.training.config import ModelOptions
from realtime_fer.training.features import PooledSet
from realtime_fer.training.fitting import fit_models

T, N = 6, 300
#: mouth corners, brows, nose tip and a lip centre: a subset that is not mirror-closed
SUBSET = [61, 105, 4, 13, 159]


def _faces(rng: np.random.Generator, n: int) -> np.ndarray:
    """(n, 468, 3) resting faces drawn from the neutral faces' principal components."""
    s = resting_face_statistics()
    coef = rng.normal(size=(n, len(s.variances))) * np.sqrt(s.variances)
    return (s.mean.reshape(-1) + coef @ s.components).reshape(n, -1, 3)


def _mirror_faces(faces: np.ndarray) -> np.ndarray:
    h, p = mirror_plane()
    return (faces[..., mirror_index(), :] - p) @ h + p


def _windows(lms: list[int], seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Windows (N, T, L, 3) of resting faces whose left mouth corner rises for label 1 (an
    asymmetric cue), blendshapes, labels."""
    rng = np.random.default_rng(seed)
    rest = _faces(rng, N)
    codes = rng.integers(0, 2, N)
    rest[:, 61, 1] -= 0.03 * codes
    wins = rest[:, None][:, :, lms] + rng.normal(0, 0.003, size=(N, T, len(lms), 3))
    blend = rng.uniform(0, 0.2, size=(N, T, 52))
    blend[:, :, 44] += 0.3 * codes[:, None]  # mouthSmileLeft
    return wins.astype(np.float32), blend.astype(np.float32), codes


def _mirror_windows(wins: np.ndarray, blend: np.ndarray, lms: list[int]) -> tuple[np.ndarray, np.ndarray]:
    from realtime_fer.data.motion import blendshape_mirror

    full = np.zeros(wins.shape[:2] + (468, 3), np.float64)
    full[:, :, lms] = wins
    return _mirror_faces(full)[:, :, lms].astype(np.float32), blend[:, :, blendshape_mirror()]


def test_the_plane_maps_the_reference_face_onto_its_mirror_image() -> None:
    ref = np.asarray(reference_face(), np.float64)[:468]
    h, p = mirror_plane()
    np.testing.assert_allclose(h @ h, np.eye(3), atol=1e-12)
    assert np.abs(_mirror_faces(ref) - ref).max() < 0.03
    # the reference is rolled against its own mirror image: x -> -x misses by far more
    plain = ref[mirror_index()] * [-1, 1, 1]
    assert np.abs(plain - ref).max() > 0.15
    # and the plane's mirror is what normalising a mirrored face gives (RMS 0.005 vs 0.04)
    faces = _faces(np.random.default_rng(1), 40)
    target = mirror_normalized(faces)
    rms = lambda a: float(np.sqrt(np.mean((a - target) ** 2)))  # noqa: E731
    assert rms(_mirror_faces(faces)) < 0.01 < rms(faces[:, mirror_index()] * [-1, 1, 1])


def test_pooled_mirror_is_an_affine_involution_of_closed_subsets_only() -> None:
    sub = mirror_closed(SUBSET)
    assert set(SUBSET) < set(sub) and 291 in sub and 334 in sub
    assert mirror_closed(sub) == sub
    assert mirror_paired(SUBSET) == [4, 13] and mirror_paired(sub) == sub
    a, c = pooled_mirror(sub, ("mean", "std"), 52)
    np.testing.assert_allclose(a @ a, np.eye(len(a)), atol=1e-12)
    np.testing.assert_allclose(c @ a + c, 0.0, atol=1e-12)
    # the pooled map is the faces' mirror image, pooled
    wins, blend, _ = _windows(sub)
    mw, mb = _mirror_windows(wins, blend, sub)
    x, xm = pool(wins, ("mean",), np.float64, blend), pool(mw, ("mean",), np.float64, mb)
    am, cm = pooled_mirror(sub, ("mean",), 52)
    np.testing.assert_allclose(x @ am + cm, xm, atol=1e-5)
    with pytest.raises(ValueError, match="not closed"):
        pooled_mirror(SUBSET, ("mean",), 0)
    with pytest.raises(ValueError, match="poolings"):
        pooled_mirror(sub, ("mean", "min"), 0)


@pytest.mark.parametrize("half", [False, True])
def test_a_symmetrised_network_scores_a_face_and_its_mirror_image_alike(half: bool) -> None:
    sub = mirror_closed(SUBSET)
    wins, blend, codes = _windows(sub)
    pooling = ("mean", "std")
    x = pool(wins, pooling, np.float32, blend)
    net = fit_randomized(x, codes, {"e": np.array([1])}, RandomizedOptions(hidden=[32], seed=3), window_length=T, n_landmarks=len(sub), pooling=pooling, n_blendshapes=52)["e"]
    sym = symmetrise(net, sub, half=half)
    assert sym.layers[0][0].shape[1] == 64 and sym.extras["symmetric"]
    mw, mb = _mirror_windows(wins, blend, sub)
    # the asymmetric cue is read by the fitted network, not by its symmetrisation
    assert np.abs(net.score(wins, blend) - net.score(mw, mb)).mean() > 0.1
    # exact on the pooled mirror image ...
    tol = 2e-3 if half else 1e-4
    a, c = pooled_mirror(sub, pooling, 52)
    xm = (x.astype(np.float64) @ a + c).astype(np.float32)
    np.testing.assert_allclose(sym.score_pooled(x), sym.score_pooled(xm), atol=tol)
    np.testing.assert_allclose(sym.score_pooled(x), 0.5 * (net.score_pooled(x) + net.score_pooled(xm)), atol=tol)
    # ... and close on the mirrored windows (their spreads mix x into y by the plane's tilt)
    assert np.abs(sym.score(wins, blend) - sym.score(mw, mb)).mean() < 0.05 * np.abs(net.score(wins, blend) - net.score(mw, mb)).mean()
    assert_folded_network_exports(sym, wins[:16], blend[:16], half)


def test_fit_models_symmetric_with_a_speech_subspace_and_a_blendshape_model() -> None:
    sub = mirror_closed(SUBSET)
    rng = np.random.default_rng(2)
    wins, blend, codes = _windows(list(range(468)), seed=2)
    pooling = ("mean", "std")
    data = PooledSet(pool(wins, pooling, np.float32, blend), np.arange(N), pooling, 52)
    # "talking" motion: the mouth corners and the lip centre move, the brows do not
    frames = np.zeros((200, 468, 3))
    frames[:, [61, 291], 1] = rng.normal(0, 0.01, size=(200, 1))
    frames[:, 13, 1] = rng.normal(0, 0.01, size=200)
    speech = SpeechSubspace(frames, None, SpeechSubspaceOptions(rank=2))
    nets, _ = fit_models("randomized", data, codes, {"e": 1}, {"e": sub}, window_length=T, randomized=RandomizedOptions(hidden=[32]), subspace=speech, symmetric=True)
    sym = nets["e"]
    w, b = wins[:, :, sub], blend
    x = data.features[:, data.columns(sub)]
    a, c = pooled_mirror(sub, pooling, 52)
    np.testing.assert_allclose(sym.score_pooled(x), sym.score_pooled((x.astype(np.float64) @ a + c).astype(np.float32)), atol=2e-3)
    # the basis it projects off is mirror-invariant, and the network reads none of it
    pooled_basis = symmetric_basis(speech.basis(sub, pooling, 52, "e"), sub, pooling, 52)
    a, _ = pooled_mirror(sub, pooling, 52)
    np.testing.assert_allclose(a.T @ pooled_basis @ pooled_basis.T @ a, pooled_basis @ pooled_basis.T, atol=1e-9)
    moved = w.copy()
    moved[:, :, [sub.index(61), sub.index(291)], 1] -= 0.02
    plain, _ = fit_models("randomized", data, codes, {"e": 1}, {"e": sub}, window_length=T, randomized=RandomizedOptions(hidden=[32]), symmetric=True)
    change = lambda net: float(np.abs(net.score(moved, b) - net.score(w, b)).mean())  # noqa: E731
    assert change(sym) < 0.05 * change(plain["e"])
    # fused with a blendshape model, the units reading only blendshapes stay last
    lm = fit_randomized(x, codes, {"e": np.array([1])}, RandomizedOptions(hidden=[16]), window_length=T, n_landmarks=len(sub), pooling=pooling, n_blendshapes=52)["e"]
    bs = fit_randomized(pool(np.zeros((N, T, 0, 3), np.float32), pooling, np.float32, blend), codes, {"e": np.array([1])}, RandomizedOptions(hidden=[8]), window_length=T, n_landmarks=0, pooling=pooling, n_blendshapes=52)["e"]
    fused = symmetrise(fuse(lm, bs, 1.0, 0.5, 0.0), sub)
    assert tail_only_units(fused) == 16
    np.testing.assert_allclose(fused.score_pooled(x), fused.score_pooled((x.astype(np.float64) @ a + c).astype(np.float32)), atol=1e-4)


def test_the_training_option_refuses_what_it_cannot_mirror() -> None:
    assert ModelOptions(symmetric=True).symmetric
    with pytest.raises(ValueError, match="symmetric"):
        ModelOptions(symmetric=True, shape_components=8)
    with pytest.raises(ValueError, match="symmetric"):
        ModelOptions(symmetric=True, pooling=["mean", "max"])
    with pytest.raises(ValueError, match="symmetric_subsets"):
        ModelOptions(symmetric=True, symmetric_subsets="union")


def test_blendshape_only_symmetry_swaps_the_blendshapes_and_leaves_the_landmarks() -> None:
    """``symmetric_parts: blendshapes``: the network scores a window and the same window with
    its Left/Right blendshapes swapped alike, on any (not mirror-closed) subset and any
    pooling, while it still reads the landmarks' own asymmetric cue."""
    from realtime_fer.data.motion import blendshape_mirror

    wins, blend, codes = _windows(SUBSET)
    pooling = ("mean", "std", "max")
    x = pool(wins, pooling, np.float32, blend)
    net = fit_randomized(x, codes, {"e": np.array([1])}, RandomizedOptions(hidden=[32], seed=3), window_length=T, n_landmarks=len(SUBSET), pooling=pooling, n_blendshapes=52)["e"]
    a, c = pooled_mirror(SUBSET, pooling, 52, landmarks=False)
    np.testing.assert_allclose(a @ a, np.eye(len(a)), atol=0)
    np.testing.assert_array_equal(c, 0.0)
    lm_cols = 3 * len(SUBSET) * len(pooling)
    np.testing.assert_array_equal(a[:lm_cols, :lm_cols], np.eye(lm_cols))
    sym = symmetrise(net, SUBSET, landmarks=False)
    assert sym.extras["symmetric"] == "blendshapes" and sym.layers[0][0].shape[1] == 64
    swapped = blend[:, :, blendshape_mirror()]
    assert np.abs(net.score(wins, blend) - net.score(wins, swapped)).mean() > 0.1
    np.testing.assert_allclose(sym.score(wins, blend), sym.score(wins, swapped), atol=1e-4)
    np.testing.assert_allclose(sym.score(wins, blend), 0.5 * (net.score(wins, blend) + net.score(wins, swapped)), atol=1e-4)
    assert ModelOptions(symmetric=True, symmetric_parts="blendshapes", pooling=["mean", "max"]).symmetric_parts == "blendshapes"
    with pytest.raises(ValueError, match="symmetric_parts"):
        ModelOptions(symmetric_parts="landmarks")


def test_blendshape_sums_read_each_pair_through_its_sum_at_no_cost() -> None:
    """``symmetric_parts: blendshape_sums``: the Left/Right blendshape pairs' differences are
    projected off and folded into the first layer, so the network is exactly invariant to the
    blendshapes' mirror swap with a first layer no wider than without it, and it still reads
    the landmarks' own asymmetric cue."""
    from realtime_fer.data.motion import blendshape_mirror
    from realtime_fer.models.symmetric import odd_blendshape_basis

    pooling = ("mean", "std")
    b = odd_blendshape_basis(len(SUBSET), pooling, 52)
    np.testing.assert_allclose(b.T @ b, np.eye(b.shape[1]), atol=1e-12)
    a, _ = pooled_mirror(SUBSET, pooling, 52, landmarks=False)
    np.testing.assert_allclose(a.T @ b, -b, atol=1e-12)  # each column is odd under the swap
    assert b.shape[1] == 2 * int((blendshape_mirror() != np.arange(52)).sum() // 2)
    assert odd_blendshape_basis(len(SUBSET), pooling, 0) is None
    wins, blend, codes = _windows(list(range(468)))
    data = PooledSet(pool(wins, pooling, np.float32, blend), np.arange(N), pooling, 52)
    opts = RandomizedOptions(hidden=[32], seed=1)
    plain, _ = fit_models("randomized", data, codes, {"e": 1}, {"e": SUBSET}, window_length=T, randomized=opts)
    sums, _ = fit_models("randomized", data, codes, {"e": 1}, {"e": SUBSET}, window_length=T, randomized=opts, symmetric=True, symmetric_parts="blendshape_sums")
    net = sums["e"]
    assert net.layers[0][0].shape == plain["e"].layers[0][0].shape
    x = np.ascontiguousarray(wins[:, :, SUBSET])
    swapped = blend[:, :, blendshape_mirror()]
    assert np.abs(plain["e"].score(x, blend) - plain["e"].score(x, swapped)).mean() > 0.05
    np.testing.assert_allclose(net.score(x, blend), net.score(x, swapped), atol=1e-3)
    # the landmarks' asymmetric cue is still read
    assert roc_auc_of(net.score(x, blend), codes) > 0.9


def roc_auc_of(scores: np.ndarray, labels: np.ndarray) -> float:
    from realtime_fer.models.metrics import roc_auc

    return float(roc_auc(np.asarray(scores), np.asarray(labels) == 1))


def test_blendshape_sums_leave_out_constant_pairs() -> None:
    """A Left/Right pair of which a side never moves is not projected (its standardised weights
    would be huge and float16 rounding would keep its difference readable)."""
    from realtime_fer.data.motion import blendshape_mirror
    from realtime_fer.models.symmetric import odd_blendshape_basis

    pooling = ("mean",)
    bm = blendshape_mirror()
    i = int(np.flatnonzero(bm != np.arange(52))[0])
    spread = np.full(3 * len(SUBSET) + 52, 0.1)
    full = odd_blendshape_basis(len(SUBSET), pooling, 52, spread)
    spread[3 * len(SUBSET) + int(bm[i])] = 2e-6
    fewer = odd_blendshape_basis(len(SUBSET), pooling, 52, spread)
    assert fewer.shape[1] == full.shape[1] - 1
    assert not np.abs(fewer[3 * len(SUBSET) + i]).any()
