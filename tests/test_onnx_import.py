"""Reading networks back from their ONNX files (realtime_fer.models.onnx_import): the round trip
gives the same outputs and input gradients, older graphs (the shipped default model) load too,
and anything that is not one of our networks is a clear BundleError. Self-contained: networks
are fitted on random data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from realtime_fer.errors import BundleError
from realtime_fer.explain.gradients import input_gradient
from realtime_fer.landmarks.detector import NUM_MESH_LANDMARKS
from realtime_fer.models.bundle import load_bundle, write_bundle
from realtime_fer.models.network import Network, pool
from realtime_fer.models.onnx_export import METADATA_FORMAT, build_onnx, save_onnx
from realtime_fer.models.onnx_import import load_network, network_from_model
from realtime_fer.models.randomized import RandomizedOptions, fit_randomized
from realtime_fer.models.scorer import BundleScorer

T, L = 5, 23


def _windows(n: int = 40, seed: int = 0, landmarks: int = L) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = rng.normal(0, 0.4, size=(n, 1, landmarks, 3))
    return (base + rng.normal(0, 0.05, size=(n, T, landmarks, 3))).astype(np.float32)


def _fit(options: RandomizedOptions, pooling: tuple[str, ...]) -> Network:
    wins = _windows(120, seed=options.seed)
    codes = (wins[:, :, :, 1].mean(axis=(1, 2)) > 0).astype(int)
    net = fit_randomized(pool(wins, pooling), codes, {"x": [1]}, options, window_length=T, n_landmarks=L, pooling=pooling)["x"]
    net.platt_a, net.platt_b = 3.3 + 1e-9, -1.1 - 1e-9  # not float32-exact: the metadata keeps them
    return net


NETS = {
    "tanh-direct-all-mean-delta": (RandomizedOptions(hidden=[40, 30], activation="tanh", direct_link=True, head_layers="all", seed=1), ("mean", "delta")),
    "relu-last-f32-mean": (RandomizedOptions(hidden=[50], activation="relu", direct_link=False, head_layers="last", weight_dtype="float32", seed=2), ("mean",)),
    "sigmoid-direct-last-delta": (RandomizedOptions(hidden=[20, 30, 25], activation="sigmoid", direct_link=True, head_layers="last", seed=3), ("delta",)),
    "tanh-direct-all-mean-std": (RandomizedOptions(hidden=[40, 30], activation="tanh", seed=4), ("mean", "std")),
    "tanh-direct-all-mean-min-max": (RandomizedOptions(hidden=[30], activation="tanh", seed=5), ("mean", "min", "max")),
}


@pytest.mark.parametrize("name", list(NETS))
def test_round_trip_gives_the_same_network(name: str, tmp_path: Path) -> None:
    net = _fit(*NETS[name])
    loaded = load_network(save_onnx(net, tmp_path / "m.onnx"))
    assert loaded.pooling == net.pooling and loaded.head_inputs == net.head_inputs and loaded.activation == net.activation
    assert (loaded.window_length, loaded.n_landmarks, loaded.family) == (T, L, "randomized")
    assert loaded.platt_a == net.platt_a and loaded.platt_b == net.platt_b and loaded.head_b == net.head_b
    for (w, b), (w2, b2) in zip(net.layers, loaded.layers):
        np.testing.assert_array_equal(w, w2)
        np.testing.assert_array_equal(b, b2)
    wins = _windows(30, seed=9)
    np.testing.assert_allclose(loaded.probability(wins), net.probability(wins), atol=1e-6)
    np.testing.assert_allclose(loaded.score(wins), net.score(wins), atol=1e-6)
    out, grad = input_gradient(net, wins)
    out2, grad2 = input_gradient(loaded, wins)
    np.testing.assert_allclose(out2, out, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(grad2, grad, rtol=1e-9, atol=1e-12)
    assert np.abs(grad).max() > 0


def test_torch_family_round_trip(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    from realtime_fer.models.torch_mlp import TorchOptions, fit_torch

    wins = _windows(64)
    codes = (wins[:, :, :, 0].mean(axis=(1, 2)) > 0).astype(int)
    net = fit_torch(pool(wins, ("mean",)), codes, {"x": [1]}, TorchOptions(hidden=[16, 8], epochs=2, batch_size=16, threads=1), window_length=T, n_landmarks=L)["x"]
    loaded = load_network(save_onnx(net, tmp_path / "t.onnx"))
    assert loaded.family == "torch" and loaded.head_inputs == (2,) and loaded.activation == "relu"
    np.testing.assert_allclose(loaded.probability(wins), net.probability(wins), atol=1e-6)
    np.testing.assert_allclose(input_gradient(loaded, wins)[1], input_gradient(net, wins)[1], rtol=1e-9, atol=1e-12)


def test_graph_records_its_structure_with_stable_names() -> None:
    net = _fit(*NETS["tanh-direct-all-mean-delta"])
    model = build_onnx(net)
    meta = {p.key: p.value for p in model.metadata_props}
    assert meta["format"] == METADATA_FORMAT and meta["head_inputs"] == "0,1,2" and meta["pooling"] == "mean,delta"
    assert (meta["window_length"], meta["n_landmarks"], meta["n_layers"]) == (str(T), str(L), "2")
    assert float(meta["platt_a"]) == net.platt_a
    names = {t.name for t in model.graph.initializer}
    assert {"mean", "std", "W1_f16", "b1", "W2_f16", "b2", "head_w", "head_b", "platt_a", "platt_b"} <= names


def test_shipped_models_store_their_first_layer_in_half_precision() -> None:
    """Every shipped model keeps its random first layer in float16 (half the bundle's size): a
    retrain whose fused layer lost float16 values (model 0.10's first training, on a newer numpy)
    would otherwise ship float32 files silently."""
    shipped = Path(__file__).resolve().parents[1] / "realtime_fer" / "assets" / "default_model"
    files = sorted(shipped.glob("*.onnx"))
    assert len(files) == 8
    for f in files:
        names = {t.name for t in onnx.load(str(f), load_external_data=False).graph.initializer}
        assert {"W1_f16", "b1_f16"} <= names and "W1" not in names, (f.name, sorted(names))


def test_disagreeing_metadata_is_refused() -> None:
    model = build_onnx(_fit(*NETS["relu-last-f32-mean"]))
    for p in model.metadata_props:
        if p.key == "head_inputs":
            p.value = "0,1"
    with pytest.raises(BundleError, match="metadata head_inputs"):
        network_from_model(model, "x.onnx")


def test_shipped_default_model_loads_and_matches_onnxruntime() -> None:
    """The shipped bundle's networks, read back from its ONNX files, score as onnxruntime does."""
    bundle = load_bundle()
    rng = np.random.default_rng(4)
    wins = rng.normal(0, 0.02, size=(12, bundle.window_length, NUM_MESH_LANDMARKS, 3)).astype(np.float32)
    wins = wins + np.load(Path(__file__).resolve().parents[1] / "realtime_fer/assets/reference_face.npy").astype(np.float32)[None, None]
    blend = rng.uniform(0, 1, size=(12, bundle.window_length, len(bundle.blendshapes))).astype(np.float32) if bundle.blendshapes else None
    probs = BundleScorer(bundle, device="cpu").predict(wins, blend)
    for e in ("happy", "surprise"):
        net = bundle.network(e)
        assert net.n_landmarks == len(bundle.emotions[e].landmarks) and net.window_length == bundle.window_length
        np.testing.assert_allclose(net.probability(wins[:, :, bundle.emotions[e].landmarks], blend), probs[e], atol=2e-5)


def test_bundle_network_and_errors(tmp_path: Path) -> None:
    net = _fit(*NETS["relu-last-f32-mean"])
    path = write_bundle(tmp_path / "b", {"happy": net}, {"happy": list(range(L))}, {"happy": 0.5}, window={"length": T, "hop": 2})
    b = load_bundle(path)
    np.testing.assert_allclose(b.network("happy").probability(_windows(5)), net.probability(_windows(5)), atol=1e-6)
    with pytest.raises(BundleError, match="no model for 'sad'"):
        b.network("sad")
    with pytest.raises(BundleError, match="model file not found"):
        load_network(tmp_path / "missing.onnx")
    (tmp_path / "junk.onnx").write_bytes(b"not a model at all")
    with pytest.raises(BundleError, match="not a readable ONNX model"):
        load_network(tmp_path / "junk.onnx")
    x = helper.make_tensor_value_info("window", TensorProto.FLOAT, ["batch", T, L, 3])
    y = helper.make_tensor_value_info("probability", TensorProto.FLOAT, ["batch", T, L, 3])
    other = helper.make_model(helper.make_graph([helper.make_node("Relu", ["window"], ["probability"])], "g", [x], [y]))
    onnx.save(other, str(tmp_path / "other.onnx"))
    with pytest.raises(BundleError, match="not a realtime_fer emotion network"):
        load_network(tmp_path / "other.onnx")
