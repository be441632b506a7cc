"""Smoothing of each face's probabilities over time (realtime_fer.models.smoothing)."""

from __future__ import annotations

import numpy as np
import pytest

from realtime_fer.models.smoothing import SmoothingOptions, TrackSmoother, smooth_sequence


def test_ema_follows_its_time_constant() -> None:
    opts = SmoothingOptions(time_constant_s=0.5)
    t = np.arange(0, 3.0, 0.04)  # 25 windows per second
    step = (t >= 1.0).astype(np.float32)
    s = smooth_sequence({"happy": step}, t, opts)["happy"]
    assert s[0] == 0.0 and np.all(np.diff(s) >= -1e-7)
    k0 = int(np.argmax(t >= 1.0))
    k = k0 + 12  # 13 windows of 0.04 s after the step: about tau, so about 1 - 1/e of it
    assert s[k] == pytest.approx(1 - np.exp(-13 * 0.04 / 0.5), abs=1e-5)
    assert s[k] == pytest.approx(1 - np.exp(-1), abs=0.02)


def test_same_time_constant_at_any_rate() -> None:
    opts = SmoothingOptions(time_constant_s=0.3)
    for dt in (1 / 25, 1 / 30, 1 / 10):
        t = np.arange(0, 2.0, dt)
        s = smooth_sequence({"x": (t >= 0.5).astype(np.float32)}, t, opts)["x"]
        k = int(np.argmin(np.abs(t - 0.8)))
        assert s[k] == pytest.approx(1 - np.exp(-(t[k] - t[np.argmax(t >= 0.5)] + dt) / 0.3), abs=1e-5)


def test_track_smoother_equals_the_offline_sequence() -> None:
    rng = np.random.default_rng(0)
    t = np.cumsum(rng.uniform(0.02, 0.1, 50))
    p = {"happy": rng.random(50).astype(np.float32), "sad": rng.random(50).astype(np.float32)}
    offline = smooth_sequence(p, t, SmoothingOptions())
    live = TrackSmoother(SmoothingOptions())
    got = [live.update(7, {e: float(v[k]) for e, v in p.items()}, float(t[k])) for k in range(50)]
    for e in p:
        np.testing.assert_allclose([g[e] for g in got], offline[e], atol=1e-6)


def test_none_and_forget() -> None:
    sm = TrackSmoother(SmoothingOptions(method="none"))
    sm.update(1, {"a": 0.2}, 0.0)
    assert sm.update(1, {"a": 0.9}, 0.04) == {"a": 0.9}
    sm = TrackSmoother()
    sm.update(1, {"a": 0.0}, 0.0)
    assert sm.update(1, {"a": 1.0}, 0.04)["a"] < 0.2
    sm.forget(1)
    assert sm.update(1, {"a": 1.0}, 0.08)["a"] == 1.0  # a new track starts from its first window
    assert len(sm) == 1


def test_bad_options() -> None:
    with pytest.raises(ValueError, match="time_constant_s"):
        SmoothingOptions(time_constant_s=0)
    with pytest.raises(ValueError, match="method"):
        SmoothingOptions(method="median")  # type: ignore[arg-type]
