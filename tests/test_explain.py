"""Integrated Gradients on a network trained on real CK+ landmarks: our engine equals Captum's
IntegratedGradients on the same torch model; attributions are complete (sum = output difference)
for every baseline kind; the pooled-space shortcut equals the per-frame attribution of still
windows; and the dataset-level relevance of happy is concentrated around the mouth."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fer_testdata import ck_subset, session_cache
from realtime_fer.data.extract import extract_dataset
from realtime_fer.errors import DataError
from realtime_fer.explain.baselines import BASELINE_KINDS, BaselineBank, shipped_neutral_face
from realtime_fer.explain.gradients import input_gradient
from realtime_fer.explain.integrated_gradients import IntegratedGradients
from realtime_fer.explain.regions import face_regions
from realtime_fer.explain.relevance import attribute_against, landmark_relevance
from realtime_fer.features.windows import WindowOptions
from realtime_fer.labels import EMOTIONS
from realtime_fer.landmarks.detector import NUM_MESH_LANDMARKS
from realtime_fer.models.calibration import fit_platt
from realtime_fer.models.network import Network, pool
from realtime_fer.models.randomized import RandomizedOptions
from realtime_fer.training.features import pooled_set
from realtime_fer.training.fitting import fit_models

WINDOW = WindowOptions(length=4, hop=2, still_jitter=0.0015)
ALL = list(range(NUM_MESH_LANDMARKS))
OPTIONS = RandomizedOptions(hidden=[128, 96], activation="tanh", input_scale=0.5, ridge=0.01, direct_link=True, seed=0)
#: the same without the direct link: its head reads only the hidden layers (see the mouth check)
HIDDEN_ONLY = RandomizedOptions(hidden=[128, 96], activation="tanh", input_scale=0.5, ridge=0.01, direct_link=False, seed=0)


@pytest.fixture(scope="module")
def ck(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Real CK+ faces (30 per label), a calibrated happy network on all 468 landmarks, and the
    baseline bank of the faces."""
    res = extract_dataset(ck_subset(shared_data, tmp_path_factory), session_cache(tmp_path_factory), workers=2, progress=False)
    samples = [s for s in res.samples if s.detected.any()]
    train = pooled_set(samples, WINDOW, ("mean",), jitter=True, seed=0)
    plain = pooled_set(samples, WINDOW, ("mean",), jitter=False)
    labels = np.array([s.ref.label for s in samples])
    codes = np.array([EMOTIONS.index(l) for l in labels])
    y = labels[plain.owner] == "happy"
    fitted = []
    for options in (OPTIONS, HIDDEN_ONLY):
        nets, _ = fit_models("randomized", train, codes[train.owner], {"happy": EMOTIONS.index("happy")}, {"happy": ALL}, window_length=WINDOW.length, randomized=options)
        nets["happy"].platt_a, nets["happy"].platt_b = fit_platt(nets["happy"].score_pooled(plain.features), y)
        fitted.append(nets["happy"])
    net, hidden_only = fitted
    faces = plain.features.reshape(-1, NUM_MESH_LANDMARKS, 3)
    groups = np.array([s.ref.group for s in samples])[plain.owner]
    bank = BaselineBank.from_faces(faces, labels[plain.owner], groups)
    happy = np.nonzero(y)[0]
    # still windows of the happy faces, with a little jitter so the frames differ (row i: happy[i])
    rng = np.random.default_rng(1)
    windows = np.repeat(faces[happy][:, None], WINDOW.length, axis=1) + rng.normal(0, 0.0015, size=(len(happy), WINDOW.length, NUM_MESH_LANDMARKS, 3))
    return {"net": net, "hidden_only": hidden_only, "bank": bank, "faces": faces, "labels": labels[plain.owner], "groups": groups, "happy": happy, "windows": windows.astype(np.float32)}


def _captum(net: Network, inputs: np.ndarray, baseline: np.ndarray, n_steps: int, method: str) -> np.ndarray:
    torch = pytest.importorskip("torch")
    captum_attr = pytest.importorskip("captum.attr")
    from realtime_fer.models.torch_mlp import build_module

    module = build_module(net).eval()

    def calibrated_logit(x):  # noqa: ANN001, ANN202 - the output our engine explains
        return net.platt_a * module(x) + net.platt_b

    ig = captum_attr.IntegratedGradients(calibrated_logit)
    x = torch.tensor(inputs, dtype=torch.float32)
    b = torch.tensor(np.broadcast_to(baseline, inputs.shape).copy(), dtype=torch.float32)
    return ig.attribute(x, baselines=b, n_steps=n_steps, method=method, internal_batch_size=256).detach().numpy().astype(np.float64)


# (Captum 0.9's riemann_trapezoid gives its n points weights 1/n with halved ends, summing to
# (n-1)/n; ours is the textbook trapezoid rule, weights summing to 1, so that one is not compared.)
@pytest.mark.parametrize("method,n_steps", [("gausslegendre", 24), ("riemann_left", 30), ("riemann_middle", 20)])
def test_engine_equals_captum(ck: dict, method: str, n_steps: int) -> None:
    net, bank = ck["net"], ck["bank"]
    inputs = ck["windows"][:6]
    baseline = np.repeat(bank.typical["surprise"][None], WINDOW.length, axis=0)
    ours = IntegratedGradients(net).attribute(inputs, baseline, n_steps=n_steps, method=method)
    theirs = _captum(net, inputs, baseline, n_steps, method)
    scale = np.abs(theirs).max()
    assert scale > 1e-3  # a non-trivial comparison
    assert np.abs(ours.attributions - theirs).max() <= 1e-4 * scale
    # per window as well (attributions of every window, not only the largest ones)
    for a, b in zip(ours.attributions, theirs):
        assert np.abs(a - b).max() <= 1e-4 * np.abs(b).max()


def test_gradient_equals_torch_autograd(ck: dict) -> None:
    torch = pytest.importorskip("torch")
    from realtime_fer.models.torch_mlp import build_module

    net = ck["net"]
    module = build_module(net).double().eval()
    x = torch.tensor(ck["windows"][:5], dtype=torch.float64, requires_grad=True)
    (net.platt_a * module(x) + net.platt_b).sum().backward()
    logits, grads = input_gradient(net, ck["windows"][:5])
    np.testing.assert_allclose(grads, x.grad.numpy(), rtol=1e-6, atol=1e-9 * np.abs(grads).max())


@pytest.mark.parametrize("kind", BASELINE_KINDS)
def test_completeness_for_every_baseline_kind(ck: dict, kind: str) -> None:
    net, bank = ck["net"], ck["bank"]
    rows = np.arange(12)  # the first 12 happy windows
    bs = bank.baselines(kind, "happy", ck["groups"][ck["happy"][rows]])
    assert np.allclose(bs.weights.sum(axis=1), 1.0)
    ig = IntegratedGradients(net, dtype="float64")
    attr = attribute_against(ig, ck["windows"][rows], bs, ALL, n_steps=32 if kind == "zero" else 16)
    expected = np.array([(bs.weights[i] * [input_gradient(net, bs.windows(k, WINDOW.length)[None])[0][0] for k in range(len(bs.faces))]).sum() for i in range(len(rows))])
    np.testing.assert_allclose(attr.baseline_output, expected, rtol=1e-9)
    gap = np.abs(attr.total - (attr.output - attr.baseline_output))
    assert (gap <= 1e-3 * np.maximum(1.0, np.abs(attr.output - attr.baseline_output))).all(), (kind, gap.max())
    assert np.abs(attr.delta - (attr.total - (attr.output - attr.baseline_output))).max() < 1e-9
    assert np.abs(attr.output - attr.baseline_output).min() > 0.1  # happy faces differ from every baseline


def test_baseline_kinds(ck: dict) -> None:
    bank = ck["bank"]
    others = bank.baselines("others", "happy", None, n=3)
    assert len(others.faces) == 6 and np.allclose(others.weights, 1 / 6)  # CK+: the six other labels
    assert all("happy" not in d for d in others.descriptions)
    # the typical face is a real face: one of the data's faces, the one nearest to its label mean
    sad = ck["faces"][ck["labels"] == "sad"]
    assert any(np.array_equal(bank.typical["sad"], f) for f in sad)
    assert np.argmin(((sad - sad.mean(axis=0)) ** 2).sum(axis=(1, 2))) == int(np.nonzero([np.array_equal(bank.typical["sad"], f) for f in sad])[0][0])
    # CK+48 has no neutral face: the shipped mean neutral face stands in
    neutral = bank.baselines("neutral", "happy", ["S010", "S999"])
    assert len(neutral.faces) == 1 and np.array_equal(neutral.faces[0], shipped_neutral_face())
    assert "shipped" in neutral.descriptions[0]
    zero = bank.baselines("zero", "happy", None, n=2)
    assert not zero.faces.any() and zero.weights.shape == (2, 1)
    with pytest.raises(DataError, match="unknown baseline 'mean'"):
        bank.baselines("mean", "happy", None, n=1)
    only_happy = BaselineBank.from_faces(ck["faces"][:3], ["happy"] * 3)
    with pytest.raises(DataError, match="needs faces of other labels"):
        only_happy.baselines("others", "happy", None, n=1)


def test_neutral_baseline_prefers_the_same_subject(ck: dict) -> None:
    faces, groups = ck["faces"], ck["groups"]
    labels = ck["labels"].copy()
    subject = groups[ck["happy"][0]]
    own = np.nonzero((groups == subject) & (labels != "happy"))[0]
    other = np.nonzero((groups != subject) & (labels == "sad"))[0][:4]
    labels[own[:1]] = "neutral"  # pretend this subject has a neutral frame, and a few others too
    labels[other] = "neutral"
    bank = BaselineBank.from_faces(faces, labels, groups)
    bs = bank.baselines("neutral", "happy", [subject, "S_unknown"])
    first, second = np.argmax(bs.weights, axis=1)
    np.testing.assert_array_equal(bs.faces[first], faces[own[0]])
    np.testing.assert_allclose(bs.faces[second], faces[labels == "neutral"].mean(axis=0), atol=1e-6)


def test_pooled_attribution_equals_per_frame_attribution_of_stills(ck: dict) -> None:
    net = ck["net"]
    faces = ck["faces"][ck["happy"][:5]]
    stills = np.repeat(faces[:, None], WINDOW.length, axis=1)
    base = np.repeat(ck["bank"].typical["anger"][None], WINDOW.length, axis=0)
    ig = IntegratedGradients(net)
    per_frame = ig.attribute(stills, base, n_steps=16)
    pooled = ig.attribute_pooled(pool(stills, net.pooling, np.float64), pool(base[None], net.pooling, np.float64)[0], n_steps=16)
    np.testing.assert_allclose(pooled.attributions[:, 0], per_frame.attributions.sum(axis=1), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(pooled.per_landmark_abs(), per_frame.per_landmark_abs(), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(pooled.delta, per_frame.delta, atol=1e-9)


def test_happy_relevance_is_concentrated_around_the_mouth(ck: dict) -> None:
    """A check that can fail: the mouth and the skin around it hold more of happy's relevance
    than any of 2,000 random landmark sets of the same size.

    On the network whose head reads the hidden layers. With the direct link, 210 training faces
    leave the ridge head spread over all 1,404 standardised coordinates and the relevance is
    diffuse (mouth share 0.25, like random sets); the shipped model, trained on RAF-DB + CK+ with
    the direct link, does concentrate happy on the mouth (0.33 vs <= 0.31 for random sets)."""
    net, bank = ck["hidden_only"], ck["bank"]
    rel = landmark_relevance(net, ck["windows"], bank.baselines("others", "happy", ck["groups"][ck["happy"]]), ALL, emotion="happy", n_steps=16)
    assert rel.relevance.sum() == pytest.approx(1.0) and (rel.relevance >= 0).all()
    assert rel.completeness["max_relative_delta"] < 1e-3 and rel.n_samples == len(ck["happy"]) == 30
    regions = face_regions()
    mouth = np.concatenate([regions.area_indices("mouth"), regions.area_indices("around mouth")])
    share = rel.relevance[mouth].sum()
    rng = np.random.default_rng(0)
    random_shares = np.array([rel.relevance[rng.choice(NUM_MESH_LANDMARKS, len(mouth), replace=False)].sum() for _ in range(2000)])
    assert share > random_shares.max(), (share, np.quantile(random_shares, [0.5, 0.99, 1.0]))
    top = rel.top(10)
    assert [t["landmark"] for t in top] == rel.most_relevant(10)
    assert sum(1 for t in top if regions.areas[t["landmark"]] in ("mouth", "around mouth")) >= 4, top
    # signed: the typical happy mouth pushes towards happy on balance
    assert rel.signed_mean[mouth].sum() > 0


def test_region_ranking_takes_whole_regions_most_relevant_first(ck: dict) -> None:
    """Pruning's ``ranking: region``: landmarks come region by region, regions by decreasing
    mean |summed attribution|, each region's landmarks by their own relevance; for happy the
    first region is one FACS names for it or the mouth (the right cheek on 2026-12-06)."""
    net, bank = ck["hidden_only"], ck["bank"]
    rel = landmark_relevance(net, ck["windows"], bank.baselines("others", "happy", ck["groups"][ck["happy"]]), ALL, emotion="happy", n_steps=16)
    order = rel.most_relevant(len(rel.landmarks), by="region")
    assert sorted(order) == sorted(rel.landmarks.tolist())
    names = face_regions().names
    seq = [names[m] for m in order]
    regions = list(dict.fromkeys(seq))
    for r in regions:  # contiguous
        first = seq.index(r)
        assert seq[first : first + seq.count(r)] == [r] * seq.count(r)
    size = dict(zip(rel.region_names, rel.region_mean_abs))
    assert [size[r] for r in regions] == sorted(size.values(), reverse=True)
    own = dict(zip(rel.landmarks.tolist(), rel.relevance))
    for r in regions:
        within = [own[m] for m in order if names[m] == r]
        assert within == sorted(within, reverse=True)
    from realtime_fer.explain.plausibility import FACS_REGIONS

    assert seq[0] in FACS_REGIONS["happy"] or face_regions().areas[order[0]] in ("mouth", "around mouth"), seq[0]
    assert rel.most_relevant(5, by="landmark") == rel.most_relevant(5)
    with pytest.raises(ValueError, match="by must be"):
        rel.most_relevant(3, by="area")
    # spread: one landmark of every region (regions in the same order) before a second of any
    spread = rel.most_relevant(len(rel.landmarks), by="spread")
    assert sorted(spread) == sorted(order)
    assert [names[m] for m in spread[: len(regions)]] == regions
    assert spread[: len(regions)] == [next(m for m in order if names[m] == r) for r in regions]
