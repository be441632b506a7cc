"""Self-training on unlabelled clips (realtime_fer.training.pseudo_labels): which windows join
training and with which label, the options, and the clips' windows read from a real clip."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from realtime_fer.errors import DataError
from realtime_fer.models.network import Network
from realtime_fer.models.smoothing import SmoothingOptions
from realtime_fer.training.config import TrainConfig
from realtime_fer.training.pseudo_labels import PseudoLabelOptions, UnlabelledWindows, pseudo_label

EMOS = ["happy", "neutral", "sad", "contempt"]


def _probe(d: int, j: int) -> Network:
    """A network whose probability is sigmoid(feature j)."""
    head = np.zeros(d + 1, np.float32)
    head[j] = 1.0
    return Network(window_length=1, n_landmarks=0, pooling=("mean",), mean=np.zeros(d, np.float32), std=np.ones(d, np.float32),
                   layers=[(np.zeros((d, 1), np.float32), np.zeros(1, np.float32))], activation="tanh", head_inputs=(0, 1), head_w=head, head_b=0.0)


def _logit(p: float) -> float:
    return float(np.log(p / (1 - p)))


def _clips() -> UnlabelledWindows:
    """Clip 0: 10 windows, happy at 0.9; clip 1: 6 windows, nothing above its threshold, then
    neutral at 0.8 (windows 3-5); clip 2: contempt (withheld) at 0.95 and sad at 0.6."""
    rows, clip = [], []
    low = _logit(0.05)
    for _ in range(10):
        rows.append([_logit(0.9), low, low, low])
        clip.append(0)
    for k in range(6):
        rows.append([low, _logit(0.8) if k >= 3 else _logit(0.3), low, low])
        clip.append(1)
    for _ in range(5):
        rows.append([low, low, _logit(0.6), _logit(0.95)])
        clip.append(2)
    n = len(rows)
    return UnlabelledWindows(np.asarray(rows, np.float32), np.asarray(clip), np.arange(n) * 0.08, np.zeros(n, np.int64), ["a.mp4", "b.mp4", "c.mp4"])


def test_confident_decisions_join_training_with_their_label() -> None:
    data = _clips()
    nets = {e: _probe(4, j) for j, e in enumerate(EMOS)}
    thresholds = {"happy": 0.5, "neutral": 0.5, "sad": 0.5, "contempt": 0.5}
    sub = {e: [] for e in EMOS}
    no_smoothing = SmoothingOptions(method="none")
    rows, labels, counts = pseudo_label(nets, sub, thresholds, data, lambda s: np.arange(4), PseudoLabelOptions(sources=["x"], min_probability=0.7),
                                        withheld=["contempt"], smoothing=no_smoothing)
    # clip 0: every window happy; clip 1: the neutral model's own decisions only (not the
    # fallback); clip 2: contempt is withheld and sad (0.6) is below min_probability
    assert list(rows) == list(range(10)) + [13, 14, 15]
    assert list(labels) == ["happy"] * 10 + ["neutral"] * 3
    assert counts == {"happy": 10, "neutral": 3}
    # at most 4 per clip, evenly spaced
    rows, _, counts = pseudo_label(nets, sub, thresholds, data, lambda s: np.arange(4), PseudoLabelOptions(sources=["x"], min_probability=0.7, max_windows_per_clip=4),
                                   withheld=["contempt"], smoothing=no_smoothing)
    assert list(rows[:4]) == [0, 3, 6, 9] and counts == {"happy": 4, "neutral": 3}
    # a lower bar lets the sad windows of clip 2 in
    _, labels, _ = pseudo_label(nets, sub, thresholds, data, lambda s: np.arange(4), PseudoLabelOptions(sources=["x"], min_probability=0.55),
                                withheld=["contempt"], smoothing=no_smoothing)
    assert list(labels).count("sad") == 5


def _read_clips(config: TrainConfig, pooling: tuple[str, ...]) -> UnlabelledWindows:
    """``unlabelled_clips`` as the trainer calls it."""
    from realtime_fer.training.pseudo_labels import unlabelled_clips
    from realtime_fer.training.trainer import extraction_options

    return unlabelled_clips(config.data.pseudo_labels, config.window, pooling, motion_sources=config.data.motion.sources, cache_dir=config.data.cache_dir,
                            workers=config.data.workers or None, options=extraction_options(config), blendshapes=config.model.blendshapes)


def test_options_and_folders_are_checked(tmp_path: Path) -> None:
    from realtime_fer.config_io import from_dict

    assert not PseudoLabelOptions().enabled and PseudoLabelOptions(sources=["x"]).enabled
    with pytest.raises(ValueError, match="min_probability"):
        PseudoLabelOptions(min_probability=0.0)
    with pytest.raises(ValueError, match="max_windows_per_clip"):
        PseudoLabelOptions(max_windows_per_clip=0)
    config = from_dict(TrainConfig, {"data": {"pseudo_labels": {"sources": [str(tmp_path / "nowhere")]}}})
    with pytest.raises(DataError, match="no such folder"):
        _read_clips(config, ("mean",))
    config = from_dict(TrainConfig, {"data": {"pseudo_labels": {"sources": [str(tmp_path)]}, "motion": {"sources": [str(tmp_path)]}}})
    with pytest.raises(DataError, match="talking-motion source"):
        _read_clips(config, ("mean",))
    (tmp_path / "empty").mkdir()
    config = from_dict(TrainConfig, {"data": {"cache_dir": str(tmp_path / "cache"), "pseudo_labels": {"sources": [str(tmp_path / "empty")]}}})
    with pytest.raises(DataError, match="no video below"):
        _read_clips(config, ("mean",))


def test_the_windows_of_a_real_unlabelled_clip(shared_data: Path, tmp_path: Path) -> None:
    """d0.mp4 (78 frames at 25 fps): the live stream's windows, pooled over the full mesh with
    blendshapes, one clip."""
    from realtime_fer.config_io import from_dict

    clip = shared_data / "video" / "unlabelled" / "d0.mp4"
    if not clip.exists():
        pytest.skip(f"{clip} is not there")
    (tmp_path / "clips").mkdir()
    (tmp_path / "clips" / "d0.mp4").symlink_to(clip)
    config = from_dict(TrainConfig, {"data": {"cache_dir": str(tmp_path / "cache"), "workers": 1, "pseudo_labels": {"sources": [str(tmp_path / "clips")]}},
                                     "model": {"blendshapes": True, "pooling": ["mean", "std"]}, "window": {"length": 24, "hop": 2}})
    w = _read_clips(config, ("mean", "std"))
    assert w.names == ["d0.mp4"]
    assert w.features.shape[1] == 2 * (3 * 468 + 52)
    # 78 frames, 24-frame windows every 2 frames: (78 - 24) / 2 + 1 = 28 full windows
    assert len(w.features) == 28 and np.all(np.diff(w.times) > 0)
