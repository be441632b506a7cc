"""Publishing over real ZeroMQ sockets (tcp on loopback with an OS-chosen port, and ipc)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Iterator

import msgpack
import numpy as np
import pytest
import zmq

from realtime_fer.labels import EMOTIONS
from realtime_fer.publish import (
    SCHEMA_VERSION,
    MessageError,
    Prediction,
    PublishError,
    Publisher,
    PublisherOptions,
    Status,
    Subscriber,
    decode,
    detect_encoding,
    encode,
    face_topic,
    faces_prefix,
    message_from_dict,
    status_topic,
    to_json_line,
)

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(params=["tcp", "ipc"])
def endpoint(request: pytest.FixtureRequest) -> Iterator[str]:
    if request.param == "tcp":
        yield "tcp://127.0.0.1:0"
    else:
        with tempfile.TemporaryDirectory(prefix="fer") as d:  # short path: ipc names are limited
            yield f"ipc://{d}/pub.ipc"


def _prediction(face: int = 1, frame: int = 7, **kw: Any) -> Prediction:
    probs = {e: float(p) for e, p in zip(EMOTIONS, np.linspace(0.05, 0.9, len(EMOTIONS)))}
    fields: dict[str, Any] = dict(
        stream="cam0",
        frame=frame,
        face=face,
        bbox=np.array([10.5, 20.0, 110.25, 140.0], dtype=np.float32),
        probabilities=probs,
        top="surprise",
        t_capture=time.time(),
        attributions={
            "surprise": {
                "top": [{"region": "upper lip", "weight": 0.4}, {"blendshape": "browInnerUp", "weight": 0.25}, {"region": "right mid brow", "weight": -0.1}],
                "output": 0.9,
                "baseline_output": 0.2,
                "sum": 0.7,
            }
        },
        landmarks=np.arange(478 * 3, dtype=np.float32).reshape(478, 3) / 10,
        image_size=(640, 360),
    )
    fields.update(kw)
    return Prediction(**fields)


def _sync(pub: Publisher, *subs: Subscriber, within: float = 5.0) -> None:
    """Publish a probe until every subscriber has its subscription in place (slow joiner)."""
    pending = list(subs)
    deadline = time.monotonic() + within
    while pending:
        assert time.monotonic() < deadline, "subscriber never connected"
        pub.status("started", detail="sync")
        pending = [s for s in pending if s.recv(timeout=0.02) is None]
    for s in subs:  # drain the remaining probes
        while s.recv(timeout=0.05) is not None:
            pass


# --------------------------------------------------------------------------------------------
# schema and encoding (no sockets)
# --------------------------------------------------------------------------------------------
def test_topics_end_with_a_delimiter() -> None:
    assert face_topic("cam0", 12) == "fer.cam0.face.12."
    assert status_topic("cam0") == "fer.cam0.status."
    assert faces_prefix("cam0") == "fer.cam0.face."
    assert not face_topic("cam0", 12).startswith(face_topic("cam0", 1))
    with pytest.raises(MessageError, match="stream id"):
        face_topic("cam.0", 1)


@pytest.mark.parametrize("encoding", ["msgpack", "json"])
def test_encode_decode_roundtrip(encoding: str) -> None:
    pred = _prediction()
    payload = encode(pred, encoding)  # type: ignore[arg-type]
    assert detect_encoding(payload) == encoding
    back = decode(payload)
    assert isinstance(back, Prediction) and back.schema == SCHEMA_VERSION
    assert back.t_publish is not None and back.t_publish >= pred.t_capture
    expected = pred.to_dict()
    got = back.to_dict()
    expected["t_publish"] = got["t_publish"]
    assert got == expected
    status = Status("cam0", "reconnecting", 1.5e9, fps=29.5, frames=100, dropped=3, detail="attempt 2 in 1.0 s")
    assert decode(encode(status, encoding), encoding) == status  # type: ignore[arg-type]
    assert json.loads(to_json_line(status))["event"] == "reconnecting"


def test_decoder_reads_schema_1_and_2_and_refuses_3() -> None:
    """Schema 2 changed what an attribution's ``top`` lists (regions and blendshapes instead of
    single landmarks); messages of schema 1 producers still decode, and say which they are."""
    assert SCHEMA_VERSION == 2
    old = _prediction().to_dict() | {"schema": 1, "t_publish": time.time()}
    old["attributions"]["surprise"]["top"] = [{"landmark": 13, "region": "upper lip", "weight": 0.4}]
    for version in (1, 2):
        back = decode(msgpack.packb(old | {"schema": version}))
        assert isinstance(back, Prediction) and back.schema == version
        assert back.attributions["surprise"]["top"] == old["attributions"]["surprise"]["top"]
    with pytest.raises(MessageError, match="schema version 3, newer than this decoder supports"):
        decode(msgpack.packb(old | {"schema": 3}))


@pytest.mark.parametrize(
    "payload, match",
    [
        (b"\xc1garbage", "not valid msgpack"),
        (b"{not json", "not valid json"),
        (msgpack.packb([1, 2, 3]), "expected a map"),
        (msgpack.packb({"schema": 1}), "'type' is missing"),
        (msgpack.packb({"type": "hello", "schema": 1}), "'type' is 'hello'"),
        (json.dumps({"type": "status", "schema": 99, "stream": "a", "event": "started", "timestamp": 1}).encode(), "newer than"),
        (json.dumps({"type": "status", "schema": 1, "stream": "a", "event": "exploded", "timestamp": 1}).encode(), "unknown event"),
        (json.dumps({"type": "status", "schema": 1, "stream": "a", "event": "started"}).encode(), "'timestamp' is missing"),
    ],
)
def test_malformed_payloads_raise_message_error(payload: bytes, match: str) -> None:
    with pytest.raises(MessageError, match=match):
        decode(payload)


@pytest.mark.parametrize(
    "field, value, match",
    [
        ("bbox", [1, 2, 3], "'bbox' must be a list of 4 numbers"),
        ("probabilities", {"happy": 1.7}, "probability in"),
        ("probabilities", {"happy": "high"}, "probability in"),
        ("frame", -1, "'frame' must be an integer >= 0"),
        ("face", "one", "'face' must be an integer"),
        ("t_capture", None, "'t_capture' is null"),
        ("landmarks", [[1, 2, 3], [4]], "'landmarks'"),
        ("attributions", [1], "'attributions' must be a map"),
    ],
)
def test_invalid_prediction_fields_are_named(field: str, value: Any, match: str) -> None:
    data = json.loads(to_json_line(_prediction()))
    data[field] = value
    with pytest.raises(MessageError, match=match):
        decode(json.dumps(data).encode())


def test_partial_flag_is_optional_and_checked() -> None:
    """``partial`` (windows in seconds) is an optional field: old messages without it decode
    with ``None``, a flagged prediction round-trips, a non-boolean is rejected."""
    pred = replace(_prediction(), partial=True)
    assert decode(encode(pred, "json")).partial is True  # type: ignore[union-attr]
    old = json.loads(encode(_prediction(), "json"))
    old.pop("partial")
    assert message_from_dict(old).partial is None  # type: ignore[union-attr]
    with pytest.raises(MessageError, match="partial"):
        message_from_dict({**old, "partial": "yes"})


def test_derived_fields_roundtrip_and_are_checked() -> None:
    """``action_units``, ``valence`` and ``arousal`` (0.8, schema still 1): computed by the
    describe functions they round-trip in both encodings, old messages without them decode with
    ``None``, and out-of-range values are refused with the field named."""
    from realtime_fer.describe import action_units, valence_arousal

    blend = np.linspace(0.0, 1.0, 52, dtype=np.float32)
    probs = _prediction().probabilities
    valence, arousal = valence_arousal(probs)
    pred = replace(_prediction(), action_units=action_units(blend), valence=valence, arousal=arousal)
    for encoding in ("msgpack", "json"):
        back = decode(encode(pred, encoding))  # type: ignore[arg-type]
        assert isinstance(back, Prediction)
        assert back.action_units == pytest.approx(pred.action_units) and len(back.action_units) == 23
        assert (back.valence, back.arousal) == pytest.approx((valence, arousal))
    old = json.loads(encode(_prediction(), "json"))
    for key in ("action_units", "valence", "arousal"):
        old.pop(key)
    assert (lambda m: (m.action_units, m.valence, m.arousal))(message_from_dict(old)) == (None, None, None)
    good = json.loads(encode(pred, "json"))
    for field, value, match in [
        ("valence", 1.5, r"'valence' must be a number in \[-1, 1\]"),
        ("arousal", "high", "'arousal' must be a finite number"),
        ("action_units", {"AU12": 2.0}, "'action_units' must be a map action unit -> intensity in"),
        ("action_units", [0.1], "'action_units' must be a map action unit"),
    ]:
        with pytest.raises(MessageError, match=match):
            message_from_dict({**good, field: value})


def test_unknown_fields_are_ignored_for_forward_compatibility() -> None:
    data = json.loads(to_json_line(_prediction()))
    data["some_future_field"] = {"x": 1}
    assert isinstance(decode(msgpack.packb(data)), Prediction)


# --------------------------------------------------------------------------------------------
# over sockets
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("encoding", ["msgpack", "json"])
def test_publisher_subscriber_roundtrip(endpoint: str, encoding: str) -> None:
    with Publisher(endpoint, stream_id="cam0", encoding=encoding) as pub:  # type: ignore[arg-type]
        assert not pub.endpoint.endswith(":0") and not pub.endpoint.endswith(":*")
        with Subscriber(pub.endpoint, topics=["fer.cam0."], timeout=2.0) as sub:
            _sync(pub, sub)
            pred = _prediction(face=3, frame=42)
            assert pub.publish(pred)
            assert pub.status("face_lost", face=3, fps=30.0, frames=43, dropped=1, detail="left the view")
            got_pred = sub.recv()
            got_status = sub.recv()
    assert isinstance(got_pred, Prediction) and isinstance(got_status, Status)
    assert got_pred.face == 3 and got_pred.frame == 42 and got_pred.top == "surprise"
    assert got_pred.probabilities == pytest.approx(pred.to_dict()["probabilities"])
    assert set(got_pred.probabilities) == set(EMOTIONS)
    assert got_pred.bbox == pytest.approx([10.5, 20.0, 110.25, 140.0])
    assert got_pred.attributions["surprise"]["top"][0]["region"] == "upper lip"
    assert np.allclose(np.array(got_pred.landmarks), pred.to_dict()["landmarks"])
    assert got_pred.image_size == [640, 360]
    assert got_pred.t_capture <= got_pred.t_publish <= time.time()  # type: ignore[operator]
    assert (got_status.event, got_status.face, got_status.frames, got_status.dropped) == ("face_lost", 3, 43, 1)
    assert got_status.detail == "left the view" and got_status.fps == 30.0


def test_raw_wire_format_is_plain_msgpack(endpoint: str) -> None:
    """What docs/messages.md promises: a two-frame message decodable without this package."""
    with Publisher(endpoint) as pub:
        ctx = zmq.Context.instance()
        raw = ctx.socket(zmq.SUB)
        raw.setsockopt(zmq.LINGER, 0)
        raw.setsockopt(zmq.SUBSCRIBE, b"fer.cam0.face.")
        raw.connect(pub.endpoint)
        try:
            deadline = time.monotonic() + 5
            parts = None
            while parts is None and time.monotonic() < deadline:
                pub.publish(_prediction(face=5))
                if raw.poll(20):
                    parts = raw.recv_multipart()
        finally:
            raw.close(linger=0)
    assert parts is not None and len(parts) == 2
    topic, payload = parts
    assert topic == b"fer.cam0.face.5."
    msg = msgpack.unpackb(payload)
    assert msg["type"] == "prediction" and msg["schema"] == SCHEMA_VERSION and msg["face"] == 5
    assert msg["top"] == "surprise" and len(msg["probabilities"]) == len(EMOTIONS)


def test_topic_prefix_isolation(endpoint: str) -> None:
    with Publisher(endpoint, stream_id="cam1") as pub:
        one = Subscriber(pub.endpoint, topics=[face_topic("cam1", 1)], timeout=0.3)
        all_faces = Subscriber(pub.endpoint, topics=[faces_prefix("cam1")], timeout=0.3)
        stream1 = Subscriber(pub.endpoint, topics=["fer.cam1."], timeout=0.3)
        try:
            pending = [one, all_faces, stream1]
            deadline = time.monotonic() + 5
            while pending:  # sync on a message all three match
                assert time.monotonic() < deadline
                pub.publish(_prediction(face=1, stream="cam1"))
                pending = [s for s in pending if s.recv(timeout=0.02) is None]
            for s in (one, all_faces, stream1):
                while s.recv(timeout=0.05) is not None:
                    pass
            for frame in range(5):
                pub.publish(_prediction(face=12, frame=frame, stream="cam1"))
                pub.publish(_prediction(face=1, frame=frame, stream="cam1"))
                pub.status("no_face")
                pub.publish(_prediction(face=1, frame=frame, stream="cam10"))
            got_one, got_all, got_stream1 = list(one), list(all_faces), list(stream1)
        finally:
            for s in (one, all_faces, stream1):
                s.close()
    assert [(m.face, m.frame) for m in got_one] == [(1, i) for i in range(5)]  # type: ignore[union-attr]
    assert sorted(m.face for m in got_all) == [1] * 5 + [12] * 5  # type: ignore[union-attr]
    assert all(isinstance(m, Prediction) and m.stream == "cam1" for m in got_all)
    # "fer.cam1." gets cam1's faces and status, but nothing of stream cam10
    assert len(got_stream1) == 15 and all(m.stream == "cam1" for m in got_stream1)


def test_unread_subscriber_does_not_stall_the_publisher(endpoint: str) -> None:
    n = 20_000
    with Publisher(endpoint, sndhwm=10) as pub:
        stuck = Subscriber(pub.endpoint, rcvhwm=10)
        healthy = Subscriber(pub.endpoint)
        try:
            _sync(pub, stuck, healthy)
            pred = _prediction(landmarks=None)
            payload_topic = pred.topic
            payload = encode(pred)
            sent_before = pub.sent
            got_healthy = 0
            t0 = time.monotonic()
            for i in range(n):
                pub.send_raw(payload_topic, payload)
                if i % 50 == 0:
                    while healthy.recv_raw(timeout=0) is not None:
                        got_healthy += 1
            elapsed = time.monotonic() - t0
            assert elapsed < 10, f"publishing {n} messages took {elapsed:.1f} s"
            assert pub.sent - sent_before == n and pub.dropped == 0  # default policy: drops are per subscriber
            # the healthy subscriber catches up, and then still gets new messages although the
            # stuck one's queue stays full
            while healthy.recv_raw(timeout=0.2) is not None:
                got_healthy += 1
            assert got_healthy > 0
            for _ in range(5):
                pub.status("ended", detail="flood done")
                time.sleep(0.01)
            last = healthy.wait_for(lambda m: isinstance(m, Status) and m.event == "ended", timeout=5)
            assert last is not None
            # the stuck subscriber lost most of the flood (bounded by its queues)
            got_stuck = 0
            while stuck.recv_raw(timeout=0.2) is not None:
                got_stuck += 1
            assert got_stuck < n
            t_close = time.monotonic()
        finally:
            stuck.close()
            healthy.close()
    assert time.monotonic() - t_close < 2  # close does not hang on undelivered messages


def test_count_drops_mode_reports_drops(endpoint: str) -> None:
    n = 20_000
    with Publisher(endpoint, sndhwm=10, count_drops=True) as pub:
        with Subscriber(pub.endpoint, rcvhwm=10) as stuck:
            _sync(pub, stuck)
            dropped_before = pub.dropped
            payload = encode(_prediction(landmarks=None))
            t0 = time.monotonic()
            results = [pub.send_raw("fer.cam0.face.1.", payload) for _ in range(n)]
            elapsed = time.monotonic() - t0
    assert elapsed < 10, f"publishing {n} messages took {elapsed:.1f} s"
    refused = results.count(False)
    assert refused > 0 and pub.dropped == dropped_before + refused


def test_subscriber_reports_malformed_messages(endpoint: str) -> None:
    with Publisher(endpoint) as pub, Subscriber(pub.endpoint, timeout=2) as sub:
        _sync(pub, sub)
        pub.send_raw("fer.cam0.face.1.", b"\xc1 definitely not msgpack")
        pub.status("started")
        with pytest.raises(MessageError, match="fer.cam0.face.1."):
            sub.recv()
        after = sub.recv()  # the subscriber keeps working
    assert isinstance(after, Status)


def test_bind_errors_are_publish_errors() -> None:
    with pytest.raises(PublishError, match="cannot bind"):
        Publisher("not-an-endpoint")
    with Publisher("tcp://127.0.0.1:0") as first:
        with pytest.raises(PublishError, match="cannot bind"):
            Publisher(first.endpoint)
    with pytest.raises(PublishError, match="cannot connect"):
        Subscriber("tcp://127.0.0.1:notaport")
    with pytest.raises(MessageError, match="stream id"):
        PublisherOptions(stream_id="has space")
    with pytest.raises(MessageError, match="encoding"):
        PublisherOptions(encoding="xml")  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------
# realtime-fer listen
# --------------------------------------------------------------------------------------------
def _cli(*args: str) -> list[str]:
    """The CLI as a user runs it. While other commands of COMMANDS are not written yet (they are
    built by other sessions), run main() with only the commands whose modules exist."""
    from realtime_fer import cli

    if all(importlib.util.find_spec(f"realtime_fer.commands.{m}") for m, _ in cli.COMMANDS.values()):
        return [sys.executable, "-m", "realtime_fer", *args]
    code = (
        "import sys, importlib.util as u; from realtime_fer import cli; "
        "cli.COMMANDS = {k: v for k, v in cli.COMMANDS.items() if u.find_spec('realtime_fer.commands.' + v[0])}; "
        "sys.exit(cli.main())"
    )
    return [sys.executable, "-c", code, *args]


def _publish_until(proc: subprocess.Popen[str], pub: Publisher, make: Any) -> None:
    """Keep publishing (the subprocess subscribes at some point) until it exits."""
    frame = 0
    deadline = time.monotonic() + 30
    while proc.poll() is None and time.monotonic() < deadline:
        pub.publish(make(frame))
        frame += 1
        time.sleep(0.02)


def _listen_while_publishing(pub: Publisher, args: list[str], make) -> tuple[int, str, str]:  # noqa: ANN001
    """Run ``realtime-fer listen ARGS`` while a thread publishes ``make(i)`` messages until it
    exits; returns its exit code, stdout and stderr (the process is always reaped)."""
    proc = subprocess.Popen(_cli(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        feeder = threading.Thread(target=_publish_until, args=(proc, pub, make))
        feeder.start()
        out, err = proc.communicate(timeout=30)
        feeder.join(timeout=5)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return proc.returncode, out, err


@pytest.mark.parametrize("as_json", [False, True])
def test_listen_prints_messages(as_json: bool) -> None:
    with Publisher("tcp://127.0.0.1:0", encoding="json" if as_json else "msgpack") as pub:
        args = ["listen", "--connect", pub.endpoint, "--count", "3", "--timeout", "20"] + (["--json"] if as_json else [])
        make = lambda i: _prediction(face=2, frame=i, landmarks=None, valence=0.25, arousal=-0.5, action_units={"AU12": 0.8, "AU6": 0.1, "AU4": 0.0, "AU1": 0.3})  # noqa: E731
        returncode, out, err = _listen_while_publishing(pub, args, make)
    assert returncode == 0, err
    lines = out.strip().splitlines()
    assert len(lines) == 3
    if as_json:
        msgs = [json.loads(line) for line in lines]
        assert all(m["type"] == "prediction" and m["face"] == 2 for m in msgs)
    else:
        assert all("face 2" in line and "SURPRISE" in line for line in lines), lines
        assert all("| V +0.25 A -0.50 | AU12 0.80 AU1 0.30 AU6 0.10 |" in line for line in lines), lines


def test_listen_connects_to_several_publishers() -> None:
    """``--connect`` repeated: one listener hears two recognizers (two hosts, in real life)."""
    with Publisher("tcp://127.0.0.1:0", stream_id="door") as a, Publisher("tcp://127.0.0.1:0", stream_id="desk") as b:
        args = ["listen", "--connect", a.endpoint, "--connect", b.endpoint, "--json", "--count", "40", "--timeout", "20"]
        proc = subprocess.Popen(_cli(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
        try:
            feeders = [threading.Thread(target=_publish_until, args=(proc, pub, lambda i, s=sid: _prediction(stream=s, frame=i, landmarks=None)))
                       for pub, sid in ((a, "door"), (b, "desk"))]
            for f in feeders:
                f.start()
            out, err = proc.communicate(timeout=30)
            for f in feeders:
                f.join(timeout=5)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert proc.returncode == 0, err
    streams = {json.loads(line)["stream"] for line in out.strip().splitlines()}
    assert streams == {"door", "desk"}


def test_listen_status_and_topic_filter() -> None:
    with Publisher("tcp://127.0.0.1:0") as pub:
        args = ["listen", "--connect", pub.endpoint, "--topic", status_topic("cam0"), "--count", "2", "--timeout", "20"]
        def make(i: int) -> Prediction | Status:
            return _prediction(landmarks=None) if i % 2 else Status("cam0", "source_lost", time.time(), detail="camera unplugged")

        returncode, out, err = _listen_while_publishing(pub, args, make)
    assert returncode == 0, err
    lines = out.strip().splitlines()
    assert len(lines) == 2 and all("[source_lost]" in line and "camera unplugged" in line for line in lines)


def test_listen_bad_endpoint_is_a_clean_error() -> None:
    proc = subprocess.run(_cli("listen", "--connect", "tcp://127.0.0.1:notaport", "--timeout", "1"), capture_output=True, text=True, timeout=30, cwd=ROOT)
    assert proc.returncode == 2
    assert proc.stderr.startswith("error:") and "cannot connect" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_listen_timeout_without_publisher() -> None:
    with tempfile.TemporaryDirectory(prefix="fer") as d:
        proc = subprocess.run(_cli("listen", "--connect", f"ipc://{d}/nobody", "--timeout", "0.5"), capture_output=True, text=True, timeout=30, cwd=ROOT)
    assert proc.returncode == 1
    assert "no message" in proc.stderr and "Traceback" not in proc.stderr


def test_publisher_options_load_from_config() -> None:
    from realtime_fer.config_io import from_dict
    from realtime_fer.errors import ConfigError

    opts = from_dict(PublisherOptions, {"encoding": "json", "stream_id": "lobby-2", "sndhwm": 5}, "publish")
    with Publisher.from_options(PublisherOptions(**{**opts.__dict__, "endpoint": "tcp://127.0.0.1:0"})) as pub:
        assert pub.encoding == "json" and pub.stream_id == "lobby-2"
    with pytest.raises(ConfigError, match="stream id"):
        from_dict(PublisherOptions, {"stream_id": "a.b"}, "publish")
