"""The ROS4HRI bridge (docs/ros4hri.md) without ROS 2: the mapping to REP-155 topics, checked by
serialising every mapped message with rosbags from the real hri_msgs .msg definitions carried in
the package, for every emotion and for every message of real clips run through the real
recognizer; the bridge loop over a real ZeroMQ socket; and ``realtime-fer bridge ros4hri`` where
rclpy is missing."""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from realtime_fer.bridges.ros4hri import EXPRESSIONS, MSG_TYPES, Ros4hriMapper, Ros4hriOptions, RosMessage, face_id
from realtime_fer.bridges.ros4hri.bridge import Ros4hriBridge
from realtime_fer.bridges.ros4hri.definitions import MESSAGES, deserialize, msg_text, serialize, typestore
from realtime_fer.bridges.ros4hri.mapping import EXPRESSION_CONSTANTS, TRACKED_TOPIC
from realtime_fer.describe import ACTION_UNITS, CIRCUMPLEX, action_units, valence_arousal
from realtime_fer.publish import FrameImage, Prediction, Publisher, Status, Subscriber
from runtime_helpers import bundle_arg, require_bundle

pytest.importorskip("rosbags", reason="rosbags (the dev extra) serialises the ROS messages without ROS 2")

ROOT = Path(__file__).resolve().parent.parent
EMOTIONS = sorted(CIRCUMPLEX)


@pytest.fixture(scope="module")
def store() -> Any:
    return typestore()


def _roundtrip(store: Any, msg: RosMessage) -> Any:
    """Serialise with rosbags (CDR, as a ROS 2 publisher sends), read back."""
    data = serialize(store, msg.type, msg.fields)
    assert len(data) > 4
    return deserialize(store, msg.type, data)


def _prediction(top: str = "happy", face: int = 3, **kw: Any) -> Prediction:
    probs = {e: (0.8 if e == top else 0.05) for e in EMOTIONS}
    blend = np.linspace(0.0, 1.0, 52, dtype=np.float32)
    v, a = valence_arousal(probs)
    fields: dict[str, Any] = dict(
        stream="cam0", frame=12, face=face, bbox=[64.0, 32.0, 192.0, 224.0], probabilities=probs, top=top,
        t_capture=1_700_000_000.25, smoothed=probs, image_size=[256, 256], action_units=action_units(blend), valence=v, arousal=a,
    )  # fmt: skip
    fields.update(kw)
    return Prediction(**fields)


# --------------------------------------------------------------------------------------------
# the carried definitions and the ids
# --------------------------------------------------------------------------------------------
def test_the_real_msg_definitions_travel_with_their_notice(store: Any) -> None:
    for name in MESSAGES:
        assert "std_msgs/Header header" in msg_text(name)
        assert f"hri_msgs/msg/{name}" in store.types
    notice = (ROOT / "realtime_fer" / "bridges" / "ros4hri" / "msg" / "NOTICE").read_text()
    assert "BSD" in notice and "52bdab7fedaa92b281839c2cb221cc1e35e09f90" in notice
    # our list of Expression constants is the definition's
    expression = store.types[MSG_TYPES["expression"]]
    consts = {v for k, v in vars(expression).items() if k.isupper() and isinstance(v, str)}
    assert consts == set(EXPRESSION_CONSTANTS)
    assert set(EXPRESSIONS.values()) <= consts


def test_every_action_unit_has_its_code_in_facial_action_units(store: Any) -> None:
    facs = store.types[MSG_TYPES["facs"]]
    codes = {v for k, v in vars(facs).items() if k.isupper() and isinstance(v, int)}
    assert {au.code for au in ACTION_UNITS} <= codes


@pytest.mark.parametrize(
    "stream, face, expected",
    [("cam0", 1, "cam0_f1"), ("door-2", 12, "door_2_f12"), ("0", 1, "s0_f1"), ("a--b__c", 5, "a_b_c_f5"), ("_x_", -2, "x_fm2")],
)
def test_face_ids_are_valid_ros2_name_tokens(stream: str, face: int, expected: str) -> None:
    fid = face_id(stream, face)
    assert fid == expected
    assert re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", fid) and "__" not in fid


# --------------------------------------------------------------------------------------------
# every emotion, contempt included
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("emotion", EMOTIONS)
def test_every_emotion_maps_to_an_expression_that_serialises(store: Any, emotion: str) -> None:
    pred = _prediction(emotion)
    mapped = Ros4hriMapper().map(pred)
    topics = [m.topic for m in mapped.messages]
    assert topics == [TRACKED_TOPIC, "/humans/faces/cam0_f3/roi", "/humans/faces/cam0_f3/expression", "/humans/faces/cam0_f3/facs"]
    back = {m.topic.rsplit("/", 1)[-1]: _roundtrip(store, m) for m in mapped.messages}
    expr = back["expression"]
    assert expr.expression == (EXPRESSIONS.get(emotion) or "disgusted")
    assert (expr.valence, expr.arousal) == pytest.approx((pred.valence, pred.arousal), abs=1e-6)
    assert expr.confidence == pytest.approx(0.8) and expr.header.frame_id == "cam0"
    assert (expr.header.stamp.sec, expr.header.stamp.nanosec) == (1_700_000_000, 250_000_000)
    roi = back["roi"]
    assert (roi.xmin, roi.ymin, roi.xmax, roi.ymax, roi.c) == pytest.approx((0.25, 0.125, 0.75, 0.875, 1.0))
    facs = back["facs"]
    for au in ACTION_UNITS:
        assert facs.intensity[au.code] == pytest.approx(pred.action_units[au.key], abs=1e-6) and facs.confidence[au.code] == 1.0
    assert facs.confidence.sum() == len(ACTION_UNITS)
    assert list(back["tracked"].ids) == ["cam0_f3"]


def test_contempt_is_published_as_the_chosen_constant(store: Any) -> None:
    mapped = Ros4hriMapper(Ros4hriOptions(contempt_as="skeptical", frame_id="head_camera")).map(_prediction("contempt"))
    expr = _roundtrip(store, next(m for m in mapped.messages if m.topic.endswith("/expression")))
    assert (expr.expression, expr.header.frame_id) == ("skeptical", "head_camera")
    with pytest.raises(ValueError, match="contempt_as must be one of"):
        Ros4hriOptions(contempt_as="grumpy")


def test_older_producers_and_other_labels(store: Any) -> None:
    mapper = Ros4hriMapper()
    old = _prediction("sad", image_size=None, action_units=None, valence=None, arousal=None)
    mapped = mapper.map(old)
    assert [m.topic.rsplit("/", 1)[-1] for m in mapped.messages] == ["tracked", "expression"]  # no roi, no facs
    expr = _roundtrip(store, mapped.messages[1])
    assert (expr.valence, expr.arousal) == pytest.approx(valence_arousal(old.smoothed), abs=1e-6) and expr.valence < 0
    other = _prediction("calm", probabilities={"calm": 0.9}, smoothed={"calm": 0.9})
    assert [m.topic.rsplit("/", 1)[-1] for m in mapper.map(other).messages] == ["roi", "facs"]


def test_status_events_keep_the_tracked_list() -> None:
    mapper = Ros4hriMapper()
    t = 1_700_000_000.0
    assert mapper.map(Status("cam0", "started", t)).messages == []
    found = mapper.map(Status("cam0", "face_found", t, face=1))
    assert [m.fields["ids"] for m in found.messages] == [["cam0_f1"]]
    mapper.map(Status("door", "face_found", t, face=1))
    assert mapper.tracked == ["cam0_f1", "door_f1"]
    assert mapper.map(_prediction(face=1)).messages[0].topic != TRACKED_TOPIC  # already tracked
    lost = mapper.map(Status("cam0", "face_lost", t + 1, face=1))
    assert lost.removed == ["cam0_f1"] and lost.messages[0].fields["ids"] == ["door_f1"]
    ended = mapper.map(Status("door", "ended", t + 2))
    assert ended.removed == ["door_f1"] and ended.messages[0].fields["ids"] == []
    # a recognizer that also feeds a live page (--publish-frames): its frames map to nothing
    frame = FrameImage("cam0", 5, t + 3, [64, 48], b"\xff\xd8\xff\xd9")
    assert mapper.map(frame).messages == [] and mapper.map(frame).removed == []


# --------------------------------------------------------------------------------------------
# every message of real clips through the real recognizer
# --------------------------------------------------------------------------------------------
CLIPS = ("mead/contempt.mp4", "mead/sad_m030_1080p.mp4")


@pytest.fixture(scope="module")
def clip_messages(shared_data: Path) -> list:
    from realtime_fer.pipeline import ListSink
    from realtime_fer.pipeline.config import RuntimeConfig
    from realtime_fer.pipeline.recognizer import open_recognizer

    bundle = require_bundle()
    messages: list = []
    for rel in CLIPS:
        path = shared_data / "video" / rel
        if not path.is_file():
            pytest.skip(f"{path} is absent")
        sink = ListSink()
        config = RuntimeConfig(model=bundle_arg(), device="cpu")
        config.publish = dataclasses.replace(config.publish, stream_id=Path(rel).stem)  # one stream id per clip
        open_recognizer(str(path), config, [sink], bundle=bundle).run()
        messages += sink.messages
    return messages


def test_every_message_of_real_clips_maps_and_serialises(store: Any, clip_messages: list) -> None:
    mapper = Ros4hriMapper()
    preds = [m for m in clip_messages if isinstance(m, Prediction)]
    assert len(preds) >= 40
    serialised: dict[str, int] = {}
    tracked_seen: set[str] = set()
    for msg in clip_messages:
        for ros in mapper.map(msg).messages:
            back = _roundtrip(store, ros)
            kind = ros.topic.rsplit("/", 1)[-1]
            serialised[kind] = serialised.get(kind, 0) + 1
            if kind == "roi":
                assert 0 <= back.xmin < back.xmax <= 1 and 0 <= back.ymin < back.ymax <= 1
            elif kind == "expression":
                assert back.expression in EXPRESSION_CONSTANTS and 0 <= back.confidence <= 1
                assert -1 <= back.valence <= 1 and -1 <= back.arousal <= 1
            elif kind == "facs":
                assert back.intensity.shape == (99,) and ((back.intensity >= 0) & (back.intensity <= 1)).all()
            elif kind == "tracked":
                tracked_seen |= set(back.ids)
        if isinstance(msg, Prediction):
            assert face_id(msg.stream, msg.face) in mapper.tracked
    assert serialised["expression"] == serialised["roi"] == serialised["facs"] == len(preds)
    assert tracked_seen == {face_id(p.stream, p.face) for p in preds}
    assert mapper.tracked == [], "every clip ended, so no face is tracked"
    # the sad clip's expressions are sad or disgusted, and their valence negative
    sad = [mapper.expression_fields(p, "x") for p in preds if p.stream == "sad_m030_1080p"]
    assert {e["expression"] for e in sad} <= {"sad", "disgusted"} and all(e["valence"] < 0 for e in sad)


def test_the_bridge_loop_over_zeromq(store: Any, clip_messages: list) -> None:
    """Our messages published on a real socket come out of the bridge as serialisable ROS
    messages, in order; the tracked list is resent on its period."""
    out: list[tuple[str, bytes]] = []
    removed: list[str] = []
    with Publisher("tcp://127.0.0.1:0") as pub, Subscriber(pub.endpoint, topics=["fer."]) as sub:
        deadline = time.monotonic() + 10
        while sub.recv(timeout=0.05) is None:  # slow joiner: wait for the subscription
            assert time.monotonic() < deadline, "the subscriber never connected"
            pub.status("heartbeat", detail="sync")
        while sub.recv(timeout=0.2) is not None:
            pass
        bridge = Ros4hriBridge(sub, Ros4hriMapper(), lambda m: out.append((m.topic, serialize(store, m.type, m.fields))), on_removed=removed.extend, tracked_period_s=0.05)
        sent = list(clip_messages)
        sent.insert(len(sent) // 2, FrameImage(preds_stream(clip_messages), 0, 1_700_000_000.0, [64, 48], b"\xff\xd8\xff\xd9"))  # --publish-frames
        for msg in sent:
            pub.publish(msg)
        deadline = time.monotonic() + 30
        while bridge.received < len(sent):
            assert time.monotonic() < deadline, f"received {bridge.received} of {len(sent)}"
            bridge.step(timeout=0.05)
        time.sleep(0.06)
        bridge.step(timeout=0.0)  # nothing left to read: only the periodic tracked list
    preds = [m for m in clip_messages if isinstance(m, Prediction)]
    expressions = [deserialize(store, MSG_TYPES["expression"], data) for topic, data in out if topic.endswith("/expression")]
    assert [e.expression for e in expressions] == [Ros4hriMapper().expression_fields(p, "")["expression"] for p in preds]
    assert out[-1][0] == TRACKED_TOPIC and list(deserialize(store, MSG_TYPES["tracked"], out[-1][1]).ids) == []
    assert sorted(set(removed)) == sorted({face_id(p.stream, p.face) for p in preds})
    assert bridge.rejected == 0 and bridge.sent == len(out)


def preds_stream(messages: list) -> str:
    return next(m.stream for m in messages if isinstance(m, Prediction))


# --------------------------------------------------------------------------------------------
# the command where ROS 2 is missing
# --------------------------------------------------------------------------------------------
def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "realtime_fer", *args], capture_output=True, text=True, timeout=120, env=env, cwd=ROOT)


def test_bridge_without_rclpy_is_one_error_line() -> None:
    if importlib.util.find_spec("rclpy") is not None:
        pytest.skip("rclpy is installed here: the bridge would run")
    proc = _cli("bridge", "ros4hri", "--connect", "tcp://127.0.0.1:9")
    assert proc.returncode != 0
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ROS 2 is not available") and "rclpy" in lines[0], proc.stderr
    bad = _cli("bridge", "ros4hri", "--contempt-as", "grumpy")
    assert bad.returncode != 0 and len(bad.stderr.strip().splitlines()) == 1 and "contempt" in bad.stderr
