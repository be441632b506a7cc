"""The recognizer end to end: real videos, real ZeroMQ sockets, a real MJPEG stream over HTTP."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest
import zmq

from realtime_fer.capture import CaptureOptions
from realtime_fer.config_io import from_dict
from realtime_fer.errors import ConfigError
from realtime_fer.explain.regions import face_regions
from realtime_fer.landmarks.tracking import FaceTracker, TrackerOptions
from realtime_fer.pipeline import ListSink, PublisherSink, RunSummary, RuntimeConfig, load_runtime_config, open_recognizer
from realtime_fer.publish import Prediction, Publisher, PublisherOptions, Status, Subscriber, decode
from runtime_helpers import bundle_arg, free_port, require_bundle, video, wait_until
from test_capture import MjpegServer

ROOT = Path(__file__).resolve().parents[1]


def _config(**kw: object) -> RuntimeConfig:
    config = RuntimeConfig(model=bundle_arg(), device="cpu")
    for key, value in kw.items():
        setattr(config, key, value)
    return config


def _statuses(messages: list, event: str | None = None) -> list[Status]:
    return [m for m in messages if isinstance(m, Status) and (event is None or m.event == event)]


def _predictions(messages: list) -> list[Prediction]:
    return [m for m in messages if isinstance(m, Prediction)]


# --------------------------------------------------------------------------------------------
# configuration
# --------------------------------------------------------------------------------------------
def test_runtime_default_yaml_matches_the_dataclass_defaults() -> None:
    assert load_runtime_config(ROOT / "configs" / "runtime_default.yaml") == RuntimeConfig()
    cfg = from_dict(RuntimeConfig, {"landmarker": {"num_faces": 3}, "finder": {"enabled": False}, "publish": {"endpoint": "tcp://127.0.0.1:0", "sndhwm": 5}, "show": False})
    assert cfg.max_faces == 3 and cfg.publish.sndhwm == 5
    # with the finder (the default) the faces tracked at once are finder.max_faces, at least num_faces
    assert from_dict(RuntimeConfig, {"finder": {"max_faces": 3}}).max_faces == 3
    assert from_dict(RuntimeConfig, {"landmarker": {"num_faces": 8}}).max_faces == 8
    assert from_dict(RuntimeConfig, {"landmarker": {"num_faces": 3}}).max_faces == RuntimeConfig().finder.max_faces == 6
    with pytest.raises(ConfigError, match="unknown key"):
        from_dict(RuntimeConfig, {"publish": {"hwm": 5}})
    with pytest.raises(ConfigError, match="device"):
        from_dict(RuntimeConfig, {"device": "tpu"})


# --------------------------------------------------------------------------------------------
# tracking
# --------------------------------------------------------------------------------------------
def test_tracker_keeps_ids_while_faces_move_and_gives_new_ids_after_loss() -> None:
    tracker = FaceTracker(max_faces=2, options=TrackerOptions(max_missed=2))
    a = lambda x: (x, 100.0, x + 80.0, 200.0)  # noqa: E731
    b = lambda x: (x, 300.0, x + 60.0, 380.0)  # noqa: E731
    first = tracker.update([a(0), b(400)], 0)
    ids = [t.track_id for _, t in first.assignments]
    assert ids == [1, 2] and len(first.new) == 2 and {t.slot for t in first.new} == {0, 1}
    for f in range(1, 20):  # both move 6 px per frame, detections come in swapped order
        upd = tracker.update([b(400 - 6 * f), a(6 * f)], f)
        assert [t.track_id for _, t in upd.assignments] == [2, 1] and not upd.new and not upd.lost
    # a jump too far for IoU but within the centroid distance still matches
    upd = tracker.update([a(114 + 40)], 20)
    assert [t.track_id for _, t in upd.assignments] == [1] and [t.track_id for t in upd.missed] == [2]
    tracker.update([a(154)], 21)
    upd = tracker.update([a(154)], 22)
    assert [t.track_id for t in upd.lost] == [2]  # missed 3 > max_missed 2
    upd = tracker.update([a(154), b(0)], 23)
    assert [t.track_id for _, t in upd.assignments] == [1, 3] and upd.new[0].slot == 1
    assert tracker.total_tracks == 3


def test_tracker_evicts_a_missing_track_when_slots_run_out() -> None:
    tracker = FaceTracker(max_faces=1, options=TrackerOptions(max_missed=10))
    tracker.update([(0, 0, 50, 50)], 0)
    upd = tracker.update([(500, 500, 550, 550)], 1)  # the old face vanished, a new one appears
    assert [t.track_id for t in upd.lost] == [1] and [t.track_id for t in upd.new] == [2] and upd.new[0].slot == 0


# --------------------------------------------------------------------------------------------
# a file published over ZeroMQ, with a reading and a never-reading subscriber
# --------------------------------------------------------------------------------------------
@dataclass
class PublishedRun:
    messages: list
    summary: RunSummary
    emotions: list[str]
    stuck_received: int
    elapsed_s: float


@pytest.fixture(scope="module")
def published_run(shared_data: Path) -> Iterator[PublishedRun]:
    """single_face.mp4 through the recognizer, published (JSON, with landmarks: big messages)
    to one subscriber that reads everything and one that never reads, with tiny buffers."""
    bundle = require_bundle()
    config = _config(include_landmarks=True)
    config.publish = PublisherOptions(endpoint="tcp://127.0.0.1:0", stream_id="test1", encoding="json", sndhwm=8)
    # Small kernel socket buffers (the context's default for its sockets), so that what a
    # subscriber does not read cannot hide in TCP buffers and the high-water marks decide.
    pub_ctx = zmq.Context()
    pub_ctx.setsockopt(zmq.SNDBUF, 8192)
    publisher = Publisher.from_options(config.publish, context=pub_ctx)
    rec = open_recognizer(str(video(shared_data, "single_face.mp4")), config, [PublisherSink(publisher)], bundle=bundle)
    ctx = zmq.Context.instance()
    stuck = ctx.socket(zmq.SUB)
    stuck.setsockopt(zmq.RCVHWM, 1)
    stuck.setsockopt(zmq.RCVBUF, 2048)
    stuck.setsockopt(zmq.LINGER, 0)
    stuck.setsockopt(zmq.SUBSCRIBE, b"fer.")
    stuck.connect(publisher.endpoint)
    received: list = []
    with Subscriber(publisher.endpoint, topics=["fer.test1."], timeout=0.2) as sub:
        time.sleep(0.5)  # both subscriptions reach the publisher before anything is sent

        def read() -> None:
            while True:
                raw = sub.recv_raw(0.1)
                if raw is not None:
                    received.append(decode(raw[1]))
                elif done.is_set():
                    return

        done = threading.Event()
        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        t0 = time.monotonic()
        summary = rec.run()
        elapsed = time.monotonic() - t0
        time.sleep(0.3)
        done.set()
        reader.join(5)
    stuck_received = 0
    while stuck.poll(300):
        stuck.recv_multipart()
        stuck_received += 1
    stuck.close(0)
    pub_ctx.term()
    yield PublishedRun(received, summary, list(bundle.emotions), stuck_received, elapsed)


def test_subscriber_receives_decodable_predictions(published_run: PublishedRun) -> None:
    msgs, summary = published_run.messages, published_run.summary
    preds = _predictions(msgs)
    assert summary.frames == 72 and summary.end_reason == "end of file"
    assert len(msgs) == summary.messages  # every message arrived and decoded (decode validates)
    bundle = require_bundle()
    window = bundle.window  # 24 samples over 0.96 s, a decision every 0.08 s (the legacy rule)
    full = int((72 / 30 - window.span_s) / window.hop_s)  # decisions on full windows (30 fps clip)
    assert len(preds) == summary.predictions >= full
    assert isinstance(msgs[0], Status) and msgs[0].event == "started"
    assert isinstance(msgs[-1], Status) and msgs[-1].event == "ended" and msgs[-1].frames == 72 and msgs[-1].fps > 0
    for p in preds:
        assert p.stream == "test1" and p.image_size == [640, 360]
        assert list(p.probabilities) == published_run.emotions
        assert all(0.0 <= v <= 1.0 for v in p.probabilities.values())
        assert p.top in (*published_run.emotions, "neutral")
        # the top emotion (unless the neutral fallback) and every emotion above its threshold
        # are explained; completeness can be checked from the message alone
        explained = set(p.attributions)
        # ("neutral" is never explained as the top: StreamExplainer.to_explain skips the
        # fallback's name, whether the neutral model won or no emotion passed its threshold; the
        # partial windows of the face's first second are decided neutral on this clip)
        assert p.top == "neutral" or p.top in explained
        # (so a neutral above its threshold is explained only when it is not the top)
        assert explained >= {e for e, v in p.probabilities.items() if v >= bundle.emotions[e].threshold} - {p.top}
        for emotion, a in p.attributions.items():
            assert 1 <= len(a["top"]) <= 5 and a["baseline"] in ("track", "person", "dataset")
            weights = [t["weight"] for t in a["top"]]
            assert weights == sorted(weights, key=abs, reverse=True)
            model_regions = {face_regions().names[i] for i in bundle.emotions[emotion].landmarks}
            for t in a["top"]:  # a region of the emotion's model's landmarks, or a blendshape it reads (schema 2)
                assert set(t) in ({"region", "weight"}, {"blendshape", "weight"}), t
                assert t["region"] in model_regions if "region" in t else t["blendshape"] in (bundle.blendshapes or ())
            assert "landmarks" not in a  # single landmarks only with explain.detail: landmarks
            assert abs(a["sum"] - (a["output"] - a["baseline_output"])) <= 1e-3 * max(1.0, abs(a["output"] - a["baseline_output"]))
        assert p.t_publish is not None and p.t_capture <= p.t_publish < p.t_capture + 10
        x0, y0, x1, y1 = p.bbox
        assert 0 <= x0 < x1 <= 640 and 0 <= y0 < y1 <= 360 and x1 - x0 > 50
        assert p.landmarks is not None and len(p.landmarks) == 478
    assert any(p.attributions for p in preds)
    # the decision rule of the bundle
    # (``top`` is decided on the smoothed probabilities: after the partial windows' neutral
    # start, the moving average lags the raw ones for a few decisions)
    smoothed = {e: np.array([p.smoothed[e] for p in preds]) for e in published_run.emotions}
    assert [p.top for p in preds] == list(bundle.decide(smoothed))
    # in source time (30 fps): partial decisions once the face was seen for 0.4 s (10 samples of
    # 0.04 s), full ones once it was seen for a window, then every 0.08 s of source time
    fps = 30.0
    frames = [p.frame for p in preds]
    flags = [p.partial for p in preds]
    first_full = flags.index(False)
    assert all(flags[:first_full]) and not any(flags[first_full:])
    assert (frames[0] - 1) / fps < (window.min_samples - 1) * window.step_s <= frames[0] / fps + 1e-3
    assert (frames[first_full] - 1) / fps < (window.length - 1) * window.step_s <= frames[first_full] / fps + 1e-3
    gaps = np.diff(frames) / fps
    assert gaps.min() >= window.hop_s - 1 / fps - 1e-6 and gaps.max() <= window.hop_s + 1 / fps + 1e-6
    assert (frames[-1] - frames[0]) / fps / (len(frames) - 1) == pytest.approx(window.hop_s, abs=0.1 / fps)


def test_track_id_is_stable_on_a_one_face_video(published_run: PublishedRun) -> None:
    preds = _predictions(published_run.messages)
    assert {p.face for p in preds} == {1}
    found = _statuses(published_run.messages, "face_found")
    assert [s.face for s in found] == [1] and published_run.summary.faces == 1
    assert not _statuses(published_run.messages, "no_face")


def test_a_subscriber_that_never_reads_does_not_stall_the_pipeline(published_run: PublishedRun) -> None:
    # the stuck subscriber got only what fits in its small buffers; the reader got everything
    assert published_run.stuck_received < published_run.summary.messages
    assert len(published_run.messages) == published_run.summary.messages
    # and the pipeline ran at full speed: 72 frames, far quicker than if sends had blocked
    assert published_run.elapsed_s < 20
    assert published_run.summary.fps > 5


# --------------------------------------------------------------------------------------------
# status events on videos with and without faces, and a still image
# --------------------------------------------------------------------------------------------
def _analyze(path: Path, **kw: object) -> tuple[list, RunSummary]:
    sink = ListSink()
    rec = open_recognizer(str(path), _config(**kw), [sink], bundle=require_bundle())
    summary = rec.run()
    return sink.messages, summary


def test_no_face_video_yields_no_face_status(shared_data: Path) -> None:
    msgs, summary = _analyze(video(shared_data, "no_face.mp4"), no_face_interval_s=0.5)
    assert summary.frames == 95
    no_face = _statuses(msgs, "no_face")
    assert no_face and no_face[0].frames == 1  # announced on the first frame
    assert not _predictions(msgs) and not _statuses(msgs, "face_found")
    assert [m.event for m in _statuses(msgs)][0] == "started" and _statuses(msgs)[-1].event == "ended"


def test_heartbeat_carries_the_running_counts(shared_data: Path) -> None:
    """heartbeat_interval_s: a heartbeat status at that period, its counts never going back."""
    msgs, summary = _analyze(video(shared_data, "face_noface.mov"), heartbeat_interval_s=0.05, capture=CaptureOptions(realtime=True))
    beats = _statuses(msgs, "heartbeat")
    seconds = 169 / 26.4  # the file played at its own rate
    assert len(beats) >= seconds / 0.05 / 3, f"{len(beats)} heartbeats in {seconds:.1f} s"
    frames = [b.frames for b in beats]
    assert frames == sorted(frames) and 0 < frames[-1] <= summary.frames
    times = [b.timestamp for b in beats]
    assert max(b - a for a, b in zip(times, times[1:])) < 1.0
    assert _statuses(msgs)[-1].event == "ended"
    quiet, _ = _analyze(video(shared_data, "no_face.mp4"))
    assert not _statuses(quiet, "heartbeat"), "no heartbeat unless asked for"


def test_face_appears_and_leaves(shared_data: Path) -> None:
    """face_noface.mov: a face for about 2.7 s (72 frames), then an empty scene."""
    msgs, summary = _analyze(video(shared_data, "face_noface.mov"))
    events = [(m.event, m.face, m.frames) for m in _statuses(msgs)]
    found = [e for e in events if e[0] == "face_found"]
    lost = [e for e in events if e[0] == "face_lost"]
    assert found[0][1] == 1 and found[0][2] == 1  # found on the first frame
    assert lost[0][1] == 1 and 72 < lost[0][2] <= 72 + TrackerOptions().max_missed + 1  # lost max_missed frames after it left
    kinds = [e[0] for e in events]
    assert kinds.index("face_found") < kinds.index("face_lost") < kinds.index("no_face")
    assert {p.face for p in _predictions(msgs)} == {1}
    assert max(p.frame for p in _predictions(msgs)) < 72


def test_still_image_is_scored_at_once(shared_data: Path) -> None:
    msgs, summary = _analyze(shared_data / "images" / "pyfeat" / "single_face.jpg")
    preds = _predictions(msgs)
    assert summary.frames == 1 and len(preds) == 1 and preds[0].frame == 0
    assert summary.end_reason == "end of image"


def test_overlay_draws_without_a_display(shared_data: Path) -> None:
    from realtime_fer.pipeline.display import draw_overlay

    sink = ListSink()
    frames: list = []
    rec = open_recognizer(
        str(video(shared_data, "single_face.mp4")), _config(), [sink], bundle=require_bundle(), on_frame=lambda f, r: frames.append((f, r)) if len(frames) < require_bundle().window_length + 4 else rec.stop()
    )
    rec.run()
    frame, result = frames[-1]
    preds = {p.face: p for _, r in frames for p in r.predictions}
    assert preds
    img = draw_overlay(frame.image, result.faces, preds, list(require_bundle().emotions))
    assert img.shape == frame.image.shape and (img != frame.image).any()


def test_overlay_colours_the_regions_behind_the_top_emotion(shared_data: Path) -> None:
    import cv2

    from realtime_fer.pipeline.display import _AGAINST, _FOR, draw_attributions

    image = cv2.imread(str(shared_data / "images" / "pyfeat" / "single_face.jpg"))
    msgs, _ = _analyze(shared_data / "images" / "pyfeat" / "single_face.jpg")
    pred = _predictions(msgs)[0]
    entry = pred.attributions[pred.top]
    marks = [t for t in entry["top"] if "region" in t]  # blendshape entries have no place to draw
    assert marks
    points = np.zeros((478, 3))
    for k, t in enumerate(marks):  # spread the listed regions over the image: their landmarks at one spot
        points[face_regions().indices(t["region"]), :2] = (60 + 80 * k, 100)
    out = image.copy()
    draw_attributions(out, points, pred)
    for k, t in enumerate(marks):
        patch = out[85:116, 45 + 80 * k : 76 + 80 * k].reshape(-1, 3)
        colour = _FOR if t["weight"] > 0 else _AGAINST
        assert (patch == colour).all(axis=1).any(), f"region {t['region']} not drawn in {colour}"


# --------------------------------------------------------------------------------------------
# a live stream that dies and comes back, without restarting the recognizer
# --------------------------------------------------------------------------------------------
def test_stream_is_consumed_again_after_it_returns(shared_data: Path, tmp_path: Path) -> None:
    server = MjpegServer(video(shared_data, "single_face.mp4"), free_port(), tmp_path / "ffmpeg.log")
    config = _config()
    config.capture = CaptureOptions(open_timeout_s=2, read_timeout_s=1, reconnect_initial_s=0.2, reconnect_max_s=0.5)
    config.publish = replace(config.publish, endpoint="tcp://127.0.0.1:0", stream_id="live")
    server.start()
    try:
        publisher = Publisher.from_options(config.publish)
        rec = wait_until(lambda: _try_open(server.url, config, publisher), 10, "the MJPEG server")
        with Subscriber(publisher.endpoint, topics=["fer.live."], timeout=0.1) as sub:
            time.sleep(0.3)
            runner = threading.Thread(target=rec.run, daemon=True)
            runner.start()
            seen: list = []

            def until(pred) -> object:  # noqa: ANN001
                def step() -> object:
                    msg = sub.recv()
                    if msg is not None:
                        seen.append(msg)
                        return msg if pred(msg) else None
                    return None

                return step

            first = wait_until(until(lambda m: isinstance(m, Prediction)), 15, "a prediction from the live stream")
            server.kill()
            wait_until(until(lambda m: isinstance(m, Status) and m.event == "source_lost"), 10, "source_lost")
            wait_until(until(lambda m: isinstance(m, Status) and m.event == "reconnecting"), 5, "reconnecting")
            assert runner.is_alive()
            server.start()
            recovered = wait_until(until(lambda m: isinstance(m, Status) and m.event == "recovered"), 15, "recovered")
            again = wait_until(until(lambda m: isinstance(m, Prediction) and m.t_capture > recovered.timestamp), 15, "a prediction after the stream returned")
            assert again.frame > first.frame
            lost = [m for m in seen if isinstance(m, Status) and m.event == "face_lost"]
            assert lost and lost[0].detail == "source lost"  # tracks end with the source
            rec.stop()
            runner.join(10)
            assert not runner.is_alive()
            wait_until(until(lambda m: isinstance(m, Status) and m.event == "ended"), 5, "ended")
            assert rec.capture is not None and rec.capture.reconnects == 1
    finally:
        server.kill()


def _try_open(url: str, config: RuntimeConfig, publisher: Publisher):  # noqa: ANN202
    from realtime_fer.errors import SourceError

    try:
        return open_recognizer(url, config, [PublisherSink(publisher)], bundle=require_bundle())
    except SourceError:
        return None
