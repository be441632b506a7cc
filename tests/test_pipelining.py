"""The pipelined recognizer: frame k is scored in a worker thread while frame k+1 gets its
landmarks. Same messages, same order, and failures in the worker are not lost."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from realtime_fer.capture import CaptureOptions, open_source
from realtime_fer.capture.frame import Frame
from realtime_fer.pipeline import ListSink, RuntimeConfig, open_recognizer
from realtime_fer.pipeline.processor import FrameProcessor
from realtime_fer.pipeline.worker import OrderedWorker
from realtime_fer.publish import Prediction, Status
from runtime_helpers import bundle_arg, require_bundle, video


# --------------------------------------------------------------------------------------------
# the worker
# --------------------------------------------------------------------------------------------
def test_ordered_worker_runs_every_job_in_order_and_close_waits_for_them() -> None:
    done: list[int] = []
    worker = OrderedWorker(depth=2)
    main = threading.get_ident()
    threads: set[int] = set()

    def job(i: int) -> None:
        time.sleep(0.002 if i % 3 else 0.0)
        threads.add(threading.get_ident())
        done.append(i)

    for i in range(50):
        worker.submit(lambda i=i: job(i))
    worker.close()
    assert done == list(range(50))
    assert threads and main not in threads
    worker.close()  # idempotent
    with pytest.raises(RuntimeError, match="closed"):
        worker.submit(lambda: None)


def test_ordered_worker_hands_a_failure_to_the_submitter() -> None:
    ran: list[int] = []
    worker = OrderedWorker(depth=1)

    def boom() -> None:
        raise ValueError("model exploded")

    worker.submit(lambda: ran.append(1))
    worker.submit(boom)
    with pytest.raises(ValueError, match="model exploded"):
        for _ in range(100):  # the failure surfaces on a later submit...
            worker.submit(lambda: ran.append(2))
            time.sleep(0.01)
    assert worker.failed and ran[0] == 1 and 2 not in ran  # ...and nothing after it ran
    with pytest.raises(ValueError, match="model exploded"):
        worker.close()  # ...and again on close


def test_ordered_worker_depth_must_be_positive() -> None:
    with pytest.raises(ValueError):
        OrderedWorker(depth=0)


# --------------------------------------------------------------------------------------------
# prepare / finish on real frames
# --------------------------------------------------------------------------------------------
def _frames(path: Path, n: int) -> list[Frame]:
    src = open_source(str(path))
    frames = []
    try:
        while len(frames) < n:
            item = src.read()
            if item is None:
                break
            image, pos = item
            frames.append(Frame(index=len(frames), image=image, timestamp=time.time(), t_capture=time.perf_counter(), source_pos_ms=pos))
    finally:
        src.close()
    return frames


def _prediction_key(p: Prediction) -> tuple:
    return (p.frame, p.face, p.top, tuple(round(v, 6) for v in p.probabilities.values()), tuple(sorted((e, tuple(a.get("region", a.get("blendshape")) for a in v["top"])) for e, v in p.attributions.items())))


def test_frames_detected_ahead_are_finished_as_if_processed_one_by_one(shared_data: Path) -> None:
    """Detecting frame k+1 before finishing frame k (as the pipelined recognizer does) must not
    change frame k's tracks, scores or attributions."""
    bundle = require_bundle()
    frames = _frames(video(shared_data, "single_face.mp4"), bundle.window_length + 16)  # 8 scoring frames
    config = RuntimeConfig(model=bundle_arg(), device="cpu")

    one_by_one = FrameProcessor.create(config, bundle)
    try:
        expected = [one_by_one.process(f) for f in frames]
    finally:
        one_by_one.close()
    ahead = FrameProcessor.create(config, bundle)
    try:
        results = []
        pending = [ahead.detect(frames[0])]
        for f in frames[1:]:
            pending.append(ahead.detect(f))  # k+1 detected before k is finished
            results.append(ahead.finish(pending.pop(0)))
        results.append(ahead.finish(pending.pop(0)))
    finally:
        ahead.close()
    want = [_prediction_key(p) for r in expected for p in r.predictions]
    got = [_prediction_key(p) for r in results for p in r.predictions]
    assert len(want) >= 8 and got == want
    assert [r.timestamp_ms for r in results] == [r.timestamp_ms for r in expected]


# --------------------------------------------------------------------------------------------
# the recognizer, pipelined and serial
# --------------------------------------------------------------------------------------------
def _run(path: Path, pipelined: bool, sink: ListSink | None = None) -> tuple[list, object]:
    sink = sink or ListSink()
    # no_face repeats every no_face_interval_s of wall time: one per no-face stretch here, so that
    # a run slowed by a busy host does not send more of them than the other
    config = RuntimeConfig(model=bundle_arg(), device="cpu", pipelined=pipelined, no_face_interval_s=3600.0)
    rec = open_recognizer(str(path), config, [sink], bundle=require_bundle())
    summary = rec.run()
    return sink.messages, summary


def _message_key(m: object) -> tuple:
    if isinstance(m, Status):
        return ("status", m.event, m.face, m.frames if m.event not in ("started", "ended") else None)
    assert isinstance(m, Prediction)
    return ("prediction",) + _prediction_key(m)


def test_pipelined_run_sends_the_same_messages_in_the_same_order(shared_data: Path) -> None:
    """face_noface.mov: a face found, scored, lost, then no face: every message of the serial
    run, in the same order, from the pipelined one."""
    path = video(shared_data, "face_noface.mov")
    serial, s_summary = _run(path, pipelined=False)
    piped, p_summary = _run(path, pipelined=True)
    assert [_message_key(m) for m in piped] == [_message_key(m) for m in serial]
    assert p_summary.frames == s_summary.frames and p_summary.predictions == s_summary.predictions > 10
    assert p_summary.end_reason == s_summary.end_reason == "end of file"
    probs = np.array([list(m.probabilities.values()) for m in piped if isinstance(m, Prediction)])
    assert np.all((probs >= 0) & (probs <= 1))


class _FailingSink(ListSink):
    """A sink whose third prediction fails, as a broken transport would."""

    def __init__(self) -> None:
        super().__init__()
        self.closed = False
        self.predictions = 0

    def send(self, message) -> None:  # noqa: ANN001
        if isinstance(message, Prediction):
            self.predictions += 1
            if self.predictions == 3:
                raise OSError("transport went away")
        super().send(message)

    def close(self) -> None:
        self.closed = True


def test_a_failure_in_the_worker_stops_the_run_and_is_raised(shared_data: Path) -> None:
    sink = _FailingSink()
    with pytest.raises(OSError, match="transport went away"):
        _run(video(shared_data, "single_face.mp4"), pipelined=True, sink=sink)
    assert sink.closed
    ended = [m for m in sink.messages if isinstance(m, Status) and m.event == "ended"]
    assert len(ended) == 1 and ended[0].detail == "error"
    assert sum(isinstance(m, Prediction) for m in sink.messages) == 2  # none after the failure


# --------------------------------------------------------------------------------------------
# decoder threads
# --------------------------------------------------------------------------------------------
def test_files_decode_on_the_configured_number_of_ffmpeg_threads(shared_data: Path) -> None:
    import cv2

    for threads in (1, 2):
        src = open_source(str(video(shared_data, "single_face.mp4")), CaptureOptions(decode_threads=threads))
        try:
            assert int(src._cap.get(cv2.CAP_PROP_N_THREADS)) == threads  # noqa: SLF001 - the opened VideoCapture
        finally:
            src.close()
    with pytest.raises(ValueError, match="decode_threads"):
        CaptureOptions(decode_threads=-1)


# --------------------------------------------------------------------------------------------
# CPU placement
# --------------------------------------------------------------------------------------------
def _allowed(tid: int) -> set[int]:
    """The CPUs thread ``tid`` of this process may run on."""
    return set(os.sched_getaffinity(tid))


class _AffinitySink(ListSink):
    """Records the CPUs of the thread that sends (the worker, when pipelined)."""

    def __init__(self) -> None:
        super().__init__()
        self.cpus: set[frozenset[int]] = set()

    def send(self, message) -> None:  # noqa: ANN001
        self.cpus.add(frozenset(os.sched_getaffinity(0)))
        super().send(message)


@pytest.mark.parametrize("pin", [True, False])
def test_landmarker_and_the_other_threads_run_on_their_own_cpus(shared_data: Path, pin: bool) -> None:
    from realtime_fer.affinity import plan_cpus, usable_cpus

    plan = plan_cpus()
    if plan is None:
        pytest.skip(f"pinning needs 2+ usable CPUs on Linux; this process may use {len(usable_cpus())}")
    everything = set(usable_cpus())
    seen: dict[str, set[frozenset[int]]] = {"main": set(), "capture": set(), "landmarker threads": set()}
    main_thread = threading.get_ident()

    def on_frame(frame, result) -> None:  # noqa: ANN001
        assert threading.get_ident() == main_thread
        seen["main"].add(frozenset(os.sched_getaffinity(0)))
        for t in threading.enumerate():
            if t.name.startswith("fer-capture") and t.native_id is not None:
                seen["capture"].add(frozenset(_allowed(t.native_id)))
        # every thread of the process pinned to the landmarker CPU: ours and MediaPipe's
        pinned_threads = [tid for tid in os.listdir("/proc/self/task") if _allowed(int(tid)) == set(plan.landmarker)]
        seen["landmarker threads"].add(frozenset({len(pinned_threads)}))

    sink = _AffinitySink()
    config = RuntimeConfig(model=bundle_arg(), device="cpu", pin_threads=pin)
    rec = open_recognizer(str(video(shared_data, "single_face.mp4")), config, [sink], bundle=require_bundle(), on_frame=on_frame)
    summary = rec.run()
    assert summary.frames > 20
    if pin:
        assert seen["main"] == {plan.landmarker}
        assert seen["capture"] == {plan.others}
        assert frozenset(plan.others) in sink.cpus  # the worker sends every frame's messages
        assert min(n for s in seen["landmarker threads"] for n in s) >= 2  # the main thread and MediaPipe's
    else:
        assert seen["main"] == {frozenset(everything)} and seen["capture"] == {frozenset(everything)}
        assert sink.cpus == {frozenset(everything)}
    assert set(os.sched_getaffinity(0)) == everything  # restored after the run


def test_a_run_limits_numpys_blas_threads_and_restores_them(shared_data: Path) -> None:
    """The attributions' small products are fastest on one BLAS thread; a library user who
    calls ``Recognizer.run`` gets that too, not only the command-line tools."""
    from threadpoolctl import threadpool_info, threadpool_limits

    def blas_threads() -> set[int]:
        return {p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"}

    if not blas_threads():
        pytest.skip("numpy reports no BLAS library to threadpoolctl")
    with threadpool_limits(limits=2, user_api="blas"):
        seen: set[int] = set()
        config = RuntimeConfig(model=bundle_arg(), device="cpu", blas_threads=1)
        rec = open_recognizer(str(video(shared_data, "single_face.mp4")), config, [ListSink()], bundle=require_bundle(),
                              on_frame=lambda frame, result: seen.update(blas_threads()))
        rec.run()
        assert seen == {1}
        assert blas_threads() == {2}  # the caller's setting is back


def test_each_recognizer_in_a_process_reserves_its_own_landmarker_cpu() -> None:
    """Two cameras in one process must not share the landmarker CPU: the second one gets the
    next free CPU, or runs unpinned when none is left; closing gives the CPU back."""
    from realtime_fer.affinity import usable_cpus

    cpus = usable_cpus()
    if len(cpus) < 2:
        pytest.skip(f"pinning needs 2+ usable CPUs on Linux; this process may use {len(cpus)}")
    bundle = require_bundle()
    config = RuntimeConfig(model=bundle_arg(), device="cpu")
    first = FrameProcessor.create(config, bundle)
    try:
        assert first.cpus is not None and first.cpus.landmarker == {cpus[0]}
        second = FrameProcessor.create(config, bundle)
        try:
            if len(cpus) >= 3:
                assert second.cpus is not None and second.cpus.landmarker == {cpus[1]}
                assert cpus[0] not in second.cpus.others and cpus[1] not in second.cpus.others
            else:
                assert second.cpus is None  # no second free CPU: unpinned
        finally:
            second.close()
    finally:
        first.close()
    third = FrameProcessor.create(config, bundle)
    try:
        assert third.cpus is not None and third.cpus.landmarker == {cpus[0]}
    finally:
        third.close()
