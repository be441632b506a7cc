"""Model bundles (realtime_fer.models.bundle): writing, loading, verifying, scoring with
onnxruntime (realtime_fer.models.scorer) and the decision rule. Self-contained: the networks
are fitted on random data, so these tests need no dataset."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest

from realtime_fer.errors import BundleError
from realtime_fer.landmarks.detector import NUM_MESH_LANDMARKS
from realtime_fer.models.bundle import FALLBACK, MANIFEST, SCHEMA_VERSION, ModelBundle, decide, default_bundle_path, load_bundle, write_bundle
from realtime_fer.models.network import Network, pool
from realtime_fer.models.randomized import RandomizedOptions, fit_randomized
from realtime_fer.models.runtime import choose_providers, cuda_device_present
from realtime_fer.models.scorer import BundleScorer

T = 5
SUBSETS = {
    "happy": [0, 13, 14, 61, 78, 291, 308, 17, 37, 267],
    "sad": list(range(0, NUM_MESH_LANDMARKS, 3)),
    "surprise": list(range(NUM_MESH_LANDMARKS)),
}
THRESHOLDS = {"happy": 0.55, "sad": 0.4, "surprise": 0.6}


def _fit(subset: list[int], seed: int) -> Network:
    rng = np.random.default_rng(seed)
    wins = rng.normal(0, 0.3, size=(120, T, len(subset), 3)).astype(np.float32)
    codes = (wins[:, :, :, 1].mean(axis=(1, 2)) > 0).astype(int)  # learnable: mean y
    opts = RandomizedOptions(hidden=[80], ridge=0.01, seed=seed)
    net = fit_randomized(pool(wins, ("mean", "delta")), codes, {"x": [1]}, opts, window_length=T, n_landmarks=len(subset), pooling=("mean", "delta"))["x"]
    net.platt_a, net.platt_b = 4.0, -2.0
    return net


@pytest.fixture(scope="module")
def nets() -> dict[str, Network]:
    return {name: _fit(sub, seed) for seed, (name, sub) in enumerate(SUBSETS.items())}


@pytest.fixture(scope="module")
def windows() -> np.ndarray:
    return np.random.default_rng(9).normal(0, 0.3, size=(33, T, NUM_MESH_LANDMARKS, 3)).astype(np.float32)


def _write(path: Path, nets: dict[str, Network]) -> Path:
    return write_bundle(
        path,
        nets,
        SUBSETS,
        THRESHOLDS,
        window={"length": T, "hop": 2, "pooling": ["mean", "delta"]},
        metrics={"happy": {"validation": {"auc": 0.9}}},
        training={"family": "randomized", "sources": [{"name": "test", "licence": "none"}]},
        normalisation={"method": "test"},
        landmarker={"model_sha256": "abc"},
    )


@pytest.fixture(scope="module")
def bundle_dir(nets: dict[str, Network], tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _write(tmp_path_factory.mktemp("bundle") / "model", nets)


@pytest.fixture
def copy(bundle_dir: Path, tmp_path: Path) -> Path:
    """A private copy of the bundle to damage."""
    dst = tmp_path / "bundle"
    shutil.copytree(bundle_dir, dst)
    return dst


def _edit_manifest(bundle: Path, edit) -> None:  # noqa: ANN001
    m = json.loads((bundle / MANIFEST).read_text())
    edit(m)
    (bundle / MANIFEST).write_text(json.dumps(m))


def _rehash(bundle: Path, name: str) -> None:
    import hashlib

    _edit_manifest(bundle, lambda m: m["files"].__setitem__(name, hashlib.sha256((bundle / name).read_bytes()).hexdigest()))


# -- round trip ---------------------------------------------------------------------------------
def test_write_and_load_round_trip(bundle_dir: Path) -> None:
    manifest = json.loads((bundle_dir / MANIFEST).read_text())
    assert manifest["schema_version"] == SCHEMA_VERSION
    assert list(manifest["emotions"]) == ["happy", "sad", "surprise"]  # canonical order
    assert set(manifest["files"]) == {"happy.onnx", "sad.onnx", "surprise.onnx"}
    for key in ("window", "input", "outputs", "decision", "normalisation", "landmarker", "training", "created"):
        assert key in manifest, key
    assert manifest["emotions"]["happy"]["n_landmarks"] == len(SUBSETS["happy"])

    b = load_bundle(bundle_dir)
    assert b.path == bundle_dir and b.window_length == T and b.hop == 2
    # no seconds in the manifest: the legacy rule, T frames of a 25 fps clip
    assert b.window_seconds == pytest.approx(T / 25) and b.hop_seconds == pytest.approx(2 / 25)
    assert list(b.emotions) == ["happy", "sad", "surprise"]
    for name, e in b.emotions.items():
        assert e.landmarks == SUBSETS[name] and e.threshold == THRESHOLDS[name] and e.family == "randomized"
        assert (bundle_dir / e.file).is_file()
    assert b.thresholds == THRESHOLDS
    assert b.emotions["happy"].metrics == {"validation": {"auc": 0.9}}
    np.testing.assert_array_equal(b.landmark_union, np.arange(NUM_MESH_LANDMARKS))


def test_scorer_equals_the_numpy_networks(bundle_dir: Path, nets: dict[str, Network], windows: np.ndarray) -> None:
    scorer = BundleScorer(load_bundle(bundle_dir), device="cpu")
    assert scorer.provider == "CPUExecutionProvider"
    probs = scorer.predict(windows)
    assert set(probs) == set(SUBSETS)
    for name, net in nets.items():
        expected = net.probability(windows[:, :, SUBSETS[name]])
        assert probs[name].shape == (len(windows),) and probs[name].dtype == np.float32
        np.testing.assert_allclose(probs[name], expected, atol=1e-5)
        assert expected.std() > 0.05  # the comparison is not between constants
    single = scorer.predict(windows[:1])
    np.testing.assert_allclose(single["happy"], probs["happy"][:1], atol=1e-6)
    with pytest.raises(ValueError, match="windows"):
        scorer.predict(windows[:, :3])


def test_union_graph_pools_once_and_equals_each_model(bundle_dir: Path, nets: dict[str, Network], windows: np.ndarray) -> None:
    """realtime_fer networks run as one union graph: one window over the landmark union, pooled
    once; its outputs equal every model's own numpy network, through each of the three ways in."""
    from realtime_fer.models.fused import fuse_networks, union_columns

    b = load_bundle(bundle_dir)
    scorer = BundleScorer(b, device="cpu")
    assert scorer.union_graph and np.array_equal(scorer.union, b.landmark_union)
    graph = fuse_networks(nets, {e: np.asarray(SUBSETS[e]) for e in nets}).graph
    assert [i.name for i in graph.input] == ["window"] and [o.name for o in graph.output] == ["probabilities"]
    assert sum(n.op_type == "ReduceMean" for n in graph.node) == 1  # mean and delta pooling, once for all models
    union = scorer.union
    by_union = scorer.predict_union(windows[:, :, union])
    by_subsets = scorer.predict_subsets({e: np.ascontiguousarray(windows[:, :, SUBSETS[e]]) for e in nets})
    for name, net in nets.items():
        expected = net.probability(windows[:, :, SUBSETS[name]])
        np.testing.assert_allclose(by_union[name], expected, atol=1e-5)
        np.testing.assert_allclose(by_subsets[name], by_union[name], rtol=0, atol=0)
        cols = union_columns(net, np.searchsorted(union, SUBSETS[name]), len(union))
        np.testing.assert_array_equal(pool(windows[:, :, union], net.pooling)[:, cols], net.pooled(windows[:, :, SUBSETS[name]]))


def test_union_graph_refuses_networks_that_pool_differently(nets: dict[str, Network]) -> None:
    from dataclasses import replace

    from realtime_fer.models.fused import fuse_networks

    other = dict(nets)
    other["sad"] = replace(nets["sad"], pooling=("delta", "mean"))
    with pytest.raises(ValueError, match="differs from the others"):
        fuse_networks(other, {e: np.asarray(SUBSETS[e]) for e in nets})
    with pytest.raises(ValueError, match="no networks"):
        fuse_networks({}, {})


def test_models_that_are_not_realtime_fer_networks_run_side_by_side(copy: Path, windows: np.ndarray) -> None:
    """A model that is not a realtime_fer network (here a hand-made graph: the mean window
    through one random linear map) still scores: the models are joined side by side instead of
    into the union graph, each with its own outputs."""
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    want = BundleScorer(load_bundle(copy), device="cpu").predict(windows)
    n = len(SUBSETS["happy"])
    w = np.random.default_rng(0).normal(size=(3 * n, 1)).astype(np.float32)
    nodes = [
        helper.make_node("ReduceMean", ["window"], ["m"], axes=[1], keepdims=0),
        helper.make_node("Reshape", ["m", "shape"], ["flat"]),
        helper.make_node("MatMul", ["flat", "w"], ["s2"]),
        helper.make_node("Reshape", ["s2", "vec"], ["score"]),
        helper.make_node("Sigmoid", ["score"], ["probability"]),
    ]
    graph = helper.make_graph(
        nodes, "foreign",
        [helper.make_tensor_value_info("window", TensorProto.FLOAT, ["batch", T, n, 3])],
        [helper.make_tensor_value_info("probability", TensorProto.FLOAT, ["batch"]), helper.make_tensor_value_info("score", TensorProto.FLOAT, ["batch"])],
        [numpy_helper.from_array(np.array([-1, 3 * n], np.int64), "shape"), numpy_helper.from_array(w, "w"), numpy_helper.from_array(np.array([-1], np.int64), "vec")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(copy / "happy.onnx"))
    _rehash(copy, "happy.onnx")
    scorer = BundleScorer(load_bundle(copy), device="cpu")
    assert not scorer.union_graph
    got = scorer.predict(windows)
    own = ort.InferenceSession(str(copy / "happy.onnx"), providers=["CPUExecutionProvider"]).run(["probability"], {"window": np.ascontiguousarray(windows[:, :, SUBSETS["happy"]])})[0]
    np.testing.assert_allclose(got["happy"], own, atol=1e-6)
    for name in ("sad", "surprise"):
        np.testing.assert_allclose(got[name], want[name], atol=1e-6)
    np.testing.assert_allclose(scorer.predict_union(windows[:, :, scorer.union])["sad"], want["sad"], atol=1e-6)


def test_write_bundle_overwrites_only_bundles(bundle_dir: Path, nets: dict[str, Network], tmp_path: Path) -> None:
    again = _write(tmp_path / "b", nets)
    _write(again, nets)  # an existing bundle is replaced
    assert load_bundle(again).window_length == T
    with pytest.raises(BundleError, match="already exists"):
        write_bundle(again, nets, SUBSETS, THRESHOLDS, window={"length": T, "hop": 2}, overwrite=False)
    other = tmp_path / "precious"
    other.mkdir()
    (other / "thesis.tex").write_text("do not delete")
    with pytest.raises(BundleError, match="refusing"):
        _write(other, nets)
    assert (other / "thesis.tex").exists()


# -- bad bundles ---------------------------------------------------------------------------------
def test_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(BundleError, match="model bundle not found: .*nowhere"):
        load_bundle(tmp_path / "nowhere")


def test_file_instead_of_folder(tmp_path: Path) -> None:
    f = tmp_path / "model.onnx"
    f.write_bytes(b"x")
    with pytest.raises(BundleError, match="must be a folder"):
        load_bundle(f)


def test_folder_without_manifest(tmp_path: Path) -> None:
    with pytest.raises(BundleError, match=f"has no {MANIFEST}"):
        load_bundle(tmp_path)


@pytest.mark.parametrize("text", ["{not json", "", "\xff\xfe", "[1, 2]"], ids=["broken", "empty", "binary", "list"])
def test_manifest_that_is_not_a_json_object(copy: Path, text: str) -> None:
    (copy / MANIFEST).write_bytes(text.encode("latin-1"))
    with pytest.raises(BundleError, match="corrupt manifest"):
        load_bundle(copy)


@pytest.mark.parametrize("version", [2, 0, "1", None])
def test_wrong_schema_version(copy: Path, version: object) -> None:
    _edit_manifest(copy, lambda m: m.__setitem__("schema_version", version))
    with pytest.raises(BundleError, match=f"schema_version {version!r}.*reads version {SCHEMA_VERSION}"):
        load_bundle(copy)


@pytest.mark.parametrize(
    "edit, match",
    [
        (lambda m: m.pop("window"), "'window'"),
        (lambda m: m["window"].__setitem__("hop", 0), "hop must be >= 1"),
        (lambda m: m.__setitem__("emotions", {}), "non-empty"),
        (lambda m: m["emotions"]["sad"].pop("threshold"), "'threshold'"),
        (lambda m: m["emotions"]["happy"].__setitem__("landmarks", [0, 13, 468]), "landmark indices"),
        (lambda m: m["emotions"]["happy"].__setitem__("landmarks", [-1, 13]), "landmark indices"),
        (lambda m: m["emotions"]["happy"].__setitem__("landmarks", [13, 13]), "distinct"),
        (lambda m: m["emotions"]["happy"].__setitem__("landmarks", []), "landmark indices"),
        (lambda m: m["files"].pop("sad.onnx"), "no sha256 for sad.onnx"),
        (lambda m: m["window"].__setitem__("seconds", -0.5), "window seconds must be a number of seconds > 0"),
        (lambda m: m["window"].__setitem__("hop_seconds", "fast"), "window hop_seconds must be a number of seconds > 0"),
    ],
    ids=["no-window", "hop-0", "no-emotions", "no-threshold", "index-468", "index-negative", "duplicate-index", "no-landmarks", "no-hash", "seconds-negative", "hop-seconds-text"],
)
def test_malformed_manifest(copy: Path, edit, match: str) -> None:  # noqa: ANN001
    _edit_manifest(copy, edit)
    with pytest.raises(BundleError, match=match) as err:
        load_bundle(copy)
    assert str(copy) in str(err.value)


def test_missing_onnx_file(copy: Path) -> None:
    (copy / "sad.onnx").unlink()
    with pytest.raises(BundleError, match="sad.onnx for 'sad' is missing"):
        load_bundle(copy)


def test_changed_onnx_bytes_fail_the_hash(copy: Path) -> None:
    f = copy / "surprise.onnx"
    data = bytearray(f.read_bytes())
    data[len(data) // 2] ^= 0x01  # inside the weights: still a loadable model
    f.write_bytes(bytes(data))
    with pytest.raises(BundleError, match=r"surprise.onnx is corrupt \(sha256 differs"):
        load_bundle(copy)
    assert load_bundle(copy, verify_hashes=False).emotions["surprise"].file == "surprise.onnx"


def test_onnx_file_that_is_not_onnx(copy: Path) -> None:
    (copy / "happy.onnx").write_bytes(b"\x00garbage" * 10)
    _rehash(copy, "happy.onnx")
    with pytest.raises(BundleError, match="happy.onnx is not a readable ONNX model"):
        load_bundle(copy)


def test_landmark_count_that_does_not_match_the_model(copy: Path, bundle_dir: Path) -> None:
    # the manifest's happy entry loses a landmark: hashes still match, the input does not
    _edit_manifest(copy, lambda m: m["emotions"]["happy"].__setitem__("landmarks", SUBSETS["happy"][:-1]))
    with pytest.raises(BundleError, match=rf"happy.onnx takes input window\['batch', {T}, 10, 3\].*\[batch, {T}, 9, 3\]"):
        load_bundle(copy)

    # another emotion's model under happy's name, with its hash rewritten so that the hash
    # check passes and the input check is what fires
    shutil.copytree(bundle_dir, copy.parent / "swapped")
    swapped = copy.parent / "swapped"
    shutil.copyfile(swapped / "sad.onnx", swapped / "happy.onnx")
    _rehash(swapped, "happy.onnx")
    with pytest.raises(BundleError, match=rf"happy.onnx takes input window\['batch', {T}, {len(SUBSETS['sad'])}, 3\]"):
        load_bundle(swapped)
    # without the hash check too
    _edit_manifest(swapped, lambda m: m["files"].__setitem__("happy.onnx", "0" * 64))
    with pytest.raises(BundleError, match="takes input"):
        load_bundle(swapped, verify_hashes=False)


def test_window_length_that_does_not_match_the_model(copy: Path) -> None:
    _edit_manifest(copy, lambda m: m["window"].__setitem__("length", T + 1))
    with pytest.raises(BundleError, match="takes input"):
        load_bundle(copy)


def test_scorer_checks_the_model_input_itself(bundle_dir: Path) -> None:
    good = load_bundle(bundle_dir)
    entries = dict(good.emotions)
    entries["happy"] = type(entries["happy"])(**{**entries["happy"].__dict__, "landmarks": SUBSETS["happy"][:-2]})
    with pytest.raises(BundleError, match="takes input"):
        BundleScorer(ModelBundle(good.path, good.manifest, entries), device="cpu")


# -- decision rule ---------------------------------------------------------------------------------
def test_decide_argmax_above_threshold_else_neutral() -> None:
    probs = {
        "happy": np.array([0.90, 0.30, 0.60, 0.50, 0.2]),
        "sad": np.array([0.80, 0.20, 0.70, 0.95, 0.1]),
        "surprise": np.array([0.95, 0.10, 0.10, 0.50, 0.3]),
    }
    thresholds = {"happy": 0.5, "sad": 0.75, "surprise": 0.99}
    got = decide(probs, thresholds)
    # 0: surprise is most probable but below its threshold -> happy (0.90 > sad 0.80)
    # 1: nothing above threshold -> neutral; 2: sad 0.70 is more probable but below 0.75 -> happy
    # 3: happy exactly at its threshold, sad above and higher -> sad; 4: none -> neutral
    assert got.tolist() == ["happy", FALLBACK, "happy", "sad", FALLBACK]
    assert FALLBACK == "neutral"
    # a neutral model competes like the others
    with_neutral = {**probs, "neutral": np.array([0.99, 0.0, 0.0, 0.0, 0.0])}
    assert decide(with_neutral, {**thresholds, "neutral": 0.5})[0] == "neutral"
    # scalars are one window
    assert decide({"happy": 0.7, "sad": 0.1}, {"happy": 0.5, "sad": 0.5}).tolist() == ["happy"]


def _shipped_blendshapes(b: ModelBundle, n: int) -> np.ndarray | None:
    """Blendshape windows (n, T, B) for a bundle that reads them (scores in [0, 1]), else None."""
    if not b.blendshapes:
        return None
    from realtime_fer.explain.baselines import shipped_neutral_blendshapes

    # around the mean neutral face's scores, where real faces are (uniform scores in [0, 1]
    # put rarely active blendshapes thousands of training spreads away and saturate the models)
    rng = np.random.default_rng(3)
    face = shipped_neutral_blendshapes()[None, None] + rng.normal(0, 0.05, size=(n, 1, len(b.blendshapes)))
    return np.clip(face + rng.normal(0, 0.01, size=(n, b.window_length, len(b.blendshapes))), 0.0, 1.0).astype(np.float32)


def _score_shipped_model(windows: np.ndarray, n: int) -> tuple[ModelBundle, np.ndarray, dict[str, np.ndarray]]:
    """The shipped default bundle, ``n`` full-mesh windows of its length, and its scores of them
    (skips while no default model is shipped)."""
    if not (default_bundle_path() / MANIFEST).is_file():
        pytest.skip(f"no default model shipped yet at {default_bundle_path()}")
    b = load_bundle()
    w = np.resize(windows, (n, b.window_length, NUM_MESH_LANDMARKS, 3))
    return b, w, BundleScorer(b, device="cpu").predict(w, _shipped_blendshapes(b, n))


def test_one_fused_session_equals_each_emotion_model_run_alone(windows: np.ndarray) -> None:
    """The scorer joins the bundle's ONNX files into one graph; every output must equal the
    emotion's own file run in its own session."""
    import onnx
    import onnxruntime as ort

    from realtime_fer.models.fused import fuse_models

    from realtime_fer.explain.baselines import shipped_neutral_face

    # faces near the mean neutral face (pure noise of std 0.3 saturates every model): each window
    # a random expression-sized displacement of it, so the outputs differ between windows
    rng = np.random.default_rng(4)
    faces = shipped_neutral_face()[None, None] + rng.normal(0, 0.01, size=(6, 1, NUM_MESH_LANDMARKS, 3))
    near = (faces + rng.normal(0, 0.002, size=(6, windows.shape[1], NUM_MESH_LANDMARKS, 3))).astype(np.float32)
    b, w, fused = _score_shipped_model(near, 6)
    assert list(fused) == list(b.emotions)
    spread = []
    for name, entry in b.emotions.items():
        alone = ort.InferenceSession(str(b.path / entry.file), providers=["CPUExecutionProvider"])
        x = np.ascontiguousarray(w[:, :, entry.landmarks, :])
        feed = {"window": x}
        if b.blendshapes:
            feed["blendshapes"] = _shipped_blendshapes(b, len(x))
        want = alone.run(["probability"], feed)[0]
        np.testing.assert_allclose(fused[name], want, rtol=1e-6, atol=1e-7)
        spread.append(float(np.ptp(want)))
    assert max(spread) > 0.01  # the windows move the outputs
    models = {name: onnx.load(str(b.path / entry.file)) for name, entry in b.emotions.items()}
    graph = fuse_models(models).graph
    per_emotion = ["window", "blendshapes"] if b.blendshapes else ["window"]
    assert [i.name for i in graph.input] == [f"{e}/{k}" for e in b.emotions for k in per_emotion]
    assert [o.name for o in graph.output] == [f"{e}/probability" for e in b.emotions]
    with pytest.raises(ValueError, match="cannot contain"):
        fuse_models({"a/b": models["happy"]})


def test_bundle_decide_uses_its_thresholds(bundle_dir: Path) -> None:
    b = load_bundle(bundle_dir)
    probs = {"happy": np.array([0.56, 0.54]), "sad": np.array([0.1, 0.1]), "surprise": np.array([0.59, 0.1])}
    assert b.decide(probs).tolist() == ["happy", FALLBACK]


# -- onnxruntime providers and the shipped model -----------------------------------------------------
def test_cpu_provider_and_cuda_fallback(caplog: pytest.LogCaptureFixture) -> None:
    assert choose_providers("cpu") == ["CPUExecutionProvider"]
    if cuda_device_present():
        pytest.skip("an NVIDIA device is present")
    assert choose_providers("auto") == ["CPUExecutionProvider"]
    with caplog.at_level(logging.WARNING, logger="realtime_fer.models.runtime"):
        assert choose_providers("cuda") == ["CPUExecutionProvider"]
    assert any("CUDA requested" in r.getMessage() for r in caplog.records)


def test_shipped_default_model_loads_and_scores(windows: np.ndarray) -> None:
    b, _, probs = _score_shipped_model(windows, 4)
    assert set(probs) == set(b.emotions)
    assert all(((p >= 0) & (p <= 1)).all() for p in probs.values())
    assert b.manifest.get("training", {}).get("sources"), "the model card data: training sources with licences"
