"""Temporal pooling beyond the mean (std, min, max): numpy and onnxruntime agree, input gradients
are exact (central differences), and Integrated Gradients stays complete for every pooling.
Self-contained: networks fitted on random windows."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest

from realtime_fer.explain.gradients import input_gradient, pooled_gradient
from realtime_fer.explain.integrated_gradients import IntegratedGradients
from realtime_fer.models.network import POOLINGS, pool
from realtime_fer.models.onnx_export import build_onnx
from realtime_fer.models.randomized import RandomizedOptions, fit_randomized

T, L = 7, 6
POOLS = [("mean", "std"), ("std",), ("mean", "min", "max"), ("mean", "delta", "std", "min", "max")]


def _data(n: int = 160, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    faces = rng.normal(0, 0.3, size=(n, 1, L, 3))
    moving = rng.random(n) < 0.5  # label: the face moves
    motion = rng.normal(0, 0.05, size=(n, T, L, 3)) * np.where(moving, 4.0, 1.0)[:, None, None, None]
    return (faces + motion).astype(np.float32), moving.astype(int)


def _net(pooling: tuple[str, ...]):
    wins, y = _data()
    net = fit_randomized(pool(wins, pooling), y, {"moving": [1]}, RandomizedOptions(hidden=[24, 16], seed=1), window_length=T, n_landmarks=L, pooling=pooling)["moving"]
    net.platt_a, net.platt_b = 2.0, -0.5
    return net


def test_pool_values() -> None:
    w = np.arange(2 * T * L * 3, dtype=np.float32).reshape(2, T, L, 3) ** 1.5
    p = pool(w, POOLINGS).reshape(2, len(POOLINGS), L, 3)
    np.testing.assert_allclose(p[:, 0], w.mean(axis=1), rtol=1e-6)
    np.testing.assert_allclose(p[:, 1], w[:, -1] - w[:, 0], rtol=1e-6)
    np.testing.assert_allclose(p[:, 2], w.std(axis=1), rtol=1e-5)
    np.testing.assert_array_equal(p[:, 3], w.min(axis=1))
    np.testing.assert_array_equal(p[:, 4], w.max(axis=1))
    still = np.repeat(w[:, :1], T, axis=1)
    assert np.all(pool(still, ("std",)) > 0)  # eps keeps the spread differentiable


@pytest.mark.parametrize("pooling", POOLS, ids=["-".join(p) for p in POOLS])
def test_onnx_matches_numpy_and_learns_movement(pooling: tuple[str, ...]) -> None:
    net = _net(pooling)
    wins, y = _data(80, seed=7)
    session = ort.InferenceSession(build_onnx(net).SerializeToString(), providers=["CPUExecutionProvider"])
    prob = session.run(["probability"], {"window": wins})[0]
    np.testing.assert_allclose(prob, net.probability(wins), atol=2e-6)
    if "std" in pooling or "min" in pooling:
        assert np.mean((prob >= 0.5) == y.astype(bool)) > 0.9  # movement is visible to the model


@pytest.mark.parametrize("pooling", POOLS, ids=["-".join(p) for p in POOLS])
def test_input_gradient_is_exact(pooling: tuple[str, ...]) -> None:
    net = _net(pooling)
    x = _data(3, seed=3)[0].astype(np.float64)
    _, grad = input_gradient(net, x)
    f = lambda z: pooled_gradient(net, pool(z, pooling, np.float64))[0]  # noqa: E731
    rng = np.random.default_rng(0)
    for _ in range(12):
        i = tuple(int(rng.integers(0, d)) for d in x.shape[1:])
        up, down = x.copy(), x.copy()
        up[(slice(None),) + i] += 1e-6
        down[(slice(None),) + i] -= 1e-6
        np.testing.assert_allclose(grad[(slice(None),) + i], (f(up) - f(down)) / 2e-6, rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize("pooling", POOLS, ids=["-".join(p) for p in POOLS])
def test_integrated_gradients_complete_against_static_baselines(pooling: tuple[str, ...]) -> None:
    net = _net(pooling)
    x = _data(6, seed=5)[0].astype(np.float64)
    base = np.repeat(x[:, :1].mean(axis=0, keepdims=True), T, axis=1)  # a static face
    attr = IntegratedGradients(net).attribute(x, base[0], n_steps=32)
    assert attr.attributions.shape == x.shape
    np.testing.assert_allclose(attr.total, attr.output - attr.baseline_output, rtol=1e-6, atol=1e-8)
    pooled = IntegratedGradients(net).attribute_pooled(pool(x, pooling, np.float64), pool(base, pooling, np.float64)[0], n_steps=32)
    np.testing.assert_allclose(attr.per_landmark(), pooled.per_landmark(), rtol=1e-6, atol=1e-9)


# -- blendshapes beside the landmarks --------------------------------------------------------
B = 5


def _blend_net(pooling: tuple[str, ...]):
    wins, y = _data()
    rng = np.random.default_rng(1)
    blend = np.clip(rng.random((len(wins), T, B)) * 0.3 + y[:, None, None] * 0.5, 0, 1).astype(np.float32)
    net = fit_randomized(pool(wins, pooling, blendshapes=blend), y, {"x": [1]}, RandomizedOptions(hidden=[16], seed=2), window_length=T, n_landmarks=L, pooling=pooling, n_blendshapes=B)["x"]
    net.platt_a, net.platt_b = 1.5, 0.2
    return net, wins[:6].astype(np.float64), blend[:6].astype(np.float64)


@pytest.mark.parametrize("pooling", [("mean",), ("mean", "std")], ids=["mean", "mean-std"])
def test_networks_with_blendshapes(pooling: tuple[str, ...]) -> None:
    from realtime_fer.explain.gradients import input_gradients
    from realtime_fer.models.onnx_import import network_from_model

    net, x, b = _blend_net(pooling)
    model = build_onnx(net)
    assert [i.name for i in model.graph.input] == ["window", "blendshapes"]
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    got = session.run(["probability"], {"window": x.astype(np.float32), "blendshapes": b.astype(np.float32)})[0]
    np.testing.assert_allclose(got, net.probability(x, b), atol=2e-6)
    back = network_from_model(model)
    assert back.n_blendshapes == B and back.pooling == pooling
    np.testing.assert_allclose(back.score(x, b), net.score(x, b), atol=1e-6)
    with pytest.raises(ValueError, match="blendshapes"):
        net.score(x)
    # exact gradients with respect to the blendshapes too
    _, _, gb = input_gradients(net, x, b)
    f = lambda bb: pooled_gradient(net, pool(x, pooling, np.float64, bb))[0]  # noqa: E731
    up, down = b.copy(), b.copy()
    up[:, 2, 3] += 1e-6
    down[:, 2, 3] -= 1e-6
    np.testing.assert_allclose(gb[:, 2, 3], (f(up) - f(down)) / 2e-6, rtol=1e-4, atol=1e-8)
    # IG: complete over landmarks and blendshapes together, per blendshape attributions
    base = np.repeat(x.mean(axis=(0, 1), keepdims=True), T, axis=1)[0]
    attr = IntegratedGradients(net).attribute(x, base, n_steps=32, blendshapes=b, blendshape_baselines=np.zeros(B))
    np.testing.assert_allclose(attr.total, attr.output - attr.baseline_output, rtol=1e-6, atol=1e-8)
    assert attr.blendshapes.shape == b.shape and attr.per_blendshape().shape == (6, B)
    assert np.abs(attr.per_blendshape()).sum() > 0
