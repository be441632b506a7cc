"""Several sources in one ``realtime-fer run``: one endpoint, topics ``fer.<stream>.``, a status
per stream, a failing stream among several, duplicate ids; the CPU plan for N streams; the
publisher hub; a subscriber on several endpoints."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path

import pytest

from realtime_fer.publish import Prediction, Status, Subscriber
from realtime_fer.publish.schema import decode
from runtime_helpers import free_port, model_cli_args, require_bundle, video, wait_until
from test_capture import MjpegServer
from test_cli_run import _listening

ROOT = Path(__file__).resolve().parents[1]


def _cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "realtime_fer", *args], capture_output=True, text=True, cwd=ROOT, timeout=timeout)


def _error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error: ")]


class _Collector:
    """A real subscriber in a thread, recording every message with its topic."""

    def __init__(self, endpoint: str | list[str], topics: list[str]) -> None:
        self.sub = Subscriber(endpoint, topics=topics, timeout=0.1)
        self.messages: list[tuple[str, object]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            raw = self.sub.recv_raw()
            if raw is not None:
                self.messages.append((raw[0], decode(raw[1])))

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.sub.close()

    def by_stream(self) -> dict[str, list[tuple[str, object]]]:
        out: dict[str, list[tuple[str, object]]] = defaultdict(list)
        for topic, msg in self.messages:
            out[msg.stream].append((topic, msg))  # type: ignore[attr-defined]
        return out

    def events(self, stream: str) -> list[Status]:
        return [m for _, m in self.by_stream()[stream] if isinstance(m, Status)]

    def predictions(self, stream: str) -> list[Prediction]:
        return [m for _, m in self.by_stream()[stream] if isinstance(m, Prediction)]


def _collect(endpoint: str, topics: list[str], *args: str, timeout: float = 120) -> tuple[subprocess.CompletedProcess[str], _Collector]:
    col = _Collector(endpoint, topics)
    try:
        r = _cli("run", "--publish", endpoint, *args, *model_cli_args(), timeout=timeout)
        time.sleep(0.3)  # the last messages in flight
    finally:
        col.close()
    return r, col


# --------------------------------------------------------------------------------------------
# end to end, real runs
# --------------------------------------------------------------------------------------------
def test_two_sources_publish_on_their_own_topics_with_their_own_status(shared_data: Path) -> None:
    require_bundle()
    a = video(shared_data, "single_face.mp4")
    b = shared_data / "video" / "mead" / "neutral.mp4"
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    r, col = _collect(endpoint, ["fer.a.", "fer.b."], "--source", f"a={a}", "--source", f"b={b}")
    assert r.returncode == 0, r.stderr[-3000:]
    assert "Traceback" not in r.stderr + r.stdout
    streams = col.by_stream()
    assert set(streams) == {"a", "b"}
    for sid, frames in (("a", 72), ("b", 69)):
        for topic, msg in streams[sid]:
            assert topic.startswith(f"fer.{sid}."), (topic, sid)
            assert topic == msg.topic  # type: ignore[attr-defined]
        events = [s.event for s in col.events(sid)]
        assert events[0] == "started" and events[-1] == "ended", events
        assert events.count("started") == 1 and events.count("ended") == 1
        ended = col.events(sid)[-1]
        assert ended.detail == "end of file" and ended.frames == frames
        preds = col.predictions(sid)
        assert preds and all(p.stream == sid for p in preds)
        assert all(set(p.probabilities) == set(preds[0].probabilities) for p in preds)
    # one summary block per stream, each with its own frame count
    assert "stream a (" in r.stdout and "stream b (" in r.stdout
    assert "72 frames" in r.stdout and "69 frames" in r.stdout


def test_a_bad_source_among_several_gets_an_error_status_and_the_good_one_goes_on(shared_data: Path, tmp_path: Path) -> None:
    require_bundle()
    good = video(shared_data, "single_face.mp4")
    missing = tmp_path / "nope.mp4"
    bad_url = f"http://127.0.0.1:{free_port()}/feed.mjpg"
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    r, col = _collect(endpoint, ["fer."], "--source", f"good={good}", "--source", f"gone={missing}", "--source", f"url={bad_url}")
    assert r.returncode == 2, (r.returncode, r.stderr[-3000:])
    assert "Traceback" not in r.stderr + r.stdout
    errors = _error_lines(r.stderr)
    assert len(errors) == 1, r.stderr[-3000:]
    assert "2 of 3 streams failed" in errors[0] and "gone: video file not found" in errors[0] and "url: cannot open stream" in errors[0]
    # the bad ones: one ended status each, with the error, on their own topic
    for sid, fragment in (("gone", "not found"), ("url", "cannot open stream")):
        statuses = col.events(sid)
        assert [s.event for s in statuses] == ["ended"], statuses
        assert statuses[0].detail.startswith("error: ") and fragment in statuses[0].detail
        assert not col.predictions(sid)
    # the good one ran to its end
    assert len(col.predictions("good")) > 0
    assert [s.event for s in col.events("good")][-1] == "ended" and col.events("good")[-1].detail == "end of file"
    assert "stream good (" in r.stdout and "72 frames" in r.stdout and "stream gone (" in r.stdout and "did not start" in r.stdout


def test_every_source_bad_is_one_clear_error(tmp_path: Path) -> None:
    require_bundle()
    r = _cli("run", "--source", str(tmp_path / "x.mp4"), "--source", str(tmp_path / "y.mp4"), "--publish", "tcp://127.0.0.1:0", *model_cli_args())
    assert r.returncode == 2 and "Traceback" not in r.stderr
    errors = _error_lines(r.stderr)
    assert len(errors) == 1 and "no stream could be opened" in errors[0] and "cam0:" in errors[0] and "cam1:" in errors[0], r.stderr


def test_duplicate_ids_and_conflicting_options_are_clear_errors(tmp_path: Path, shared_data: Path) -> None:
    clip = str(video(shared_data, "single_face.mp4"))
    cases = [
        (["--source", f"a={clip}", "--source", f"a={clip}"], "duplicate stream id 'a'"),
        (["--source", clip, "--source", clip, "--stream-id", "x"], "--stream-id names a single stream"),
        (["--source", clip, "--source", clip, "--show"], "--show shows one stream"),
        (["--source", "bad.id=x.mp4", "--source", clip], "video file not found"),  # not an id: a file name
    ]
    dup = tmp_path / "dup.yaml"
    dup.write_text(f"streams:\n  - {{id: a, source: {clip}}}\n  - {{id: a, source: {clip}}}\n")
    cases.append((["--config", str(dup)], "duplicate stream id 'a'"))
    typo = tmp_path / "typo.yaml"
    typo.write_text(f"streams:\n  - {{id: a, source: {clip}, capture: {{realtim: true}}}}\n")
    cases.append((["--config", str(typo)], "unknown key(s) 'realtim'"))
    for args, fragment in cases:
        r = _cli("run", "--publish", "tcp://127.0.0.1:0", *args, *model_cli_args(), timeout=120)
        assert r.returncode == 2, (args, r.returncode, r.stderr[-2000:])
        assert "Traceback" not in r.stderr + r.stdout
        errors = _error_lines(r.stderr)
        assert len(errors) == 1 and fragment in errors[0], (args, r.stderr[-2000:])


def test_a_live_stream_that_drops_reports_on_its_own_topic_and_the_file_goes_on(shared_data: Path, tmp_path: Path) -> None:
    """Config ``streams:`` with per-stream capture settings: the camera stream is lost and gives
    up after one reconnect; the file (paced at its frame rate) keeps publishing."""
    require_bundle()
    server = MjpegServer(video(shared_data, "single_face.mp4"), free_port(), tmp_path / "ffmpeg.log")
    server.start()
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    clip = shared_data / "video" / "mead" / "fear.mp4"  # 218 frames at 25 fps: 8.7 s paced
    cfg = tmp_path / "streams.yaml"
    cfg.write_text(
        "streams:\n"
        f"  - {{id: file, source: {clip}, capture: {{realtime: true}}}}\n"
        f"  - {{id: cam, source: '{server.url}', capture: {{read_timeout_s: 1.0, max_reconnect_attempts: 1, reconnect_initial_s: 0.2}}}}\n"
    )
    col = _Collector(endpoint, ["fer."])
    proc = None
    try:
        wait_until(lambda: _listening(server.port), 10, "the MJPEG server to listen")
        cmd = [sys.executable, "-m", "realtime_fer", "run", "--config", str(cfg), "--publish", endpoint, *model_cli_args()]
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        wait_until(lambda: col.predictions("cam") and col.predictions("file"), 60, "predictions from both streams")
        server.kill()
        wait_until(lambda: any(s.event == "ended" for s in col.events("cam")), 30, "the lost camera stream to end")
        n_file = len(col.predictions("file"))
        wait_until(lambda: len(col.predictions("file")) > n_file + 5, 20, "the file stream to go on after the camera was lost")
        out, err = proc.communicate(timeout=60)
        time.sleep(0.3)
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(5)
        server.kill()
        col.close()
    assert proc.returncode == 2, err[-3000:]
    assert "Traceback" not in err + out
    cam = [s.event for s in col.events("cam")]
    assert "source_lost" in cam and "reconnecting" in cam and cam[-1] == "ended", cam
    assert "gave up reconnecting" in col.events("cam")[-1].detail
    file_events = col.events("file")
    assert file_events[-1].event == "ended" and file_events[-1].detail == "end of file" and file_events[-1].frames == 218
    assert not any(s.event in ("source_lost", "reconnecting") for s in file_events)
    errors = _error_lines(err)
    assert len(errors) == 1 and "1 of 2 streams failed" in errors[0] and "cam: gave up reconnecting" in errors[0], err[-2000:]


def test_sigint_stops_every_stream_cleanly(shared_data: Path) -> None:
    require_bundle()
    a = shared_data / "video" / "mead" / "surprise.mp4"
    b = shared_data / "video" / "mead" / "fear.mp4"
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    col = _Collector(endpoint, ["fer."])
    proc = None
    try:
        cmd = [sys.executable, "-m", "realtime_fer", "run", "--source", str(a), "--source", str(b), "--realtime", "--publish", endpoint, *model_cli_args()]
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        wait_until(lambda: col.predictions("cam0") and col.predictions("cam1"), 60, "predictions from both streams")
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
        time.sleep(0.3)
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(5)
        col.close()
    assert proc.returncode == 0, err[-3000:]
    assert "Traceback" not in err + out
    for sid in ("cam0", "cam1"):
        ended = col.events(sid)[-1]
        assert ended.event == "ended" and ended.detail == "stopped" and ended.frames > 0
        assert ended.frames < 218  # stopped before the end of either clip (paced: 8.7 s and 12.4 s)
    assert out.count("ended: stopped") == 2


def test_duration_stops_every_stream(shared_data: Path) -> None:
    require_bundle()
    a = shared_data / "video" / "mead" / "surprise.mp4"  # 12.4 s paced
    b = video(shared_data, "WolfgangLanger_Pexels.mp4")  # 19.7 s paced
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    t0 = time.monotonic()
    r, col = _collect(endpoint, ["fer."], "--source", f"x={a}", "--source", f"y={b}", "--realtime", "--duration", "3")
    assert r.returncode == 0, r.stderr[-3000:]
    assert time.monotonic() - t0 < 12 + 10  # start-up, then 3 s, not the clips' 12-20 s
    for sid in ("x", "y"):
        ended = col.events(sid)[-1]
        assert ended.event == "ended" and ended.detail == "stopped" and 0 < ended.frames < 150, ended
    assert r.stdout.count("ended: stopped") == 2


# --------------------------------------------------------------------------------------------
# the parts
# --------------------------------------------------------------------------------------------
def test_source_arguments_give_ids() -> None:
    from realtime_fer.errors import ConfigError
    from realtime_fer.pipeline.multistream import parse_source_arg, streams_from_sources

    assert parse_source_arg("front=rtsp://cam/1") == ("front", "rtsp://cam/1")
    assert parse_source_arg("http://host/feed?x=1") == (None, "http://host/feed?x=1")
    assert parse_source_arg("./a=b.mp4") == (None, "./a=b.mp4")
    assert parse_source_arg("0") == (None, "0")
    assert [(s.id, s.source) for s in streams_from_sources(["x.mp4"], "door")] == [("door", "x.mp4")]
    assert [(s.id, s.source) for s in streams_from_sources(["x.mp4", "back=1", "0"])] == [("cam0", "x.mp4"), ("back", "1"), ("cam2", "0")]
    with pytest.raises(ConfigError, match="duplicate stream id 'cam1'"):
        streams_from_sources(["x.mp4", "y.mp4", "cam1=z.mp4"])


def test_stream_config_overrides_only_its_capture_keys() -> None:
    from realtime_fer.config_io import from_dict
    from realtime_fer.pipeline.config import RuntimeConfig
    from realtime_fer.pipeline.multistream import stream_config

    config = from_dict(RuntimeConfig, {"capture": {"read_timeout_s": 3.0}, "streams": [{"id": "a", "source": "x.mp4", "capture": {"realtime": True}}, {"id": "b", "source": 0}]})
    a, b = (stream_config(config, s) for s in config.streams)
    assert a.publish.stream_id == "a" and a.capture.realtime and a.capture.read_timeout_s == 3.0
    assert b.publish.stream_id == "b" and not b.capture.realtime and b.capture == config.capture
    assert config.streams[1].source == 0 and a.streams == []


def test_cpu_plan_for_n_streams() -> None:
    from realtime_fer.affinity import CpuPlan, plan_streams

    one = plan_streams(1, cpus=[0, 1])
    assert one == [CpuPlan(frozenset({0}), frozenset({1}))]  # the single-stream plan
    four = plan_streams(4, cpus=[0, 1])
    assert [sorted(p.landmarker) for p in four] == [[0], [1], [0], [1]]  # spread, two per core
    assert all(p.others == {0, 1} for p in four)
    eight = plan_streams(3, cpus=range(8))
    assert [sorted(p.landmarker) for p in eight] == [[0], [1], [2]] and all(p.others == set(range(3, 8)) for p in eight)
    assert plan_streams(2, cpus=[0]) == [None, None] and plan_streams(2, enabled=False, cpus=[0, 1]) == [None, None]


def test_reserved_plans_follow_the_expected_streams() -> None:
    from realtime_fer.affinity import expect_streams, plan_streams, release_plan, reserve_plan, usable_cpus

    if len(usable_cpus()) < 2:
        pytest.skip(f"pinning needs 2+ usable CPUs; this process may use {len(usable_cpus())}")
    with expect_streams(3):
        plans = [reserve_plan() for _ in range(3)]
    try:
        assert plans == plan_streams(3)
        assert len({next(iter(p.landmarker)) for p in plans}) == min(3, len(usable_cpus()))
    finally:
        for p in plans:
            release_plan(p)
    single = reserve_plan()
    try:
        assert single == plan_streams(1)[0]  # every slot was given back
    finally:
        release_plan(single)


def test_publisher_hub_sends_every_stream_from_one_thread_and_counts_drops() -> None:
    from realtime_fer.pipeline.multistream import PublisherHub
    from realtime_fer.publish.publisher import Publisher

    hub = PublisherHub(Publisher("tcp://127.0.0.1:0", sndhwm=1000))  # 600 at once: above the default high-water mark
    col = _Collector(hub.endpoint, ["fer."])
    try:
        time.sleep(0.5)  # the subscription reaches the publisher
        hub.start()
        sinks = {sid: hub.sink(sid) for sid in ("a", "b", "c")}

        def feed(sid: str) -> None:
            for i in range(200):
                sinks[sid].send(Status(stream=sid, event="no_face", timestamp=time.time(), frames=i))

        threads = [threading.Thread(target=feed, args=(sid,)) for sid in sinks]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        hub.close()
        wait_until(lambda: len(col.messages) >= 600, 5, "600 messages")
    finally:
        hub.close()
        col.close()
    assert hub.sent == 600 and hub.publisher.closed
    for sid in ("a", "b", "c"):
        topics = {t for t, _ in col.by_stream()[sid]}
        assert topics == {f"fer.{sid}.status."}
        assert [m.frames for m in col.events(sid)] == list(range(200))  # each stream in its order

    full = PublisherHub(Publisher("tcp://127.0.0.1:0"), queue_size=2)  # not started: the queue fills
    try:
        sink = full.sink("x")
        for i in range(5):
            sink.send(Status(stream="x", event="no_face", timestamp=time.time(), frames=i))
        assert full.dropped == {"x": 3}
    finally:
        full.close()


def test_one_subscriber_on_several_endpoints() -> None:
    """Beyond one host: each host publishes on its own endpoint, one subscriber connects to all."""
    from realtime_fer.publish.publisher import Publisher

    p1, p2 = Publisher("tcp://127.0.0.1:0", stream_id="host1"), Publisher("tcp://127.0.0.1:0", stream_id="host2")
    try:
        with Subscriber([p1.endpoint, p2.endpoint], topics=["fer."], timeout=0.2) as sub:
            assert sub.endpoints == [p1.endpoint, p2.endpoint]
            seen: set[str] = set()
            deadline = time.monotonic() + 10
            while seen != {"host1", "host2"} and time.monotonic() < deadline:
                p1.status("no_face")
                p2.status("no_face")
                msg = sub.recv()
                while msg is not None:
                    seen.add(msg.stream)  # type: ignore[union-attr]
                    msg = sub.recv(0.05)
            assert seen == {"host1", "host2"}
    finally:
        p1.close()
        p2.close()


def test_bench_streams_reports_each_stream(shared_data: Path, tmp_path: Path) -> None:
    import json

    from realtime_fer.affinity import plan_streams

    require_bundle()
    out = tmp_path / "b.json"
    r = _cli("bench", str(video(shared_data, "single_face.mp4")), "--streams", "2", "--max-frames", "30", "--json", str(out), *model_cli_args())
    assert r.returncode == 0, r.stderr[-3000:]
    data = json.loads(out.read_text())
    assert data["n_streams"] == 2 and [s["id"] for s in data["streams"]] == ["s0", "s1"]
    for s in data["streams"]:
        assert 30 <= s["frames"] <= 32 and s["fps"] > 0 and s["latency"]["n"] > 0 and s["predictions"] > 0
    assert data["total_fps"] > 0 and data["published"] >= sum(s["predictions"] for s in data["streams"])
    plans = plan_streams(2)
    expected = ["not pinned" if p is None else f"{','.join(map(str, sorted(p.landmarker)))} / {','.join(map(str, sorted(p.others)))}" for p in plans]
    assert [s["threads"] for s in data["streams"]] == expected
    assert "s0" in r.stdout and "s1" in r.stdout and "all streams:" in r.stdout


def test_every_face_of_a_group_in_one_stream_of_several(shared_data: Path) -> None:
    """The face finder runs per stream: a group photo in one stream gives its five faces, each
    with a prediction and its own id, while a one-face clip in the other stream goes on as alone."""
    require_bundle()
    group = shared_data / "images" / "pyfeat" / "multi_face.jpg"
    clip = video(shared_data, "single_face.mp4")
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    r, col = _collect(endpoint, ["fer.group.", "fer.solo."], "--source", f"group={group}", "--source", f"solo={clip}")
    assert r.returncode == 0, r.stderr[-3000:]
    preds = col.predictions("group")
    assert len({p.face for p in preds}) == 5, [(p.face, p.bbox) for p in preds]
    assert max((s.faces or 0) for s in col.events("group")) == 5
    solo = col.predictions("solo")
    assert solo and {p.face for p in solo} == {solo[0].face}
