"""The ``person`` baseline of the live explanations (realtime_fer.explain.resting and
StreamExplainer) on real MEAD clips: ``happy.mp4`` and ``neutral.mp4`` show the same man, so the
resting face predicted from his smiling clip can be checked against his own neutral face."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fer_testdata import link, session_cache
from realtime_fer.data.extract import default_options, extract_dataset
from realtime_fer.data.windows import video_windows
from realtime_fer.explain.baselines import shipped_neutral_face
from realtime_fer.explain.resting import RestingFacePredictor, resting_face_statistics
from realtime_fer.explain.stream import StreamExplainer, StreamExplainOptions
from realtime_fer.features.windows import WindowOptions
from realtime_fer.models.bundle import FALLBACK
from runtime_helpers import require_bundle


@pytest.fixture(scope="module")
def clips(shared_data: Path, tmp_path_factory: pytest.TempPathFactory):
    """bundle, and clip name -> (windows (W, T, 468, 3), blendshape windows (W, T, B) or None)
    of MEAD's happy and neutral clips (hop 4 frames)."""
    bundle = require_bundle()
    folder = tmp_path_factory.mktemp("mead_same_man")
    for name in ("happy.mp4", "neutral.mp4"):
        link(shared_data / "video" / "mead" / name, folder / name)
    options = default_options()
    options.blendshapes = bool(bundle.blendshapes)
    res = extract_dataset(folder, session_cache(tmp_path_factory), options, workers=0, progress=False)
    out = {}
    for sample in res.samples:
        got = video_windows(sample, WindowOptions(length=bundle.window_length, hop=4), blendshapes=bool(bundle.blendshapes))
        out[sample.ref.path.stem] = (got[0], got[2] if bundle.blendshapes else None)
    assert set(out) == {"happy", "neutral"} and len(out["happy"][0]) >= 10
    return bundle, out


def _inputs(bundle, windows):
    return {e: np.ascontiguousarray(windows[:, :, entry.landmarks]) for e, entry in bundle.emotions.items()}


def test_predictor_returns_the_mean_neutral_face_for_it():
    stats = resting_face_statistics()
    targets = np.arange(0, 468, 2)
    p = RestingFacePredictor(targets, n_stable=200)
    assert 0 < len(p.stable) <= 200 and np.isin(p.stable, targets).all()
    np.testing.assert_allclose(p.predict(stats.mean[p.stable]), stats.mean[targets], atol=1e-6)
    with pytest.raises(ValueError, match="none of the"):
        RestingFacePredictor([int(np.argmax(stats.stability))], n_stable=1)


def test_resting_face_predicted_from_a_smile_is_closer_to_the_mans_own_neutral_face(clips):
    """From the stable landmarks of the smiling clip alone, the predicted resting face is much
    closer (on the landmarks the bundle reads) to the same man's neutral face than the dataset's
    mean neutral face is (RMS distance 0.041 against 0.237 on 2026-12-06, normalised units;
    the smiling clip's own mean face: 0.049)."""
    bundle, data = clips
    union = np.asarray(bundle.landmark_union)
    p = RestingFacePredictor(union)
    smile = data["happy"][0].mean(axis=(0, 1))
    own = data["neutral"][0].mean(axis=(0, 1))[union]
    predicted = p.predict(smile[p.stable])
    rms = lambda a: float(np.sqrt(((a - own) ** 2).sum(axis=-1).mean()))
    assert rms(predicted) < 0.5 * rms(shipped_neutral_face()[union]), (rms(predicted), rms(shipped_neutral_face()[union]))


def test_person_baseline_from_the_first_window(clips):
    """The first window of a track is already explained against the person's baseline, a face
    the bundle calls neutral; completeness holds; ``track`` takes over once the track is
    called neutral, and ``dataset`` is used with ``person_baseline: false``."""
    bundle, data = clips
    windows, blend = data["happy"]
    inputs = _inputs(bundle, windows[:1])
    b1 = None if blend is None else blend[:1]
    explainer = StreamExplainer(bundle)
    explainer.observe(5, "happy", inputs, 0, b1)
    face, bs, kind = explainer.baseline(5)
    assert kind == "person"
    static = {e: bundle.network(e).probability(np.repeat(face[None, None, entry.landmarks], bundle.window_length, axis=1),
                                                None if bs is None else np.repeat(bs[None, None], bundle.window_length, axis=1))
              for e, entry in bundle.emotions.items()}
    assert bundle.decide(static)[0] == FALLBACK
    entry = explainer.explain(inputs, [5], [["happy"]], b1)[0]["happy"]
    assert entry["baseline"] == "person"
    gap = entry["output"] - entry["baseline_output"]
    assert gap > 0 and abs(entry["sum"] - gap) <= 0.01 * abs(gap)
    explainer.observe(5, FALLBACK, inputs, 0, b1)
    assert explainer.baseline(5)[2] == "track"
    first = StreamExplainer(bundle, StreamExplainOptions(baseline_choice="first"))
    first.observe(5, FALLBACK, inputs, 0, b1)
    assert first.explain(inputs, [5], [["happy"]], b1)[0]["happy"]["baseline"] == "track"
    explainer.forget(5)
    off = StreamExplainer(bundle, StreamExplainOptions(person_baseline=False))
    off.observe(5, "happy", inputs, 0, b1)
    assert off.explain(inputs, [5], [["happy"]], b1)[0]["happy"]["baseline"] == "dataset"


def test_person_baseline_cancels_less_than_the_dataset_one(clips):
    """Issue 22's cancellation measure on the smiling clip played as one track: the median of
    (sum of the top-5 |weights|) / |sum| with the stream's defaults (the person baseline moved
    along the directions the network cannot see) meets the issue's target of 2, and moving the
    baseline along those directions (``visible_only``, session 11) lowers it whatever the
    baseline; every sum stays complete (largest relative error 1.4e-3).

    Model 0.6 cancelled far more, and there the person baseline was what helped (25.6 -> 5.9
    at this hop of 4 on 2026-12-06; with ``visible_only`` 6.0 and 4.7). Since model 0.7 the head
    pays for cancelling attributions (docs/faithfulness.md): dataset / person baseline 1.81 /
    2.34, with ``visible_only`` 0.91 / 1.45 (model 0.7); model 0.8 1.85 / 2.32 and 0.83 / 1.21
    (2026-12-07)."""
    bundle, data = clips
    windows, blend = data["happy"]
    ratios = {}
    for person in (False, True):
        for visible in (False, True):
            explainer = StreamExplainer(bundle, StreamExplainOptions(person_baseline=person, track_neutral=False, visible_only=visible))
            r = []
            for i in range(len(windows)):
                inputs = _inputs(bundle, windows[i : i + 1])
                b = None if blend is None else blend[i : i + 1]
                explainer.observe(1, "happy", inputs, 0, b)
                entry = explainer.explain(inputs, [1], [["happy"]], b)[0]["happy"]
                assert entry["baseline"] == ("person" if person else "dataset")
                gap = entry["output"] - entry["baseline_output"]
                assert abs(entry["sum"] - gap) <= 0.01 * abs(gap) + 1e-3
                r.append(sum(abs(t["weight"]) for t in entry["top"]) / max(abs(entry["sum"]), 1e-9))
            ratios[person, visible] = float(np.median(r))
    assert ratios[True, True] <= 2.0, ratios
    assert ratios[False, True] < ratios[False, False] and ratios[True, True] < ratios[True, False], ratios


def test_union_windows_give_the_same_person_baseline(clips):
    """The recognizer hands ``observe`` its union windows (one read); the per-emotion windows
    give the same baseline."""
    bundle, data = clips
    windows, blend = data["happy"]
    a, b = StreamExplainer(bundle), StreamExplainer(bundle)
    for i in range(5):
        inputs = _inputs(bundle, windows[i : i + 1])
        bs = None if blend is None else blend[i : i + 1]
        a.observe(1, "happy", inputs, 0, bs)
        b.observe(1, "happy", inputs, 0, bs, union=np.ascontiguousarray(windows[i : i + 1][:, :, b.union]))
    fa, fb = a.baseline(1)[0], b.baseline(1)[0]
    assert a.baseline(1)[2] == b.baseline(1)[2] == "person"
    np.testing.assert_allclose(fa, fb, atol=1e-6)


def _still_probability(bundle, emotion, face, blend):
    lms = bundle.emotions[emotion].landmarks
    x = np.repeat(face[None, None, lms], 2, axis=1)
    b = None if blend is None else np.repeat(blend[None, None], 2, axis=1)
    return float(bundle.network(emotion).probability(x, b)[0])


def test_baseline_choice_lowest_never_explains_against_the_expression_itself(clips):
    """A smiling window the recognizer called neutral must not become the baseline of the
    smile: with ``baseline_choice: lowest`` (the default) happy is explained against the
    person's resting face, which the happy network scores lower, and the sum is the smile's
    evidence (+2.5 logits on 2026-12-06); ``first`` explains it against the smile itself, held
    still (sum -0.7). With the man's own
    neutral window as the track's, each emotion gets whichever of the two its network scores
    lower as a still face; completeness holds throughout."""
    bundle, data = clips
    smile, smile_bs = data["happy"]
    rest, rest_bs = data["neutral"]
    sb = None if smile_bs is None else smile_bs[:1]
    inputs = _inputs(bundle, smile[:1])
    entries = {}
    for choice in ("lowest", "first"):
        ex = StreamExplainer(bundle, StreamExplainOptions(baseline_choice=choice))
        ex.observe(1, "happy", inputs, 0, sb)
        ex.observe(1, FALLBACK, inputs, 0, sb)  # the smile, wrongly called neutral
        entries[choice] = ex.explain(inputs, [1], [["happy"]], sb)[0]["happy"]
    low, first = entries["lowest"], entries["first"]
    assert (low["baseline"], first["baseline"]) == ("person", "track")
    assert low["baseline_output"] < first["baseline_output"] and low["sum"] > 2 * abs(first["sum"]), (low, first)
    for entry in (low, first):
        gap = entry["output"] - entry["baseline_output"]
        assert abs(entry["sum"] - gap) <= 0.01 * abs(gap) + 1e-3
    ex = StreamExplainer(bundle)
    ex.observe(1, "happy", inputs, 0, sb)
    ex.observe(1, FALLBACK, _inputs(bundle, rest[:1]), 0, None if rest_bs is None else rest_bs[:1])
    track_face, track_bs, _ = ex.baseline(1)
    person_face = ex._person_face[1]
    person_bs = ex._dataset_neutral_blend
    kinds = set()
    for emotion in bundle.emotions:
        face, bs, kind = ex.baseline(1, emotion)
        kinds.add(kind)
        p_track = _still_probability(bundle, emotion, track_face, track_bs)
        p_person = _still_probability(bundle, emotion, person_face, person_bs)
        assert kind == ("person" if p_person < p_track else "track"), (emotion, p_track, p_person)
        assert _still_probability(bundle, emotion, face, bs) == pytest.approx(min(p_track, p_person), abs=1e-6)
    assert kinds <= {"track", "person"}
