"""Windows in seconds (issue 18): the same span at any frame rate, the legacy rule, partial windows.

Real clips are re-encoded at 10 and 30 fps (:func:`realtime_fer.capture.reencode.reencode`) and
run through the real extraction, the offline windows (:func:`realtime_fer.data.windows.clip_windows`),
the live selector and ``realtime-fer analyze``. Nothing here is timed.
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fer_testdata import session_cache
from realtime_fer.config_io import from_dict
from realtime_fer.errors import ConfigError
from realtime_fer.features.selector import FeatureSelector
from realtime_fer.features.windows import (
    DecisionClock,
    LiveWindowOptions,
    WindowOptions,
    bundle_window_options,
    interpolation_plan,
    real_samples,
    sliding_windows,
)
from realtime_fer.pipeline.config import RuntimeConfig
from runtime_helpers import model_cli_args, require_bundle

ROOT = Path(__file__).resolve().parents[1]
TALKING = "trump_clip1.mp4"  # 30 fps, a real person talking: motion to compare across rates (a face in every frame at 10 and 30 fps)


# --------------------------------------------------------------------------------------------
# the rule itself
# --------------------------------------------------------------------------------------------
def test_legacy_rule_and_sample_geometry() -> None:
    legacy = bundle_window_options({"length": 24, "hop": 2})
    assert (legacy.span_s, legacy.hop_s, legacy.step_s) == pytest.approx((0.96, 0.08, 0.04))
    timed = bundle_window_options({"length": 24, "hop": 2, "seconds": 1.2, "hop_seconds": 0.1})
    assert (timed.span_s, timed.hop_s, timed.step_s, timed.rate_hz) == pytest.approx((1.2, 0.1, 0.05, 20.0))
    assert legacy.min_samples == 10  # ceil(0.4 s / 0.04 s)
    assert WindowOptions(length=4, hop=2).min_samples == 4  # a window shorter than min_seconds: full windows only
    assert WindowOptions(length=24, seconds=0.96, hop_seconds=0.1).manifest() == {"seconds": 0.96, "hop_seconds": 0.1}
    assert WindowOptions(length=24).manifest() == {}  # legacy frame windows write no seconds
    assert real_samples(1.0, 0.0, 0.04, 24) == 24 and real_samples(0.36, 0.0, 0.04, 24) == 10 and real_samples(0.35, 0.0, 0.04, 24) == 9
    assert real_samples(0.0, -math.inf, 0.04, 24) == 24  # a still: full at once


def test_decision_clock_keeps_the_hop_in_source_time() -> None:
    for fps in (10.0, 15.0, 25.0, 30.0, 60.0):
        clock = DecisionClock(0.08)
        times = np.arange(int(20 * fps)) / fps
        decided = [t for t in times if clock.tick(float(t), True)]
        gaps = np.diff(decided)
        # every frame when frames are further apart than the hop; else within a frame of the hop
        assert gaps.min() >= min(0.08, 1 / fps) - 1 / fps * (fps > 12.5) - 1e-6
        assert gaps.max() <= max(0.08, 1 / fps) + 1 / fps * (fps > 12.5) + 1e-6
        if fps > 12.5:  # on the grid anchored at the first decision, a frame late at most
            grid = decided[0] + 0.08 * np.round((np.array(decided) - decided[0]) / 0.08 - 0.5 / (0.08 * fps))
            assert (np.array(decided) - grid).max() < 1 / fps + 1e-6
        rate = (len(decided) - 1) / (decided[-1] - decided[0])
        assert rate == pytest.approx(min(fps, 1 / 0.08), rel=0.03)  # no drift: 12.5 decisions a second


def test_interpolation_plan_puts_samples_at_their_times() -> None:
    rng = np.random.default_rng(0)
    times = np.cumsum(rng.uniform(0.02, 0.11, size=60))
    values = np.sin(times)[:, None]  # a smooth signal of time
    ends = np.arange(5, 60, 3)
    older, newer, w = interpolation_plan(times, ends, 24, 0.04, first=2)
    sample_t = times[older] + w * (times[newer] - times[older])
    want = np.maximum(times[ends][:, None] - (23 - np.arange(24)) * 0.04, times[2])  # before the first frame: the first frame
    np.testing.assert_allclose(sample_t, want, atol=1e-9)
    est = values[older, 0] + w * (values[newer, 0] - values[older, 0])
    assert np.abs(est - np.sin(want)).max() < 2e-3


def test_bad_window_options_are_one_line_config_errors() -> None:
    for where, cls, data, fragment in [
        ("window", WindowOptions, {"length": 24, "seconds": -1}, "seconds must be > 0"),
        ("window", WindowOptions, {"length": 24, "hop_seconds": 0}, "hop_seconds must be > 0"),
        ("window", WindowOptions, {"min_seconds": -0.1}, "min_seconds must be >= 0"),
        ("config", RuntimeConfig, {"window": {"min_seconds": -2}}, "window.min_seconds must be >= 0"),
        ("config", RuntimeConfig, {"window": {"max_fps": 0}}, "max_fps must be in"),
        ("config", RuntimeConfig, {"window": {"seconds": 1.0}}, "unknown key"),
    ]:
        with pytest.raises(ConfigError) as err:
            from_dict(cls, data, where)
        assert fragment in str(err.value) and "\n" not in str(err.value)
    assert from_dict(RuntimeConfig, {"window": {"min_seconds": None}}).window == LiveWindowOptions(min_seconds=None)


def test_a_bundle_with_seconds_sets_the_live_span(tmp_path: Path) -> None:
    from realtime_fer.models.bundle import MANIFEST, load_bundle

    bundle = require_bundle()
    copy = tmp_path / "bundle"
    shutil.copytree(bundle.path, copy)
    manifest = json.loads((copy / MANIFEST).read_text())
    manifest["window"].update(seconds=1.2, hop_seconds=0.1)
    (copy / MANIFEST).write_text(json.dumps(manifest))
    timed = load_bundle(copy)
    assert (timed.window_seconds, timed.hop_seconds) == (1.2, 0.1)
    sel = FeatureSelector.for_bundle(timed, max_faces=1)
    assert sel.seconds == 1.2 and sel.step == pytest.approx(1.2 / bundle.window_length)


# --------------------------------------------------------------------------------------------
# real clips
# --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def rates(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[int, object]:
    """The first 3 s of a real talking clip re-encoded at 10 and 30 fps, extracted (fps -> sample)."""
    from realtime_fer.capture.reencode import reencode
    from realtime_fer.data.extract import extract_dataset
    from realtime_fer.data.motion import motion_discovery

    folder = tmp_path_factory.mktemp("rates")
    for fps in (10, 30):
        reencode(shared_data / "video" / "talking" / TALKING, folder / f"talk_{fps}fps.mp4", fps, max_seconds=3.0)
    res = extract_dataset(motion_discovery([folder]), session_cache(tmp_path_factory), workers=0, progress=False)
    out = {int(round(s.fps)): s for s in res.samples}
    assert set(out) == {10, 30} and all(s.detected.all() for s in out.values())
    return out


def test_windows_in_seconds_span_the_same_time_at_10_and_30_fps(rates: dict[int, object]) -> None:
    from realtime_fer.data.windows import clip_windows, frame_times, normalized_frames

    window = require_bundle().window  # the shipped (legacy) bundle: 24 samples over 0.96 s
    t = window.length
    clips = {fps: clip_windows(s, window, partial="none") for fps, s in rates.items()}
    # windows that end at the same source time (every 0.1 s is a frame of both encodes)
    pairs = [(i, int(np.argmin(np.abs(clips[30].times - te)))) for i, te in enumerate(clips[10].times)]
    pairs = [(i, j) for i, j in pairs if abs(clips[30].times[j] - clips[10].times[i]) < 1e-6]
    assert len(pairs) >= 10
    for fps, s in rates.items():  # each sample lands at its time: the span is 0.96 s at both rates
        times = frame_times(s, window)
        older, newer, w = interpolation_plan(times, clips[fps].ends, t, window.step_s)
        sample_t = times[older] + w * (times[newer] - times[older])
        np.testing.assert_allclose(sample_t, clips[fps].times[:, None] - (t - 1 - np.arange(t)) * window.step_s, atol=1e-9)
        assert sample_t[0, -1] - sample_t[0, 0] + window.step_s == pytest.approx(0.96)
    a = np.stack([clips[10].windows[i] for i, _ in pairs])
    b = np.stack([clips[30].windows[j] for _, j in pairs])
    resampled_gap = float(np.abs(a - b).mean())
    # the old rule: 24 frames, 2.4 s at 10 fps and 0.8 s at 30 fps, ending at the same times
    frames = {fps: normalized_frames(s)[0] for fps, s in rates.items()}
    old = []
    for i, j in pairs:
        e10, e30 = int(clips[10].ends[i]), int(clips[30].ends[j])
        if e10 >= t - 1 and e30 >= t - 1:
            old.append(np.abs(frames[10][e10 - t + 1 : e10 + 1] - frames[30][e30 - t + 1 : e30 + 1]).mean())
    assert len(old) >= 3
    frame_gap = float(np.mean(old))
    # a window of 10 fps frames and one of 30 fps frames over the same 0.96 s agree far better
    # than the frame windows did (what is left: landmark jitter between the two decodes)
    print(f"mean |10 fps - 30 fps| window difference: resampled {resampled_gap:.5f}, frame windows {frame_gap:.5f}")
    assert resampled_gap < 0.6 * frame_gap, (resampled_gap, frame_gap)


def test_live_selector_resamples_like_the_offline_windows(rates: dict[int, object]) -> None:
    """The live ring buffers (fed with the VIDEO-mode millisecond timestamps) give the offline
    windows, kernels and numpy alike."""
    from realtime_fer.data.windows import clip_windows

    bundle = require_bundle()
    sample = rates[10]
    clip = clip_windows(sample, bundle.window, partial="all")
    assert clip.partial[0] and not clip.partial[-1]
    for kernels in ("compiled", "numpy"):
        sel = FeatureSelector.for_bundle(bundle, max_faces=1)
        sel.kernels = kernels
        got, flags = [], []
        ends = set(clip.ends.tolist())
        for i in range(sample.n_frames):
            sel.push([0], [sample.landmarks[i]], t=round(i * 1000 / sample.fps) / 1000)
            if i in ends:
                got.append(sel.gather_union([0])[0])
                flags.append(sel.real_samples(0) < sel.window_length)
        assert flags == clip.partial.tolist()
        np.testing.assert_allclose(np.stack(got), clip.windows[:, :, sel.union], atol=2e-5)


def test_legacy_bundle_at_25_fps_gives_the_frame_windows(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    """A bundle without seconds (the shipped one) on a 25 fps clip: every window is exactly the
    24 consecutive frames it was before, offline and live."""
    from realtime_fer.data.extract import extract_dataset
    from realtime_fer.data.motion import motion_discovery
    from realtime_fer.data.windows import clip_windows, normalized_frames

    bundle = require_bundle()
    assert "seconds" not in bundle.manifest["window"]
    res = extract_dataset(motion_discovery([shared_data / "video" / "mead" / "happy.mp4"]), session_cache(tmp_path_factory), workers=0, progress=False)
    sample = res.samples[0]
    assert sample.fps == 25.0
    frames, det = normalized_frames(sample)
    t, hop = bundle.window_length, bundle.hop
    before, starts = sliding_windows(frames, det, t, hop)
    clip = clip_windows(sample, bundle.window, partial="none")
    np.testing.assert_array_equal(clip.ends, starts + t - 1)
    np.testing.assert_array_equal(clip.windows, before)
    for kernels in ("compiled", "numpy"):  # live: timed pushes == the frame-by-frame ring of before
        timed = FeatureSelector.for_bundle(bundle, max_faces=1)
        framed = FeatureSelector.for_bundle(bundle, max_faces=1)
        timed.kernels = framed.kernels = kernels
        for i in range(60):
            timed.push([0], [sample.landmarks[i]], t=round(i * 40) / 1000)  # the VIDEO-mode ms timestamps
            framed.push([0], [sample.landmarks[i]])  # one frame per sample
            if i >= t - 1:
                np.testing.assert_array_equal(timed.gather_union([0]), framed.gather_union([0]))
                np.testing.assert_array_equal(timed.gather_blendshapes([0]) if timed.n_blendshapes else 0, framed.gather_blendshapes([0]) if framed.n_blendshapes else 0)


def test_short_clip_at_10_fps_gets_a_flagged_partial_decision_through_analyze(shared_data: Path, tmp_path: Path) -> None:
    """15 frames at 10 fps (1.5 s): partial decisions from 0.4 s, then full ones from 0.96 s."""
    from realtime_fer.capture.reencode import reencode
    from realtime_fer.publish import Prediction, message_from_dict

    require_bundle()
    clip = tmp_path / "short_10fps.mp4"
    assert reencode(shared_data / "video" / "mead" / "happy.mp4", clip, 10, max_frames=15) == 15
    out = tmp_path / "out.jsonl"
    r = subprocess.run([sys.executable, "-m", "realtime_fer", "analyze", str(clip), "-o", str(out), "--device", "cpu", *model_cli_args()],
                       capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert r.returncode == 0, r.stderr
    preds = [m for m in (message_from_dict(json.loads(line)) for line in out.read_text().splitlines()) if isinstance(m, Prediction)]
    assert preds, r.stdout
    assert [p.frame for p in preds] == list(range(4, 15))  # from 0.4 s on, every frame (0.1 s >= the 0.08 s hop)
    assert [p.partial for p in preds] == [True] * 6 + [False] * 5  # full once 24 samples of 0.04 s are seen (frame 10, 1.0 s)
    # the partial decisions are provisional: the first full window restarts the face's average
    # (smoothing.restart_at_full), while the partial and later windows are averaged as usual
    assert preds[6].smoothed == pytest.approx(preds[6].probabilities, abs=1e-6)
    for k in (1, 7):
        assert max(abs(preds[k].smoothed[e] - preds[k].probabilities[e]) for e in preds[k].probabilities) > 1e-4
    assert json.loads(out.read_text().splitlines()[[i for i, line in enumerate(out.read_text().splitlines()) if '"prediction"' in line][0]])["partial"] is True
