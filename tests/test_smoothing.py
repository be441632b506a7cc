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


@pytest.mark.parametrize("restart", [True, False])
def test_the_first_full_window_restarts_the_average_of_partial_ones(restart: bool) -> None:
    """Partial windows (the face seen for less than a window) are provisional: with
    ``restart_at_full`` the first full window starts the average afresh, live and offline alike;
    without it their average carries on. Later full windows, and a track that starts full, are
    smoothed as before."""
    opts = SmoothingOptions(restart_at_full=restart)
    t = np.arange(12) * 0.08
    partial = np.arange(12) < 5
    p = {"sad": np.where(partial, 0.9, 0.1).astype(np.float32), "disgust": np.where(partial, 0.1, 0.8).astype(np.float32)}
    offline = smooth_sequence(p, t, opts, partial)
    live = TrackSmoother(opts)
    got = [live.update(3, {e: float(v[k]) for e, v in p.items()}, float(t[k]), bool(partial[k])) for k in range(12)]
    for e in p:
        np.testing.assert_allclose([g[e] for g in got], offline[e], atol=1e-6)
    if restart:
        assert offline["disgust"][5] == pytest.approx(0.8) and offline["sad"][5] == pytest.approx(0.1)
    else:
        assert offline["sad"][5] > offline["disgust"][5]  # the partial windows' sad still leads
    # a track whose windows are all full is unaffected by the option
    full = smooth_sequence(p, t, opts, np.zeros(12, bool))
    np.testing.assert_allclose(full["sad"], smooth_sequence(p, t, opts)["sad"])
    live.forget(3)
    assert live.update(3, {"sad": 0.2, "disgust": 0.2}, 2.0, False) == {"sad": 0.2, "disgust": 0.2}
