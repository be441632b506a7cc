"""The per-emotion classifiers on real CK+ landmarks: the deep randomized network (closed-form
balanced ridge), the torch MLP, their ONNX export, Platt calibration, thresholds, metrics and
windows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

from fer_testdata import ck_subset, session_cache
from realtime_fer.data.extract import ExtractedSample, extract_dataset
from realtime_fer.data.windows import iter_window_chunks, sample_windows
from realtime_fer.features.windows import WindowOptions, sliding_windows, still_window, still_windows
from realtime_fer.labels import EMOTIONS
from realtime_fer.landmarks.detector import NUM_MESH_LANDMARKS
from realtime_fer.models.calibration import choose_threshold, fit_platt
from realtime_fer.models.metrics import binary_metrics, roc_auc
from realtime_fer.models.network import Network, pool
from realtime_fer.models.onnx_export import INPUT_NAME, OUTPUT_PROBABILITY, OUTPUT_SCORE, build_onnx, save_onnx
from realtime_fer.models.randomized import RandomizedOptions, fit_randomized, random_layers
from realtime_fer.models.runtime import make_session
from realtime_fer.training.features import pooled_set
from realtime_fer.training.fitting import fit_models
from realtime_fer.training.splits import group_kfold, group_split

HAPPY = EMOTIONS.index("happy")
SURPRISE = EMOTIONS.index("surprise")
WINDOW = WindowOptions(length=4, hop=2, still_jitter=0.002)
#: a mouth/brow/eye subset of the mesh, to keep the ONNX checks small
SUBSET = [0, 13, 14, 17, 37, 39, 40, 61, 78, 81, 82, 87, 91, 95, 146, 178, 181, 185, 267, 269, 270, 291, 308, 311, 312, 317, 321, 324, 375, 402, 405, 409, 415, 52, 53, 55, 63, 65, 66, 70, 105, 107, 282, 283, 285, 293, 295, 296, 300, 334, 336, 159, 145, 386, 374]
SMALL = RandomizedOptions(hidden=[96, 80], activation="tanh", input_scale=0.5, bias_scale=0.5, ridge=0.01, direct_link=False, seed=3)


@pytest.fixture(scope="module")
def ck(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Real CK+48 landmarks (30 apex frames per label, about 100 subjects), pooled."""
    root = ck_subset(shared_data, tmp_path_factory)
    res = extract_dataset(root, session_cache(tmp_path_factory), workers=2, progress=False)
    samples = [s for s in res.samples if s.detected.any()]
    assert len(samples) >= 0.95 * len(res.samples) > 150
    groups = np.array([s.ref.group for s in samples])
    assert all(g.startswith("S") for g in groups)
    codes = np.array([EMOTIONS.index(s.ref.label) for s in samples])
    plain = pooled_set(samples, WINDOW, ("mean",), jitter=False)
    return {"samples": samples, "groups": groups, "codes": codes, "plain": plain}


# -- the randomized network ---------------------------------------------------------------------
def test_randomized_training_is_deterministic(ck: dict) -> None:
    x, codes = ck["plain"].features, ck["codes"][ck["plain"].owner]
    pos = {"happy": np.array([HAPPY]), "surprise": np.array([SURPRISE])}
    a = fit_randomized(x, codes, pos, SMALL, window_length=4, n_landmarks=NUM_MESH_LANDMARKS)
    b = fit_randomized(x, codes, pos, SMALL, window_length=4, n_landmarks=NUM_MESH_LANDMARKS)
    for e in pos:
        for (wa, ba), (wb, bb) in zip(a[e].layers, b[e].layers):
            np.testing.assert_array_equal(wa, wb)
            np.testing.assert_array_equal(ba, bb)
        np.testing.assert_array_equal(a[e].head_w, b[e].head_w)
        assert a[e].head_b == b[e].head_b
    # the hidden layers are a pure function of (input size, options) and shared by all emotions
    for (w1, _), (w2, _) in zip(random_layers(x.shape[1], SMALL), a["happy"].layers):
        np.testing.assert_array_equal(w1, w2)
    assert a["happy"].layers[0][0] is a["surprise"].layers[0][0]
    other = random_layers(x.shape[1], RandomizedOptions(**{**SMALL.__dict__, "seed": 4}))
    assert not np.array_equal(other[0][0], a["happy"].layers[0][0])


def test_closed_form_solves_the_balanced_weighted_ridge(ck: dict) -> None:
    """The shared-Gram solution equals the weighted ridge solved directly, and balancing makes
    the two classes weigh the same: mean training score of positives + of negatives = 1
    (the intercept's normal equation), while unbalanced ridge gives mean score = prevalence."""
    x, codes = ck["plain"].features, ck["codes"][ck["plain"].owner]
    opts = RandomizedOptions(hidden=[64], ridge=0.05, direct_link=True, seed=1)
    nets = fit_randomized(x, codes, {"happy": [HAPPY], "surprise": [SURPRISE]}, opts, window_length=4, n_landmarks=NUM_MESH_LANDMARKS)
    for e, code in (("happy", HAPPY), ("surprise", SURPRISE)):
        net = nets[e]
        y = codes == code
        reps = net.representations_pooled(x)
        h = np.concatenate([reps[i] for i in net.head_inputs] + [np.ones((len(x), 1), np.float32)], axis=1).astype(np.float64)
        w = np.where(y, 0.5 / y.sum(), 0.5 / (~y).sum())
        pen = np.full(h.shape[1], opts.ridge)
        pen[-1] = 0.0
        beta = np.linalg.solve(h.T @ (w[:, None] * h) + np.diag(pen), h.T @ (w * y))
        np.testing.assert_allclose(net.head_w, beta[:-1], atol=2e-4 * np.abs(beta).max())
        assert net.head_b == pytest.approx(beta[-1], abs=1e-3)
        s = net.score_pooled(x)
        assert s[y].mean() + s[~y].mean() == pytest.approx(1.0, abs=2e-3)

    unbalanced = fit_randomized(x, codes, {"happy": [HAPPY]}, RandomizedOptions(**{**opts.__dict__, "balance": False}), window_length=4, n_landmarks=NUM_MESH_LANDMARKS)
    s = unbalanced["happy"].score_pooled(x)
    assert s.mean() == pytest.approx(np.mean(codes == HAPPY), abs=2e-3)

    with pytest.raises(ValueError, match="positive and negative"):
        fit_randomized(x, codes, {"neutral": [EMOTIONS.index("neutral")]}, opts, window_length=4, n_landmarks=NUM_MESH_LANDMARKS)


def test_negatives_balanced_per_label_solve_their_weighted_ridge(ck: dict) -> None:
    """``balance_negatives``: each negative label weighs the same within the negatives (its
    samples share 0.5 / n_labels), so the mean training score of the positives plus the mean over
    the negative labels of their mean score is 1. On labels of unequal sizes (a tenth of the
    surprise photos kept) that is another fit than per-sample balancing."""
    x, codes = ck["plain"].features, ck["codes"][ck["plain"].owner]
    keep = ~(codes == SURPRISE) | (np.cumsum(codes == SURPRISE) % 10 == 0)
    x, codes = x[keep], codes[keep]
    opts = RandomizedOptions(hidden=[64], ridge=0.05, direct_link=True, seed=1, balance_negatives=True)
    net = fit_randomized(x, codes, {"happy": [HAPPY]}, opts, window_length=4, n_landmarks=NUM_MESH_LANDMARKS)["happy"]
    y = codes == HAPPY
    labels = [c for c in np.unique(codes) if c != HAPPY]
    counts = {c: int(np.sum(codes == c)) for c in labels}
    assert counts[SURPRISE] * 3 < max(counts.values())
    reps = net.representations_pooled(x)
    h = np.concatenate([reps[i] for i in net.head_inputs] + [np.ones((len(x), 1), np.float32)], axis=1).astype(np.float64)
    w = np.where(y, 0.5 / y.sum(), 0.0)
    for c in labels:
        w[codes == c] = 0.5 / (len(labels) * counts[c])
    pen = np.full(h.shape[1], opts.ridge)
    pen[-1] = 0.0
    beta = np.linalg.solve(h.T @ (w[:, None] * h) + np.diag(pen), h.T @ (w * y))
    np.testing.assert_allclose(net.head_w, beta[:-1], atol=2e-4 * np.abs(beta).max())
    s = net.score_pooled(x)
    assert s[y].mean() + np.mean([s[codes == c].mean() for c in labels]) == pytest.approx(1.0, abs=2e-3)
    plain = fit_randomized(x, codes, {"happy": [HAPPY]}, RandomizedOptions(**{**opts.__dict__, "balance_negatives": False}), window_length=4, n_landmarks=NUM_MESH_LANDMARKS)["happy"]
    assert np.abs(plain.head_w - net.head_w).max() > 1e-3 * np.abs(net.head_w).max()


def test_balanced_ridge_separates_happy_on_held_out_subjects(ck: dict) -> None:
    plain, groups, codes = ck["plain"], ck["groups"], ck["codes"]
    split = group_split(groups, [0.3], seed=0)
    test_subjects = set(groups[split == 1])
    assert test_subjects and not test_subjects & set(groups[split == 0])  # subject-independent
    train = pooled_set([s for s, k in zip(ck["samples"], split) if k == 0], WINDOW, ("mean",), jitter=True, seed=0)
    train_codes = codes[split == 0][train.owner]
    nets = fit_randomized(train.features, train_codes, {"happy": [HAPPY]}, SMALL, window_length=4, n_landmarks=NUM_MESH_LANDMARKS)
    rows = np.nonzero(split[plain.owner] == 1)[0]
    y = codes[plain.owner[rows]] == HAPPY
    assert 3 <= y.sum() < len(y)
    s = nets["happy"].score_pooled(plain.features[rows])
    auc = roc_auc(s, y)
    assert auc > 0.95, auc


def test_float16_weights_are_exact_and_stored_as_half(ck: dict, tmp_path: Path) -> None:
    x, codes = ck["plain"].features, ck["codes"][ck["plain"].owner]
    half = fit_randomized(x, codes, {"happy": [HAPPY]}, SMALL, window_length=4, n_landmarks=NUM_MESH_LANDMARKS)["happy"]
    full = fit_randomized(x, codes, {"happy": [HAPPY]}, RandomizedOptions(**{**SMALL.__dict__, "weight_dtype": "float32"}), window_length=4, n_landmarks=NUM_MESH_LANDMARKS)["happy"]
    for w, b in half.layers:
        assert w.dtype == np.float32 and b.dtype == np.float32
        np.testing.assert_array_equal(w.astype(np.float16).astype(np.float32), w)
        np.testing.assert_array_equal(b.astype(np.float16).astype(np.float32), b)
    assert not np.array_equal(full.layers[0][0].astype(np.float16).astype(np.float32), full.layers[0][0])

    def half_inits(model: onnx.ModelProto) -> int:
        return sum(t.data_type == onnx.TensorProto.FLOAT16 for t in model.graph.initializer)

    assert half_inits(build_onnx(half)) == 2 * len(SMALL.hidden)  # every hidden weight and bias
    assert half_inits(build_onnx(full)) == 0
    size_half = save_onnx(half, tmp_path / "half.onnx").stat().st_size
    size_full = save_onnx(full, tmp_path / "full.onnx").stat().st_size
    assert size_half < 0.6 * size_full


# -- ONNX export --------------------------------------------------------------------------------
def _windows(ck: dict, n: int = 64) -> np.ndarray:
    """Real windows with movement: jittered stills of CK+ faces plus a drift, on SUBSET."""
    rng = np.random.default_rng(0)
    wins = np.concatenate([sample_windows(s, WINDOW, jitter=True, rng=rng) for s in ck["samples"][:: max(1, len(ck["samples"]) // n)]])[:n]
    wins += np.linspace(0, 0.01, WINDOW.length, dtype=np.float32)[None, :, None, None]
    return np.ascontiguousarray(wins[:, :, SUBSET])


def _check_onnx(net: Network, windows: np.ndarray, tmp_path: Path) -> None:
    path = save_onnx(net, tmp_path / f"{net.family}.onnx", name="happy")
    model = onnx.load(str(path))
    onnx.checker.check_model(model)
    dims = model.graph.input[0].type.tensor_type.shape.dim
    assert model.graph.input[0].name == INPUT_NAME
    assert [d.dim_value or d.dim_param for d in dims] == ["batch", net.window_length, net.n_landmarks, 3]
    assert {p.key: p.value for p in model.metadata_props}["family"] == net.family
    sess = make_session(path, "cpu")
    for batch in (windows, windows[:1]):
        prob, score = sess.run([OUTPUT_PROBABILITY, OUTPUT_SCORE], {INPUT_NAME: batch})
        assert prob.shape == score.shape == (len(batch),)
        np.testing.assert_allclose(score, net.score(batch), atol=1e-5, rtol=1e-5)
        np.testing.assert_allclose(prob, net.probability(batch), atol=1e-5)
    assert 0.05 < net.probability(windows).std()  # a non-trivial check: the outputs vary


@pytest.mark.parametrize(
    "options",
    [
        RandomizedOptions(hidden=[96, 80], activation="tanh", direct_link=True, head_layers="all", seed=1),
        RandomizedOptions(hidden=[128], activation="relu", direct_link=False, head_layers="last", seed=2, weight_dtype="float32"),
        RandomizedOptions(hidden=[70, 90, 65], activation="sigmoid", direct_link=True, head_layers="last", seed=3),
    ],
    ids=["tanh-direct-all", "relu-last-f32", "sigmoid-direct-last"],
)
def test_onnx_matches_numpy_randomized(ck: dict, options: RandomizedOptions, tmp_path: Path) -> None:
    wins = _windows(ck)
    feats = pool(wins, ("mean", "delta"))
    codes = ck["codes"][:: max(1, len(ck["samples"]) // 64)][: len(wins)]
    codes = np.where(np.arange(len(wins)) % 3 == 0, HAPPY, codes)  # both classes for sure
    net = fit_randomized(feats, codes, {"happy": [HAPPY]}, options, window_length=WINDOW.length, n_landmarks=len(SUBSET), pooling=("mean", "delta"))["happy"]
    net.platt_a, net.platt_b = 3.5, -1.25
    _check_onnx(net, wins, tmp_path)


def test_onnx_matches_numpy_torch(ck: dict, tmp_path: Path) -> None:
    pytest.importorskip("torch")
    from realtime_fer.models.torch_mlp import TorchOptions, fit_torch

    wins = _windows(ck)
    feats = pool(wins, ("mean", "delta"))
    codes = np.where(np.arange(len(wins)) % 3 == 0, HAPPY, SURPRISE)
    opts = TorchOptions(hidden=[32, 16], epochs=3, batch_size=16, threads=1)
    net = fit_torch(feats, codes, {"happy": [HAPPY]}, opts, window_length=WINDOW.length, n_landmarks=len(SUBSET), pooling=("mean", "delta"))["happy"]
    assert net.family == "torch" and net.activation == "relu" and net.head_inputs == (2,)
    net.platt_a, net.platt_b = 2.0, 0.3
    _check_onnx(net, wins, tmp_path)
    # deterministic for a seed too
    again = fit_torch(feats, codes, {"happy": [HAPPY]}, opts, window_length=WINDOW.length, n_landmarks=len(SUBSET), pooling=("mean", "delta"))["happy"]
    np.testing.assert_array_equal(again.head_w, net.head_w)


def test_fit_models_shares_features_and_matches_single_fits(ck: dict) -> None:
    plain, codes = ck["plain"], ck["codes"][ck["plain"].owner]
    positives = {"happy": HAPPY, "surprise": SURPRISE, "anger": EMOTIONS.index("anger")}
    subsets = {"happy": SUBSET, "surprise": SUBSET, "anger": list(range(NUM_MESH_LANDMARKS))}
    rows = np.arange(0, len(codes), 2)
    nets, seconds = fit_models("randomized", plain, codes, positives, subsets, window_length=4, randomized=SMALL, rows=rows)
    assert set(nets) == set(positives) and seconds >= 0
    assert nets["happy"].n_landmarks == len(SUBSET) and nets["anger"].n_landmarks == NUM_MESH_LANDMARKS
    alone = fit_randomized(plain.subset(SUBSET)[rows], codes[rows], {"surprise": [SURPRISE]}, SMALL, window_length=4, n_landmarks=len(SUBSET))
    np.testing.assert_allclose(nets["surprise"].head_w, alone["surprise"].head_w, rtol=1e-4, atol=1e-5)
    # the column subset of pooled features is the pooled landmark subset
    wins = sample_windows(ck["samples"][0], WINDOW, jitter=False)
    np.testing.assert_array_equal(pool(wins[:, :, SUBSET], ("mean",)), pool(wins, ("mean",))[:, plain.columns(SUBSET)])


# -- calibration, thresholds, metrics --------------------------------------------------------------
def test_platt_recovers_a_known_logistic_model() -> None:
    rng = np.random.default_rng(0)
    s = rng.normal(0.0, 1.5, 40000)
    y = rng.random(len(s)) < 1.0 / (1.0 + np.exp(-(2.0 * s - 1.0)))
    a, b = fit_platt(s, y)
    assert a == pytest.approx(2.0, abs=0.08) and b == pytest.approx(-1.0, abs=0.06)
    # a shifted, rescaled score gets the matching parameters
    a2, b2 = fit_platt(10 * s + 3, y)
    assert a2 == pytest.approx(a / 10, rel=1e-4) and b2 == pytest.approx(b - 3 * a / 10, abs=1e-3)


def test_platt_on_separable_scores_stays_finite() -> None:
    s = np.array([-3.0, -2.0, -1.5, -1.0, 1.0, 1.2, 2.5, 4.0])
    y = s > 0
    a, b = fit_platt(s, y)
    assert np.isfinite([a, b]).all() and a > 0
    p = 1 / (1 + np.exp(-(a * s + b)))
    assert (p[y] > 0.5).all() and (p[~y] < 0.5).all()
    # smoothed targets: not 0/1 probabilities
    assert p.max() < 0.99 and p.min() > 0.01
    with pytest.raises(ValueError, match="both"):
        fit_platt(s, np.ones_like(y))


def test_choose_threshold() -> None:
    p = np.array([0.1, 0.2, 0.3, 0.4, 0.6, 0.7, 0.8, 0.9])
    y = np.array([0, 0, 0, 1, 0, 1, 1, 1], bool)
    assert choose_threshold(p, y, "f1") == pytest.approx(0.4)  # F1 8/9 beats 6/7 at 0.7
    # separable: the threshold separates the classes exactly
    for crit in ("f1", "balanced_accuracy", "accuracy"):
        t = choose_threshold(p, p > 0.5, crit)
        assert 0.4 < t <= 0.6

    # brute force on random data: no threshold does better
    rng = np.random.default_rng(1)
    p = rng.random(200).round(2)
    y = rng.random(200) < p**2
    for crit in ("f1", "balanced_accuracy", "accuracy"):
        def value(t: float) -> float:
            pred = p >= t
            tp, fp, fn, tn = np.sum(pred & y), np.sum(pred & ~y), np.sum(~pred & y), np.sum(~pred & ~y)
            return {"f1": 2 * tp / (2 * tp + fp + fn), "balanced_accuracy": 0.5 * (tp / y.sum() + tn / (~y).sum()), "accuracy": (tp + tn) / len(y)}[crit]

        t = choose_threshold(p, y, crit)
        assert value(t) == pytest.approx(max(value(c) for c in np.unique(np.r_[p, 0.5])), abs=1e-12), crit


def test_choose_threshold_bootstrap_is_steadier() -> None:
    """The bootstrap median lies in the probabilities' range, is reproducible for a seed, and
    moves less than the single best point over twelve held-out draws of one population."""
    def draw(seed: int) -> tuple[np.ndarray, np.ndarray]:
        r = np.random.default_rng(seed)
        y = r.random(1500) < 0.05  # few positives, as for fear on the calibration photos
        return np.clip(r.normal(0.15 + 0.25 * y, 0.12), 0, 1), y

    plain, bagged = [], []
    for seed in range(12):
        p, y = draw(seed)
        plain.append(choose_threshold(p, y, "f1"))
        bagged.append(choose_threshold(p, y, "f1", bootstrap=60, seed=3))
        assert p.min() <= bagged[-1] <= p.max()
    assert choose_threshold(*draw(0), "f1", bootstrap=60, seed=3) == bagged[0]
    assert np.std(bagged) < np.std(plain)
    with pytest.raises(ValueError, match="bootstrap"):
        choose_threshold(*draw(0), "f1", bootstrap=-1)


def test_roc_auc_equals_pairwise_count() -> None:
    rng = np.random.default_rng(2)
    for n, levels in ((30, 4), (200, 15), (57, 1000)):
        s = rng.integers(0, levels, n).astype(float)  # many ties
        y = rng.random(n) < 0.3
        pos, neg = s[y], s[~y]
        pairs = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
        assert roc_auc(s, y) == pytest.approx(pairs / (len(pos) * len(neg)), abs=1e-12)
    assert roc_auc([0.1, 0.2, 0.9], [0, 0, 1]) == 1.0
    assert roc_auc([0.9, 0.2, 0.1], [0, 0, 1]) == 0.0
    assert roc_auc([0.5, 0.5], [0, 1]) == 0.5
    assert roc_auc([0.1, 0.2], [1, 1]) is None


def test_binary_metrics_counts() -> None:
    p = np.array([0.9, 0.8, 0.4, 0.3, 0.6, 0.2, 0.1, 0.7])
    y = np.array([1, 1, 1, 0, 0, 0, 0, 1], bool)
    m = binary_metrics(p, y, 0.5)
    # predictions at 0.5: 1 1 0 0 1 0 0 1 -> tp 3, fn 1, fp 1, tn 3
    assert m["n_pos"] == 4 and m["n_neg"] == 4
    assert m["accuracy"] == pytest.approx(6 / 8)
    assert m["balanced_accuracy"] == pytest.approx(0.5 * (3 / 4 + 3 / 4))
    assert m["f1"] == pytest.approx(2 * 3 / (2 * 3 + 1 + 1))
    assert m["auc"] == pytest.approx(roc_auc(p, y))
    assert set(m) >= {"auc", "accuracy", "balanced_accuracy", "f1", "n_pos", "n_neg"}
    one_class = binary_metrics(p[:3], y[:3], 0.5)
    assert one_class["auc"] is None and one_class["balanced_accuracy"] is None and one_class["n_neg"] == 0
    assert binary_metrics(np.zeros(0), np.zeros(0, bool), 0.5)["accuracy"] is None


# -- windows ----------------------------------------------------------------------------------------
def test_sliding_windows_skip_frames_without_a_face() -> None:
    seq = np.arange(12, dtype=np.float32)[:, None, None] * np.ones((12, 5, 3), np.float32)
    seq[5] = np.nan  # no face in frame 5
    wins, starts = sliding_windows(seq, None, length=4, hop=2)
    assert starts.tolist() == [0, 6, 8]
    assert wins.shape == (3, 4, 5, 3)
    np.testing.assert_array_equal(wins[:, :, 0, 0], [[0, 1, 2, 3], [6, 7, 8, 9], [8, 9, 10, 11]])
    explicit, _ = sliding_windows(seq, np.isfinite(seq).all(axis=(1, 2)), 4, 2)
    np.testing.assert_array_equal(explicit, wins)
    short, s0 = sliding_windows(seq[:3], None, 4, 1)
    assert short.shape == (0, 4, 5, 3) and len(s0) == 0
    with pytest.raises(ValueError):
        WindowOptions(length=0)


def test_still_windows_repeat_the_frame_with_measured_jitter(ck: dict) -> None:
    frame = np.asarray(ck["plain"].features[0].reshape(NUM_MESH_LANDMARKS, 3))
    plain = still_window(frame, 6)
    assert plain.shape == (6, NUM_MESH_LANDMARKS, 3) and (plain == frame).all()
    jit = still_windows(np.stack([frame] * 50), 6, 0.004, np.random.default_rng(0))
    assert jit.shape == (50, 6, NUM_MESH_LANDMARKS, 3)
    noise = jit - frame
    assert noise.std() == pytest.approx(0.004, rel=0.02) and abs(noise.mean()) < 1e-4


def test_sample_windows_of_real_samples(ck: dict) -> None:
    still = ck["samples"][0]
    assert still.ref.kind == "image"
    w = sample_windows(still, WINDOW, jitter=False)
    assert w.shape == (1, WINDOW.length, NUM_MESH_LANDMARKS, 3) and np.isfinite(w).all()
    assert (w[0] == w[0, 0]).all()
    # a synthetic 'video' made of the real stills: sliding windows, capped by max_windows
    frames = np.concatenate([s.landmarks for s in ck["samples"][:20]])
    frames[7] = np.nan
    video = ExtractedSample(ref=type(still.ref)(still.ref.path, still.ref.label, still.ref.group, "video", (), "imagefolder"), landmarks=frames, fps=25.0, frame_size=still.frame_size)
    wins = sample_windows(video, WINDOW, jitter=True)
    # starts 0, 2, ..., 16 except 4 and 6, whose windows hold the faceless frame 7
    assert wins.shape == (7, WINDOW.length, NUM_MESH_LANDMARKS, 3) and np.isfinite(wins).all()
    np.testing.assert_array_equal(wins, sample_windows(video, WINDOW, jitter=False))  # real motion: no jitter
    np.testing.assert_allclose(wins[2, 0], ck["plain"].features[8].reshape(NUM_MESH_LANDMARKS, 3), atol=1e-6)
    assert len(sample_windows(video, WINDOW, jitter=False, max_windows=3)) == 3
    # chunking does not change the windows
    chunks = list(iter_window_chunks(ck["samples"][:40], WINDOW, jitter=False, chunk=7))
    assert len(chunks) > 1
    allw = np.concatenate([c[0] for c in chunks])
    owner = np.concatenate([c[1] for c in chunks])
    assert owner.tolist() == list(range(40))
    np.testing.assert_array_equal(pool(allw, ("mean",)), ck["plain"].features[:40])


def test_group_kfold_keeps_subjects_together(ck: dict) -> None:
    groups = ck["groups"]
    folds = group_kfold(groups, 5, seed=0)
    assert set(folds.tolist()) == set(range(5))
    for g in np.unique(groups):
        assert len(set(folds[groups == g].tolist())) == 1
    with pytest.raises(ValueError, match="groups"):
        group_kfold(groups[:3], 10)


def test_mirrored_training_windows_follow_their_own_and_swap_sides(ck: dict) -> None:
    """``data.mirror``: every window is followed by its horizontal mirror image, owned by the
    same sample; mirroring twice gives the window back, and the mirror's left mouth corner is
    the original's right one, reflected."""
    from realtime_fer.landmarks.normalize import mirror_index, mirror_normalized
    from realtime_fer.training.config import TrainConfig

    samples = ck["samples"][:12]
    plain = pooled_set(samples, WINDOW, ("mean",), jitter=False)
    both = pooled_set(samples, WINDOW, ("mean",), jitter=False, mirror=True)
    assert len(both.features) == 2 * len(plain.features)
    assert sorted(both.owner.tolist()) == sorted(plain.owner.tolist() * 2)
    np.testing.assert_array_equal(both.features[: len(plain.features)], plain.features)
    orig = plain.features.reshape(len(plain.features), NUM_MESH_LANDMARKS, 3)
    mirrored = both.features[len(plain.features) :].reshape(orig.shape)
    left, right = 61, 291  # MediaPipe's mouth corners
    assert mirror_index()[left] == right
    np.testing.assert_allclose(mirrored, mirror_normalized(orig), atol=1e-5)
    np.testing.assert_allclose(mirror_normalized(mirrored), orig, atol=2e-3)  # twice: the window again
    # the mirror's left corner is where the original's right one was, reflected (up to the re-fit)
    np.testing.assert_allclose(mirrored[:, left, 0], -orig[:, right, 0], atol=0.1)
    assert np.abs(mirrored - orig).max() > 0.01  # a real face is not its own mirror image
    assert TrainConfig().data.mirror is False


@pytest.mark.parametrize("hidden", [[16], [16, 8]])
def test_an_ensemble_is_one_network_averaging_its_members(hidden: list[int], tmp_path: Path) -> None:
    """``ensemble: 3`` fits seeds 3*seed .. 3*seed+2 and folds them into one network (side by
    side, block-diagonal after the first layer) that scores their mean, in numpy and ONNX."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 12)).astype(np.float32)
    y = (x[:, 0] + x[:, 1] ** 2 > 1).astype(int)
    kw = dict(window_length=2, n_landmarks=4, pooling=("mean",))
    ens = fit_randomized(x, y, {"e": np.array([1])}, RandomizedOptions(hidden=hidden, ensemble=3, seed=2), **kw)["e"]
    members = [fit_randomized(x, y, {"e": np.array([1])}, RandomizedOptions(hidden=hidden, seed=s), **kw)["e"] for s in (6, 7, 8)]
    assert ens.layers[0][0].shape[1] == 3 * hidden[0] and ens.extras["ensemble"] == 3
    np.testing.assert_allclose(ens.score_pooled(x), np.mean([m.score_pooled(x) for m in members], axis=0), atol=1e-5)
    windows = rng.normal(size=(5, 2, 4, 3)).astype(np.float32)
    save_onnx(ens, tmp_path / "e.onnx")
    (score,) = make_session(tmp_path / "e.onnx").run([OUTPUT_SCORE], {INPUT_NAME: windows})
    np.testing.assert_allclose(np.ravel(score), ens.score(windows), atol=1e-4)
    with pytest.raises(ValueError, match="ensemble"):
        RandomizedOptions(ensemble=0)
