"""Person-adaptive normalisation (realtime_fer.features.adaptation) on a real face track: a
constant identity offset is removed once the resting face is learnt, nothing changes before
(the cold start), and the live recognizer applies it and says so in its messages."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fer_testdata import session_cache
from realtime_fer.data.extract import extract_dataset
from realtime_fer.data.windows import video_windows
from realtime_fer.explain.baselines import shipped_neutral_face
from realtime_fer.features.adaptation import AdaptationOptions, PersonAdaptation, RestingFace
from realtime_fer.features.windows import WindowOptions
from realtime_fer.publish import Prediction, message_from_dict
from runtime_helpers import model_cli_args, require_bundle

ROOT = Path(__file__).resolve().parents[1]
FPS = 25.0


@pytest.fixture(scope="module")
def track(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[np.ndarray, np.ndarray]:
    """Windows (W, 12, 468, 3) of the real talking neutral MEAD clip and their end frames."""
    res = extract_dataset(shared_data / "video" / "mead", session_cache(tmp_path_factory), workers=0, progress=False)
    sample = next(s for s in res.samples if s.ref.path.name == "neutral.mp4")
    wins, ends = video_windows(sample, WindowOptions(length=12, hop=1))
    assert len(wins) > 40
    return wins, ends


def _run(wins: np.ndarray, ends: np.ndarray, options: AdaptationOptions) -> tuple[np.ndarray, list[bool]]:
    union = np.arange(468)
    adapt = PersonAdaptation(union, {"all": union, "mouth": np.array([13, 14, 78, 308])}, shipped_neutral_face(), options)
    out, ready = [], []
    for k in range(len(wins)):
        inputs = {"all": wins[k : k + 1].copy(), "mouth": wins[k : k + 1][:, :, [13, 14, 78, 308]].copy()}
        ready.append(adapt.track(1).ready)
        union_window = wins[k : k + 1].copy()
        adapt.correct_union(union_window, [1])
        adapt.correct(inputs, [1])
        np.testing.assert_array_equal(union_window, inputs["all"])  # the union graph's input is corrected alike
        np.testing.assert_allclose(inputs["mouth"], inputs["all"][:, :, [13, 14, 78, 308]], atol=1e-7)  # per-emotion subsets agree
        out.append(inputs["all"][0])
        adapt.observe(1, wins[k], ends[k] / FPS, neutral=True)
    return np.stack(out), ready


def test_constant_identity_offset_is_removed(track: tuple[np.ndarray, np.ndarray]) -> None:
    wins, ends = track
    identity = np.random.default_rng(0).normal(0, 0.02, size=(1, 1, 468, 3)).astype(np.float32)  # another person's resting face
    opts = AdaptationOptions(enabled=True, warmup_s=0.5, max_spread=1.0, require_neutral=False)
    a, ready = _run(wins, ends, opts)
    b, ready_b = _run(wins + identity, ends, opts)
    assert ready == ready_b and not ready[0] and ready[-1]
    first = ready.index(True)
    # cold start: nothing is corrected, the offset is still there
    np.testing.assert_allclose(b[:first] - a[:first], np.broadcast_to(identity[0], a[:first].shape), atol=1e-6)
    # once the resting face is known the two people's windows are the same
    np.testing.assert_allclose(b[first:], a[first:], atol=1e-5)
    assert np.abs(a[first:] - wins[first:]).max() > 1e-3  # and the correction did something


def test_only_still_neutral_windows_count(track: tuple[np.ndarray, np.ndarray]) -> None:
    wins, ends = track
    rest = RestingFace(shipped_neutral_face(), AdaptationOptions(max_spread=1e-6))
    assert not any(rest.observe(w, e / FPS) for w, e in zip(wins, ends))  # a talking face is not still
    rest = RestingFace(shipped_neutral_face(), AdaptationOptions(max_spread=1.0))
    assert not any(rest.observe(w, e / FPS, neutral=False) for w, e in zip(wins, ends))
    assert rest.offset() is None
    spread = [RestingFace.spread(w) for w in wins]
    assert 0.001 < np.median(spread) < 0.05  # normalised units: jitter ~0.002, speech more


def test_options_are_checked() -> None:
    with pytest.raises(ValueError, match="time_constant_s"):
        AdaptationOptions(time_constant_s=0)
    with pytest.raises(ValueError, match="warmup_s"):
        AdaptationOptions(warmup_s=-1)


def _analyze(clip: Path, config: str, tmp_path: Path) -> list[Prediction]:
    """The predictions of ``realtime-fer analyze CLIP`` with a runtime config of ``config``."""
    require_bundle()
    cfg = tmp_path / "run.yaml"
    cfg.write_text(config)
    out = tmp_path / "out.jsonl"
    r = subprocess.run(
        [sys.executable, "-m", "realtime_fer", "analyze", str(clip), "--output", str(out), "--config", str(cfg), *model_cli_args()],
        capture_output=True, text=True, cwd=ROOT, timeout=180,
    )
    assert r.returncode == 0, r.stderr
    return [m for m in (message_from_dict(json.loads(line)) for line in out.read_text().splitlines()) if isinstance(m, Prediction)]


def test_analyze_publishes_adapted_predictions(shared_data: Path, tmp_path: Path) -> None:
    config = "adaptation: {enabled: true, warmup_s: 0.3, max_spread: 1.0, require_neutral: false}\nexplain: {enabled: false}\n"
    preds = _analyze(shared_data / "video" / "mead" / "neutral.mp4", config, tmp_path)
    flags = [p.adapted for p in preds]
    assert flags[0] is False and flags[-1] is True and flags == sorted(flags)  # cold start, then adapted
    assert all(p.smoothed is not None and set(p.smoothed) == set(p.probabilities) for p in preds)


def test_blendshapes_are_published_per_face(shared_data: Path, tmp_path: Path) -> None:
    """With landmarker.blendshapes on, every prediction carries the face's 52 named scores."""
    from realtime_fer.landmarks.detector import BLENDSHAPE_NAMES

    preds = _analyze(shared_data / "video" / "mead" / "happy.mp4", "landmarker: {blendshapes: true}\nexplain: {enabled: false}\n", tmp_path)
    assert preds and all(list(p.blendshapes) == list(BLENDSHAPE_NAMES) for p in preds)
    smile = np.mean([(p.blendshapes["mouthSmileLeft"] + p.blendshapes["mouthSmileRight"]) / 2 for p in preds])
    assert smile > 0.3  # the happy clip smiles
    assert all(p.adapted is None for p in preds)  # adaptation is off by default
