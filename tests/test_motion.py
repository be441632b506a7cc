"""Speech and head-motion augmentation from real talking clips (realtime_fer.data.motion)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fer_testdata import ck_subset, session_cache
from realtime_fer.data.extract import extract_dataset
from realtime_fer.data.motion import MotionBank, MotionOptions, moving_windows
from realtime_fer.errors import DataError
from realtime_fer.features.windows import WindowOptions
from realtime_fer.labels import EMOTIONS
from realtime_fer.training.features import pooled_set

CLIPS = ("furious_talk2_clip1.mp4", "happyenglish_clip1.mp4", "nice_clip1.mp4")


@pytest.fixture(scope="module")
def bank(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> MotionBank:
    return MotionBank.from_videos([shared_data / "video" / "talking" / c for c in CLIPS], session_cache(tmp_path_factory), workers=0)


def test_bank_holds_motion_relative_to_each_clip(bank: MotionBank) -> None:
    assert bank.n_clips == 3 and sorted(bank.names) == sorted(CLIPS)
    for s, n in zip(bank.run_start, bank.run_length):
        run = bank.frames[s : s + n]
        assert np.abs(run.mean(axis=0)).max() < 1e-5  # the clip's own mean face is removed
    mouth = bank.frames[:, [13, 14]].std(axis=0).max()  # inner lips move when people talk
    forehead = bank.frames[:, [10, 151]].std(axis=0).max()
    assert mouth > 3 * forehead


def test_sampling_is_deterministic_for_a_seed(bank: MotionBank) -> None:
    a = bank.sample(20, 24, np.random.default_rng(5), scale=(0.5, 1.5), mirror=True)
    b = bank.sample(20, 24, np.random.default_rng(5), scale=(0.5, 1.5), mirror=True)
    c = bank.sample(20, 24, np.random.default_rng(6), scale=(0.5, 1.5), mirror=True)
    assert a.shape == (20, 24, 468, 3) and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_split_keeps_clips_apart(bank: MotionBank) -> None:
    train, cal = bank.split(0.34, seed=0)
    assert train.n_clips == 2 and cal.n_clips == 1 and not set(train.names) & set(cal.names)
    assert len(train.frames) + len(cal.frames) == len(bank.frames)


def test_moving_windows_keep_the_face(bank: MotionBank) -> None:
    faces = np.random.default_rng(0).normal(0, 0.3, size=(10, 468, 3)).astype(np.float32)
    opts = MotionOptions(sources=["x"], probability=0.5, scale=(1.0, 1.0), mirror=False)
    w = moving_windows(faces, bank, 16, np.random.default_rng(1), opts, jitter=0.001)
    assert w.shape == (10, 16, 468, 3)
    dev = np.abs(w.mean(axis=1) - faces).mean(axis=(1, 2))
    spread = w.std(axis=1).mean(axis=(1, 2))
    moving = spread > 0.002  # the others got jitter of std 0.001 only
    assert 2 <= moving.sum() <= 8
    assert np.all(dev < 0.05)  # a segment moves around the face (faces differ by ~0.3)
    assert np.all(dev[~moving] < 0.001)


def test_augmented_training_set_keeps_labels_and_is_reproducible(bank: MotionBank, shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    res = extract_dataset(ck_subset(shared_data, tmp_path_factory, 4), session_cache(tmp_path_factory), workers=0, progress=False)
    window = WindowOptions(length=12)
    opts = MotionOptions(sources=["talking"])
    plain = pooled_set(res.samples, window, ("mean", "std"), jitter=True, seed=3)
    moved = pooled_set(res.samples, window, ("mean", "std"), jitter=True, seed=3, motion=(bank, opts))
    again = pooled_set(res.samples, window, ("mean", "std"), jitter=True, seed=3, motion=(bank, opts))
    np.testing.assert_array_equal(moved.owner, plain.owner)  # one window per still, same samples
    assert [res.samples[i].ref.label for i in moved.owner] == [res.samples[i].ref.label for i in plain.owner]
    np.testing.assert_array_equal(moved.features, again.features)
    spread = moved.features[:, 3 * 468 :]
    assert spread.mean() > 3 * plain.features[:, 3 * 468 :].mean()  # the stills now move


def test_no_video_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(DataError, match="no video found"):
        MotionBank.from_videos([tmp_path], tmp_path / "cache")
    with pytest.raises(DataError, match="motion source not found"):
        MotionBank.from_videos([tmp_path / "nope"], tmp_path / "cache")


@pytest.mark.parametrize("with_stills", [False, True])
def test_calibration_windows_move_and_optionally_stay_still(shared_data: Path, tmp_path_factory: pytest.TempPathFactory, with_stills: bool) -> None:
    """``calibrate_with_motion`` sets the calibration images in motion from clips training never
    saw; ``calibrate_with_stills`` keeps their still windows beside the moving ones."""
    from realtime_fer.training.config import DataOptions, DataSource, ModelOptions, TrainConfig
    from realtime_fer.training.trainer import CALIBRATION, prepare

    talking = shared_data / "video" / "talking"
    cfg = TrainConfig(
        data=DataOptions(
            sources=[DataSource(path=str(ck_subset(shared_data, tmp_path_factory, 10)), name="ck")],
            cache_dir=str(session_cache(tmp_path_factory)), validation_fraction=0.25, calibration_fraction=0.3, workers=2,
            motion=MotionOptions(sources=[str(talking / c) for c in CLIPS], probability=1.0, calibrate_with_stills=with_stills),
        ),
        window=WindowOptions(length=12, hop=2),
        model=ModelOptions(pooling=["mean", "std"], min_positives=1),
    )
    prep = prepare(cfg, progress=False)
    owners = prep.plain.owner[prep.cal_rows]
    cal_images = np.flatnonzero(prep.split == CALIBRATION)
    assert len(cal_images) >= 5 and set(owners) == set(cal_images)  # every calibration image, nothing else
    spread = prep.plain.features[:, 3 * 468 : 6 * 468].mean(axis=1)
    cal = set(prep.cal_rows.tolist())
    for image in cal_images:
        still, moving = np.flatnonzero(prep.plain.owner == image)  # its plain window, then its moving one
        assert moving in cal and (still in cal) == with_stills
        assert spread[moving] > 1.5 * spread[still]  # real talking motion, not the photo repeated
    assert len(prep.cal_rows) == len(cal_images) * (2 if with_stills else 1)
    np.testing.assert_array_equal(prep.codes_plain[prep.cal_rows], [EMOTIONS.index(prep.data.labels[o]) for o in owners])  # labels kept


def test_bank_resamples_clips_to_the_window_rate(bank: MotionBank, shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    """Windows in seconds: a bank with ``rate`` holds its 30 fps clips at the window's sample
    rate (25 Hz for 24 samples over 0.96 s), linearly interpolated, so a segment of T samples
    spans the window's seconds."""
    from realtime_fer.data.motion import resample_run
    from realtime_fer.features.windows import WindowOptions

    rate = WindowOptions(length=24, seconds=0.96).rate_hz
    timed = MotionBank.from_videos([shared_data / "video" / "talking" / c for c in CLIPS], session_cache(tmp_path_factory), workers=0, rate=rate)
    assert timed.rate == rate and bank.rate is None
    assert sorted(timed.names) == sorted(bank.names) and len(timed.run_length) == len(bank.run_length)
    for n30, n25 in zip(bank.run_length, timed.run_length):  # (n - 1) / 30 s of frames -> samples every 1/25 s
        assert n25 == int(np.floor((n30 - 1) / 30 * 25 + 1e-6)) + 1
    # the resampling itself: a signal linear in time comes back exactly at the sample times
    t30 = np.arange(31) / 30
    run = np.stack([t30, 2 * t30], axis=1).astype(np.float32)
    out = resample_run(run, 30.0, 25.0)
    np.testing.assert_allclose(out[:, 0], np.arange(26) / 25, atol=1e-6)
    np.testing.assert_allclose(out[:, 1], 2 * np.arange(26) / 25, atol=1e-6)
    np.testing.assert_array_equal(resample_run(run, 25.0, 25.0), run)  # same rate: the frames themselves
    with pytest.raises(ValueError, match="rate must be > 0"):
        MotionBank([np.zeros((4, 468, 3), np.float32)], fps=[30.0], rate=0.0)
