"""Processing-rate control of live streams (``pacing``, realtime_fer/pipeline/pacing.py): the
pacer's rule, the capture's fresh-frame bound, and a paced recognizer on an emulated camera."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from realtime_fer.config_io import from_dict
from realtime_fer.errors import ConfigError
from realtime_fer.pipeline.config import RuntimeConfig
from realtime_fer.pipeline.pacing import FRESH_TOLERANCE, LivePacer, PacingOptions
from runtime_helpers import require_bundle, video


def test_the_pacer_spaces_frames_by_the_median_busy_time_over_the_duty() -> None:
    pacer = LivePacer(PacingOptions(max_duty=0.5, window=4, min_samples=2))
    assert pacer.wait_s(now=0.0) == 0.0 and pacer.captured_after() is None  # nothing known: no wait
    pacer.done(pacer.taken(now=9.0), now=11.0)  # a slow first frame (cold start) alone does not pace
    assert pacer.interval_s() == 0.0
    t = pacer.taken(now=10.0)
    pacer.done(t, now=10.1)  # busy 0.1 s
    pacer.done(t, now=10.1)
    assert pacer.interval_s() == pytest.approx(0.2)
    assert pacer.wait_s(now=10.05) == pytest.approx(0.15)
    # after a pause, the frame to take is one captured near its end, not one that waited through it
    assert pacer.captured_after() == pytest.approx(10.0 + (1 - FRESH_TOLERANCE) * 0.2)
    assert pacer.wait_s(now=10.25) == 0.0
    pacer.taken(now=10.25)
    assert pacer.captured_after() is None
    for busy in (0.1, 5.0):  # one frame stalled by another process: the median ignores it
        pacer.done(0.0, now=busy)
    assert pacer.interval_s() == pytest.approx(0.2)
    for _ in range(4):  # the window forgets
        pacer.done(0.0, now=0.02)
    assert pacer.interval_s() == pytest.approx(0.04)


def test_a_host_that_keeps_up_is_not_paced() -> None:
    """Busy times well under the source's frame period: the interval stays under it too, so every
    frame is taken as it arrives."""
    pacer = LivePacer(PacingOptions())
    for k in range(8):
        pacer.done(k * 1 / 30, now=k * 1 / 30 + 0.012)  # 12 ms a frame at 30 fps
    assert pacer.interval_s() < 1 / 30


def test_pacing_options_are_checked_and_live_in_the_runtime_config() -> None:
    assert RuntimeConfig().pacing == PacingOptions()
    assert from_dict(RuntimeConfig, {"pacing": {"enabled": False}}).pacing.enabled is False
    with pytest.raises(ConfigError, match="max_duty"):
        from_dict(RuntimeConfig, {"pacing": {"max_duty": 0}})
    with pytest.raises(ConfigError, match="window"):
        from_dict(RuntimeConfig, {"pacing": {"window": 0}})


def test_an_emulated_camera_hands_out_only_frames_captured_after_the_bound(shared_data: Path) -> None:
    from realtime_fer.capture import CaptureOptions, CaptureThread, open_source

    options = CaptureOptions(realtime=True, emulate_live=True, queue_size=1)
    cap = CaptureThread(open_source(str(video(shared_data, "single_face.mp4")), options), options)
    with cap:
        first = cap.get(timeout=5)
        assert first is not None
        time.sleep(0.2)  # frames wait and go stale meanwhile
        bound = time.perf_counter()
        frame = cap.get(timeout=5, captured_after=bound)
        assert frame is not None and frame.t_capture >= bound
        assert cap.dropped >= 4  # the stale ones were dropped and counted, not handed out


def _paced_run(shared_data: Path, enabled: bool) -> tuple[list[tuple[float, float]], int, int]:
    """An emulated camera whose landmarker is slower than the clip (a 0.1 s sleep, as on a busy
    host): per processed frame (capture time, done time); frames processed and dropped."""
    from realtime_fer.capture import CaptureOptions
    from realtime_fer.pipeline import ListSink, open_recognizer
    from runtime_helpers import bundle_arg

    bundle = require_bundle()
    config = RuntimeConfig(model=bundle_arg(), device="cpu", capture=CaptureOptions(realtime=True, emulate_live=True, queue_size=1), pacing=PacingOptions(enabled=enabled))
    rec = open_recognizer(str(video(shared_data, "single_face.mp4")), config, [ListSink()], bundle=bundle)
    detect, finish = rec.processor.detect, rec.processor.finish
    spans: list[tuple[float, float]] = []

    def slow_detect(frame, **kw):  # noqa: ANN001, ANN003, ANN202
        time.sleep(0.1)
        return detect(frame, **kw)

    def timed_finish(pending):  # noqa: ANN001, ANN202
        result = finish(pending)
        spans.append((pending.frame.t_capture, time.perf_counter()))
        return result

    rec.processor.detect = slow_detect  # type: ignore[method-assign]
    rec.processor.finish = timed_finish  # type: ignore[method-assign]
    summary = rec.run()
    return spans, summary.frames, summary.dropped


def test_a_paced_stream_takes_fresh_frames_once_the_previous_is_done(shared_data: Path) -> None:
    """Paced, a stream slower than its camera takes each frame after the previous one is done
    (nothing waits behind its own work) and drops the rest; unpaced, the next frame is taken as
    soon as the landmarker is free, captured while the previous one was still being processed."""
    def fresh_share(spans: list[tuple[float, float]]) -> float:
        spans = spans[PacingOptions().min_samples :]  # pacing starts once that many frames are done
        fresh = [b[0] >= a[1] for a, b in zip(spans, spans[1:])]
        return sum(fresh) / len(fresh)

    paced, frames, dropped = _paced_run(shared_data, True)
    assert frames + dropped == 72 and dropped > 30
    unpaced, frames_off, _ = _paced_run(shared_data, False)
    assert fresh_share(paced) >= 0.8, paced
    assert fresh_share(unpaced) <= 0.5, unpaced
    assert frames < frames_off  # the slack costs frames, which are dropped (counted), not queued
