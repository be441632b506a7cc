"""Directions a network cannot see (realtime_fer.explain.invisible): found from the weights, and a
baseline moved along them changes no output and takes their zero-sum weights out of the
attributions."""

from __future__ import annotations

import numpy as np
import pytest

from realtime_fer.explain.integrated_gradients import IntegratedGradients
from realtime_fer.explain.invisible import InvisibleSubspace
from realtime_fer.models.network import pool
from realtime_fer.models.randomized import RandomizedOptions, fit_randomized
from realtime_fer.models.speech_subspace import fold_projection, project

L, T, B = 12, 6, 5
POOLING = ("mean", "std")


def _folded(hidden: int, rank: int, seed: int = 0, half: bool = True):
    """A network fitted on features with ``rank`` random directions of the mean shape projected
    off, the projection folded in (as training folds the speech subspace); and that basis."""
    rng = np.random.default_rng(seed)
    wins = rng.normal(0, 0.05, size=(400, T, L, 3)).astype(np.float32)
    blend = rng.uniform(0, 1, size=(400, T, B)).astype(np.float32)
    x = pool(wins, POOLING, blendshapes=blend)
    codes = (wins[:, :, :4, 1].mean(axis=(1, 2)) > 0).astype(int)
    q, _ = np.linalg.qr(rng.normal(size=(3 * L, rank)))
    basis = np.zeros((x.shape[1], rank))
    basis[: 3 * L] = q
    opts = RandomizedOptions(hidden=[hidden], seed=seed, weight_dtype="float16" if half else "float32")
    net = fit_randomized(project(x, basis), codes, {"e": np.array([1])}, opts, window_length=T, n_landmarks=L, pooling=POOLING, n_blendshapes=B)["e"]
    return fold_projection(net, basis, half=half), basis, wins, blend


def test_the_folded_directions_are_found_from_the_weights() -> None:
    net, basis, _, _ = _folded(hidden=64, rank=3)
    inv = InvisibleSubspace(net)
    assert inv.rank == 3
    # the found basis spans the folded one (landmark mean part; no blendshape component)
    q = inv.basis_landmarks
    np.testing.assert_allclose(q @ (q.T @ basis[: 3 * L]), basis[: 3 * L], atol=1e-3)
    assert np.abs(inv.basis_blendshapes).max() < 1e-3


def test_a_first_layer_narrower_than_the_mean_part_removes_nothing() -> None:
    net, _, _, _ = _folded(hidden=16, rank=3)  # 36 + 5 mean coordinates, 16 + 1 gains
    assert InvisibleSubspace(net).rank == 0


def test_a_network_that_reads_extremes_is_not_moved() -> None:
    """With ``max`` pooling a shift of every frame moves a part the network reads: nothing is
    removed (the baseline's output would change)."""
    from dataclasses import replace

    net, _, _, _ = _folded(hidden=64, rank=3)
    assert InvisibleSubspace(net).rank == 3
    assert InvisibleSubspace(replace(net, pooling=("mean", "max"))).rank == 0


def test_moving_the_baseline_keeps_every_output_and_drops_the_invisible_weights() -> None:
    net, basis, wins, blend = _folded(hidden=64, rank=3)
    rng = np.random.default_rng(5)
    x = wins[:20]
    xb = blend[:20]
    base = np.broadcast_to(x.mean(axis=(0, 1)), x.shape).copy()
    bb = np.broadcast_to(xb.mean(axis=(0, 1)), xb.shape).copy()
    # displace the windows along an invisible direction only: the score cannot change
    along = (basis[: 3 * L] @ rng.normal(size=3)).reshape(L, 3).astype(np.float32)
    moved = x + 0.2 * along
    np.testing.assert_allclose(net.score(moved, xb), net.score(x, xb), atol=2e-3)
    plain = IntegratedGradients(net)
    visible = IntegratedGradients(net, visible_only=True)
    a0 = plain.attribute(moved, x, blendshapes=xb, blendshape_baselines=xb)
    a1 = visible.attribute(moved, x, blendshapes=xb, blendshape_baselines=xb)
    # plainly attributed, the invisible displacement gets weights that sum to ~0
    assert np.abs(a0.per_landmark()).sum(axis=1).min() > 50 * np.abs(a0.total).max()
    # moved along it, the baseline is the window: nothing to attribute
    assert np.abs(a1.per_landmark()).max() < 1e-3
    # a general window: same output and baseline output, complete, fewer cancelling weights
    b0 = plain.attribute(moved, base, blendshapes=xb, blendshape_baselines=bb)
    b1 = visible.attribute(moved, base, blendshapes=xb, blendshape_baselines=bb)
    np.testing.assert_allclose(b1.output, b0.output, atol=1e-6)
    np.testing.assert_allclose(b1.baseline_output, b0.baseline_output, atol=5e-3)
    assert np.abs(b1.delta).max() < 1e-3 * max(1.0, np.abs(b1.output - b1.baseline_output).max())
    assert np.abs(b1.per_landmark()).sum() < np.abs(b0.per_landmark()).sum()
    # the pooled path moves the pooled baseline the same way
    px = net.pooled(moved, xb, "float64")
    pb = net.pooled(base, bb, "float64")
    p1 = visible.attribute_pooled(px, pb)
    np.testing.assert_allclose(p1.total, b1.total, rtol=1e-3, atol=1e-4)


def test_a_talking_baseline_moves_as_the_window_along_the_invisible_directions_only() -> None:
    """``talking_baseline``: the window's motion along the invisible directions is added to the
    baseline's frames (so the baseline talks as the face does), and no other motion."""
    net, basis, wins, blend = _folded(hidden=64, rank=3)
    inv = InvisibleSubspace(net)
    rng = np.random.default_rng(2)
    rest = wins[0].mean(axis=0)
    along = np.einsum("tk,dk->td", rng.normal(size=(T, 3)), basis[: 3 * L]).reshape(T, L, 3)
    q_perp = np.linalg.qr(np.concatenate([basis[: 3 * L], rng.normal(size=(3 * L, 1))], axis=1))[0][:, -1]
    across = np.outer(rng.normal(size=T), q_perp).reshape(T, L, 3)
    x = (rest + 0.05 * along + 0.05 * across)[None].astype(np.float32)
    motion = inv.motion(x)[0]
    np.testing.assert_allclose(motion, 0.05 * (along - along.mean(axis=0)), atol=1e-4)
    engine = IntegratedGradients(net, visible_only=True, talking_baseline=True)
    still = np.broadcast_to(rest, x.shape).astype(np.float32)
    a = engine.attribute(x, still, blendshapes=blend[:1], blendshape_baselines=blend[:1])
    talking = (still + motion[None]).astype(np.float32)
    # the baseline it used is the still face talking along the invisible directions
    want = float(net.platt_a * net.score(talking, blend[:1])[0] + net.platt_b)
    assert a.baseline_output[0] == pytest.approx(want, abs=1e-3)
    assert abs(a.delta[0]) < 1e-3 * max(1.0, abs(a.output[0] - a.baseline_output[0]))


def test_the_stream_options_are_on_by_default() -> None:
    from realtime_fer.explain.stream import StreamExplainOptions

    assert StreamExplainOptions().visible_only is True and StreamExplainOptions().talking_baseline is True
