"""Folds of labelled clips by person (realtime_fer/training/clip_folds.py): no data needed."""

from __future__ import annotations

from pathlib import Path

import pytest

from realtime_fer.data.layouts import SampleRef
from realtime_fer.errors import ConfigError
from realtime_fer.training.clip_folds import assign_folds, clip_key, load_clip_actors, person_of

ROOT = Path(__file__).resolve().parents[1]


def ref(folder: str, name: str) -> SampleRef:
    return SampleRef(path=Path("/data") / folder / name, label=Path(name).stem.split("_")[0].replace("angry", "anger"), group=name, kind="video")


CLIPS = [ref("mead", n) for n in ("happy.mp4", "neutral.mp4", "fear.mp4", "surprise.mp4", "sad.mp4", "sad_m030.mp4", "contempt.mp4", "disgust.mp4")] + [
    ref("wild", n) for n in ("angry.mp4", "disgust.mp4", "fear.mp4", "happy.mp4", "neutral.mp4", "sad.mp4", "surprise.mp4")]
ACTORS = {"mead/happy.mp4": "m1", "mead/neutral.mp4": "m1", "mead/fear.mp4": "w1", "mead/surprise.mp4": "w1", "mead/sad.mp4": "m30", "mead/sad_m030.mp4": "m30"}


def test_a_persons_clips_share_one_fold_and_emotions_spread() -> None:
    folds = assign_folds(CLIPS, ACTORS, 3)
    assert sorted(clip_key(r) for f in folds for r in f) == sorted(clip_key(r) for r in CLIPS)  # every clip once
    where = {clip_key(r): k for k, f in enumerate(folds) for r in f}
    assert where["mead/happy.mp4"] == where["mead/neutral.mp4"] and where["mead/sad.mp4"] == where["mead/sad_m030.mp4"]
    for label in ("fear", "sad", "happy", "disgust", "surprise", "neutral"):  # two people each: two folds
        assert len({where[clip_key(r)] for r in CLIPS if r.label == label}) == 2, label
    assert max(map(len, folds)) - min(map(len, folds)) <= 2
    # the same clips in another order: the same folds
    assert [sorted(map(clip_key, f)) for f in assign_folds(list(reversed(CLIPS)), ACTORS, 3)] == [sorted(map(clip_key, f)) for f in folds]


def test_unnamed_clip_is_its_own_person_and_bad_fold_counts_are_refused(caplog: pytest.LogCaptureFixture) -> None:
    assert person_of(CLIPS[-1], ACTORS) == "clip:wild/surprise.mp4"
    with caplog.at_level("WARNING"):
        assign_folds(CLIPS, ACTORS, 2)
    assert "no person named for 9 clip(s)" in caplog.text
    with pytest.raises(ConfigError, match="at least 2 folds"):
        assign_folds(CLIPS, ACTORS, 1)
    with pytest.raises(ConfigError, match="only 12 people"):
        assign_folds(CLIPS, ACTORS, 13)


def test_actors_file(tmp_path: Path) -> None:
    shipped = load_clip_actors(ROOT / "configs" / "clip_actors.yaml")
    assert shipped["mead/happy.mp4"] == shipped["mead/neutral.mp4"] and len(set(shipped.values())) == 12
    assert load_clip_actors(None) == {}
    bad = tmp_path / "bad.yaml"
    bad.write_text("- mead/happy.mp4\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_clip_actors(bad)
    with pytest.raises(ConfigError, match="not found"):
        load_clip_actors(tmp_path / "missing.yaml")
