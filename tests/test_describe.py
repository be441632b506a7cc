"""Action units and valence/arousal (realtime_fer.describe, docs/describe.md): the tables, the
functions, and their documented signs on real clips through the real recognizer."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from realtime_fer.describe import ACTION_UNITS, CIRCUMPLEX, NO_COUNTERPART, action_units, valence_arousal
from realtime_fer.landmarks.detector import BLENDSHAPE_NAMES
from realtime_fer.publish import Prediction
from runtime_helpers import bundle_arg, require_bundle


# --------------------------------------------------------------------------------------------
# the tables and the functions
# --------------------------------------------------------------------------------------------
def test_action_unit_table_reads_real_blendshapes_once() -> None:
    codes = [au.code for au in ACTION_UNITS]
    assert codes == sorted(set(codes)), "AUs in FACS order, each once"
    used = [b for au in ACTION_UNITS for b in au.blendshapes]
    assert set(used) <= set(BLENDSHAPE_NAMES) and len(used) == len(set(used))
    assert not set(codes) & set(NO_COUNTERPART)
    # every main code 1-28 of FACS is either mapped or listed as having no counterpart
    main = {1, 2, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28}
    assert main <= set(codes) | set(NO_COUNTERPART)


def test_action_units_take_the_larger_side_of_a_pair() -> None:
    scores = np.zeros(len(BLENDSHAPE_NAMES), np.float32)
    scores[BLENDSHAPE_NAMES.index("mouthSmileRight")] = 0.7
    scores[BLENDSHAPE_NAMES.index("mouthSmileLeft")] = 0.2
    scores[BLENDSHAPE_NAMES.index("jawOpen")] = 0.4
    aus = action_units(scores)
    assert list(aus) == [au.key for au in ACTION_UNITS]
    assert aus["AU12"] == pytest.approx(0.7) and aus["AU26"] == pytest.approx(0.4)
    assert sum(aus.values()) == pytest.approx(1.1)
    assert action_units(scores.tolist()) == aus
    for bad in (np.zeros(51), np.zeros((52, 1))):
        with pytest.raises(ValueError, match="52 blendshape scores"):
            action_units(bad)


@pytest.mark.parametrize("emotion", sorted(CIRCUMPLEX))
def test_one_certain_emotion_sits_on_its_point(emotion: str) -> None:
    point = CIRCUMPLEX[emotion]
    probs = {e: (0.9 if e == emotion else 0.0) for e in CIRCUMPLEX}
    assert valence_arousal(probs) == pytest.approx((point.valence, point.arousal))
    assert -1 <= point.valence <= 1 and -1 <= point.arousal <= 1
    expected_sign = {"happy": 1, "surprise": 1, "neutral": 1}.get(emotion, -1)
    assert math.copysign(1, point.valence) == expected_sign


def test_valence_arousal_is_a_weighted_mean_of_the_points() -> None:
    probs = {"happy": 0.6, "sad": 0.2, "anger": float("nan"), "unknown_label": 1.0}
    v, a = valence_arousal(probs)
    happy, sad = CIRCUMPLEX["happy"], CIRCUMPLEX["sad"]
    assert v == pytest.approx((0.6 * happy.valence + 0.2 * sad.valence) / 0.8)
    assert a == pytest.approx((0.6 * happy.arousal + 0.2 * sad.arousal) / 0.8)
    assert valence_arousal({e: 0.0 for e in CIRCUMPLEX}) == (0.0, 0.0)
    assert valence_arousal({}) == (0.0, 0.0)


# --------------------------------------------------------------------------------------------
# real clips through the real recognizer
# --------------------------------------------------------------------------------------------
CLIPS = {"happy": "mead/happy.mp4", "sad": "mead/sad.mp4", "anger": "talking/furious_talk1_clip1.mp4"}


@pytest.fixture(scope="module")
def clip_predictions(shared_data: Path) -> dict[str, list[Prediction]]:
    from realtime_fer.pipeline import ListSink
    from realtime_fer.pipeline.config import RuntimeConfig
    from realtime_fer.pipeline.recognizer import open_recognizer

    bundle = require_bundle()
    out = {}
    for label, rel in CLIPS.items():
        path = shared_data / "video" / rel
        if not path.is_file():
            pytest.skip(f"{path} is absent")
        sink = ListSink()
        open_recognizer(str(path), RuntimeConfig(model=bundle_arg(), device="cpu"), [sink], bundle=bundle).run()
        out[label] = [m for m in sink.messages if isinstance(m, Prediction)]
        assert len(out[label]) >= 20, f"{rel}: only {len(out[label])} predictions"
    return out


def _mean_au(preds: list[Prediction], key: str) -> float:
    return float(np.mean([p.action_units[key] for p in preds]))


def test_every_prediction_carries_the_derived_fields(clip_predictions: dict[str, list[Prediction]]) -> None:
    for preds in clip_predictions.values():
        for p in preds:
            assert p.action_units is not None and set(p.action_units) == {au.key for au in ACTION_UNITS}
            assert all(0.0 <= x <= 1.0 for x in p.action_units.values())
            assert -1.0 <= p.valence <= 1.0 and -1.0 <= p.arousal <= 1.0
            assert (p.valence, p.arousal) == pytest.approx(valence_arousal(p.smoothed))


def test_valence_signs_on_happy_sad_and_angry_clips(clip_predictions: dict[str, list[Prediction]]) -> None:
    happy, sad, anger = (np.array([p.valence for p in clip_predictions[k]]) for k in ("happy", "sad", "anger"))
    assert (happy > 0).all(), happy.min()
    assert (sad < 0).all(), sad.max()
    assert (anger < 0).all(), anger.max()
    # arousal: the sad face is calmer than the happy one (word norms: sad -0.38, happy +0.26)
    assert np.mean([p.arousal for p in clip_predictions["sad"]]) < np.mean([p.arousal for p in clip_predictions["happy"]])


def test_action_unit_signs_on_happy_sad_and_angry_clips(clip_predictions: dict[str, list[Prediction]]) -> None:
    happy, sad, anger = (clip_predictions[k] for k in ("happy", "sad", "anger"))
    assert _mean_au(happy, "AU12") > 0.3 > _mean_au(sad, "AU12")  # lip corner puller: the smile
    assert _mean_au(sad, "AU15") > _mean_au(happy, "AU15")  # lip corner depressor
    assert _mean_au(sad, "AU4") > _mean_au(happy, "AU4") + 0.2  # brow lowerer
    assert _mean_au(anger, "AU4") > _mean_au(happy, "AU4") + 0.4
