"""Fuzzing what reaches a real :class:`~realtime_fer.publish.Subscriber` over a real ZeroMQ PUB socket.

Malformed messages -- not msgpack, broken JSON, wrong schema versions, wrong types, missing
fields, huge strings, deep nesting, impossible times, a payload on another message's topic,
one or three frames instead of two -- must each be refused with a
:class:`~realtime_fer.publish.MessageError` and counted in ``Subscriber.rejected``; the
subscriber then goes on with the next message. A message that is accepted must print the way
``listen`` prints it (summary and ``--json``). Finally the real ``realtime-fer listen`` is fed a
batch of such messages and must keep running to its ``--count``.
"""

from __future__ import annotations

import json
import math
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterator

import msgpack
import pytest
import zmq
from hypothesis import given
from hypothesis import strategies as st

from realtime_fer.commands.listen import format_message
from realtime_fer.publish import MessageError, Prediction, Status, Subscriber, encode, to_json_line
from test_fuzz_common import fuzz, fuzz_report, tried  # noqa: F401 - fixture

ROOT = Path(__file__).resolve().parents[1]
SENTINEL_TOPIC = b"fer.fuzz.status."
pytestmark = pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisWarning")  # the 128 KiB strings' reprs


def _valid_prediction() -> dict[str, Any]:
    p = Prediction(
        stream="cam0", frame=3, face=1, bbox=[1.0, 2.0, 30.0, 40.0], probabilities={"happy": 0.8, "sad": 0.1}, top="happy",
        t_capture=1.7e9, t_publish=1.7e9 + 0.01, attributions={"happy": {"landmarks": [1, 2], "scores": [0.5, 0.25]}},
        landmarks=[[1.0, 2.0, 0.5]] * 3, image_size=[640, 360], smoothed={"happy": 0.7}, blendshapes={"jawOpen": 0.2}, adapted=False,
        action_units={"AU12": 0.6, "AU26": 0.2}, valence=0.5, arousal=-0.2,
    )
    return p.to_dict()


def _valid_status() -> dict[str, Any]:
    return Status("cam0", "face_found", 1.7e9, fps=25.0, frames=10, dropped=0, detail="x", face=1).to_dict()


def _topic_of(d: dict[str, Any]) -> bytes:
    return (f"fer.cam0.face.{d.get('face')}." if d.get("type") == "prediction" else "fer.cam0.status.").encode()


class Wire:
    """A raw PUB socket (sends any frames) and a real Subscriber connected to it."""

    def __init__(self) -> None:
        ctx = zmq.Context.instance()
        self.pub = ctx.socket(zmq.PUB)
        self.pub.setsockopt(zmq.LINGER, 0)
        self.pub.bind("tcp://127.0.0.1:0")
        endpoint = self.pub.getsockopt(zmq.LAST_ENDPOINT).decode()
        self.sub = Subscriber(endpoint, topics=["fer."], timeout=5.0)
        self.endpoint = endpoint
        self.seq = 0
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # the slow joiner: wait until the subscription is live
            self.send_sentinel()
            if self.sub.recv_raw(timeout=0.1) is not None:
                break
        else:
            raise AssertionError("the subscriber never connected")
        while self.sub.recv_raw(timeout=0.2) is not None:
            pass

    def send_sentinel(self) -> None:
        self.seq += 1
        status = Status("fuzz", "started", time.time(), frames=self.seq)
        self.pub.send_multipart([SENTINEL_TOPIC, encode(status)])

    def deliver(self, frames: list[bytes]) -> tuple[list[Any], int]:
        """Send ``frames`` then a sentinel; receive up to the sentinel. Returns (what recv
        returned or raised for the fuzzed message, rejections counted)."""
        before = self.sub.rejected
        self.pub.send_multipart(frames)
        self.send_sentinel()
        outcomes: list[Any] = []
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                msg = self.sub.recv(timeout=5.0)
            except MessageError as exc:
                outcomes.append(exc)
                continue
            assert msg is not None, "the subscriber stopped receiving after a malformed message"
            if isinstance(msg, Status) and msg.stream == "fuzz" and msg.frames == self.seq:
                return outcomes, self.sub.rejected - before
            outcomes.append(msg)
        raise AssertionError("the sentinel never arrived")

    def close(self) -> None:
        self.sub.close()
        self.pub.close(linger=0)


@pytest.fixture(scope="module")
def wire() -> Iterator[Wire]:
    w = Wire()
    yield w
    w.close()


scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**63), 2**64 - 1), st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=20), st.binary(max_size=10),
)
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=6), inner, max_size=4)), max_leaves=10)
HUGE = "x" * (1 << 17)


@st.composite
def malformed(draw: st.DrawFn) -> tuple[str, list[bytes], bool]:
    """(kind, frames, must_be_rejected)."""
    kind = draw(st.sampled_from(["bytes", "msgpack_any", "json_text", "schema", "field_value", "missing", "huge", "deep", "time", "topic", "frames", "valid"]))
    base = draw(st.sampled_from([_valid_prediction, _valid_status]))()
    topic = _topic_of(base)
    pack = draw(st.sampled_from(["msgpack", "json"]))

    def payload(d: Any) -> bytes:
        if pack == "json":
            return json.dumps(d, default=repr).encode()  # NaN/inf become the non-standard literals
        return msgpack.packb(d, use_bin_type=True)

    if kind == "bytes":
        raw = draw(st.binary(max_size=200))
        return kind, [topic, raw], True  # random bytes are never a valid message
    if kind == "msgpack_any":
        return kind, [topic, msgpack.packb(draw(values), use_bin_type=True)], True  # never a valid message map
    if kind == "json_text":
        text = draw(st.sampled_from(["{", "{}", '{"type": "status"}', "{" * 5000, '{"type":"prediction","schema":1,' * 3, "{\"a\": NaN}"]))
        return kind, [topic, text.encode()], True
    if kind == "schema":
        base["schema"] = draw(st.sampled_from([0, 3, 99, -1, "1", 1.0, True, None, 2**40, [1]]))
        return kind, [topic, payload(base)], True
    if kind == "field_value":
        name = draw(st.sampled_from(sorted(k for k in base if k not in ("type",))))
        base[name] = draw(values)
        return kind, [topic, payload(base)], False  # may still be valid (e.g. an optional null)
    if kind == "missing":
        required = ["schema", "stream", "frame", "face", "t_capture", "bbox", "probabilities", "top"] if base["type"] == "prediction" else ["schema", "stream", "event", "timestamp"]
        del base[draw(st.sampled_from(required))]
        return kind, [topic, payload(base)], True
    if kind == "huge":
        name = draw(st.sampled_from(["stream", "detail", "event"] if base["type"] == "status" else ["stream", "top"]))
        base[name] = HUGE
        return kind, [topic, payload(base)], True
    if kind == "deep":
        nested: Any = 1.0
        for _ in range(draw(st.integers(17, 200))):
            nested = [nested]
        if base["type"] == "prediction":
            base["attributions"] = {"happy": nested}
        else:
            base["detail"] = nested
        return kind, [topic, payload(base)], True
    if kind == "time":
        name = "t_capture" if base["type"] == "prediction" else "timestamp"
        base[name] = draw(st.sampled_from([-1.0, 1e20, 1e300, math.inf, -math.inf, math.nan]))
        return kind, [topic, payload(base)], True
    if kind == "topic":
        wrong = draw(st.sampled_from([b"fer.cam0.face.2.", b"fer.cam0.status.", b"fer.other.face.1.", b"fer.", b"fer.\xff\xfe.", b"fer.cam0.face.1"]))
        if wrong == topic:
            wrong = b"fer.x."
        return kind, [wrong, payload(base)], True
    if kind == "frames":
        n = draw(st.sampled_from([1, 3, 5]))
        return kind, ([topic] + [payload(base)] * (n - 1)) if n > 1 else [topic], True
    return kind, [topic, payload(base)], False


@fuzz(1000)
@given(case=malformed())
def test_malformed_messages_are_refused_counted_and_skipped(wire: Wire, case: tuple[str, list[bytes], bool]) -> None:
    kind, frames, must_reject = case
    outcomes, rejected = wire.deliver(frames)
    assert len(outcomes) == 1, (kind, outcomes)
    got = outcomes[0]
    errors = [o for o in outcomes if isinstance(o, MessageError)]
    assert rejected == len(errors), "Subscriber.rejected must count every refused message"
    for o in outcomes:
        assert isinstance(o, (MessageError, Prediction, Status)), type(o)
        if isinstance(o, MessageError):
            assert str(o) and "\n" not in str(o) and len(str(o)) < 1000, str(o)[:300]
        else:  # accepted: it must print the way `listen` prints it
            format_message(o)
            json.loads(to_json_line(o))
    if must_reject:
        assert isinstance(got, MessageError), (kind, got)
    if kind == "valid":
        assert isinstance(got, (Prediction, Status)), got
    tried("subscriber payloads", "rejected" if isinstance(got, MessageError) else "accepted")


def test_listen_keeps_running_through_malformed_messages(wire: Wire) -> None:
    """The real ``listen`` command gets 60 malformed messages before 3 valid ones: it warns
    about each malformed one and exits 0 after its ``--count 3``."""
    ctx = zmq.Context.instance()
    pub = ctx.socket(zmq.PUB)
    pub.setsockopt(zmq.LINGER, 0)
    pub.bind("tcp://127.0.0.1:0")
    endpoint = pub.getsockopt(zmq.LAST_ENDPOINT).decode()
    proc = subprocess.Popen([sys.executable, "-m", "realtime_fer", "listen", "--connect", endpoint, "--count", "3", "--json"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        rng = random.Random(7)
        bad: list[list[bytes]] = []
        for i in range(60):
            d = _valid_prediction() if i % 2 else _valid_status()
            choice = i % 6
            if choice == 0:
                bad.append([_topic_of(d), rng.randbytes(rng.randint(0, 64))])
            elif choice == 1:
                d["schema"] = 3  # newer than the decoder (2)
                bad.append([_topic_of(d), msgpack.packb(d)])
            elif choice == 2:
                d["t_capture" if d["type"] == "prediction" else "timestamp"] = 1e300
                bad.append([_topic_of(d), msgpack.packb(d)])
            elif choice == 3:
                d["stream"] = HUGE
                bad.append([_topic_of(d), msgpack.packb(d)])
            elif choice == 4:
                bad.append([b"fer.cam0.face.9.", msgpack.packb(d)])
            else:
                bad.append([_topic_of(d)])
        good = [[_topic_of(_valid_status()), msgpack.packb(_valid_status())]]
        # the slow joiner: repeat the whole batch until listen has printed its 3 valid messages
        deadline = time.monotonic() + 60
        while proc.poll() is None and time.monotonic() < deadline:
            for frames in bad + good:
                pub.send_multipart(frames)
            time.sleep(0.2)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        pub.close(linger=0)
    assert proc.returncode == 0, (proc.returncode, err[-2000:])
    assert "Traceback" not in err
    lines = out.splitlines()
    assert len(lines) == 3 and all(json.loads(line)["type"] == "status" for line in lines), out
    warnings = [line for line in err.splitlines() if line.startswith("warning: ")]
    assert len(warnings) >= 50, err[-2000:]  # all of the first batch at least (before the valid ones)
    for _ in warnings:
        tried("listen (subprocess) payloads", "rejected")
