"""Every face a person can see (issue 21): the face finder on real data.

A group photo gives five tracked faces without duplicates; the small face of a standing person
is found and tracked with one id; the finding pass runs at its configured rate; a video without
a face still gives the status messages it gave before; one face's landmarks stay as stable as
before. Nothing here is timed.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest

from realtime_fer.landmarks.detector import FaceLandmarkDetector, LandmarkerOptions
from realtime_fer.landmarks.finder import FaceFinder, FinderOptions, MultiFaceLandmarker, nms, same_face, tiles
from realtime_fer.landmarks.normalize import normalize_landmarks
from realtime_fer.pipeline import ListSink, RuntimeConfig, open_recognizer
from realtime_fer.publish import Prediction, Status
from runtime_helpers import bundle_arg, require_bundle, video


def _config(**kw: object) -> RuntimeConfig:
    config = RuntimeConfig(model=bundle_arg(), device="cpu")
    for key, value in kw.items():
        setattr(config, key, value)
    return config


def _analyze(path: Path, **kw: object) -> tuple[list, object]:
    sink = ListSink()
    rec = open_recognizer(str(path), _config(**kw), [sink], bundle=require_bundle())
    summary = rec.run()
    return sink.messages, summary


def _frames(path: Path) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    out = []
    while True:
        ok, f = cap.read()
        if not ok:
            break
        out.append(f)
    cap.release()
    return out


# -- geometry (no data) -----------------------------------------------------------------------
def test_tiles_cover_the_frame_with_overlap() -> None:
    o = FinderOptions()
    grid = tiles(1000, 667, o)
    side = grid[0][2]
    assert all(t[2] == side for t in grid) and side == round(667 * 2 / 3)
    assert min(t[0] for t in grid) == 0 and max(t[0] + side for t in grid) == 1000
    assert min(t[1] for t in grid) == 0 and max(t[1] + side for t in grid) == 667
    assert tiles(128, 128, o) == []  # a frame as small as a tile: the whole frame only


def test_nms_keeps_one_box_per_face() -> None:
    boxes = [(0, 0, 100, 100), (5, 5, 105, 105), (30, 30, 60, 60), (300, 300, 380, 380)]
    kept = nms(boxes, [0.8, 0.9, 0.7, 0.6], 0.3)
    assert kept == [1, 3]  # the nested box is the same face (its centre lies inside)
    assert same_face((0, 0, 10, 10), (2, 2, 8, 8)) and not same_face((0, 0, 10, 10), (20, 0, 30, 10))


# -- real data --------------------------------------------------------------------------------
def test_group_photo_gives_five_faces_without_duplicates(shared_data: Path) -> None:
    msgs, summary = _analyze(shared_data / "images" / "pyfeat" / "multi_face.jpg")
    preds = [m for m in msgs if isinstance(m, Prediction)]
    assert summary.faces == 5
    assert sorted({p.face for p in preds}) == sorted(p.face for p in preds) and len(preds) == 5
    boxes = [p.bbox for p in preds]
    for i, a in enumerate(boxes):
        for b in boxes[i + 1 :]:
            assert not same_face(tuple(a), tuple(b)), f"duplicate faces {a} and {b}"
    found = [m for m in msgs if isinstance(m, Status) and m.event == "face_found"]
    assert len(found) == 5 and found[-1].faces == 5  # the status says how many are tracked


def test_group_photo_without_the_finder_misses_faces(shared_data: Path) -> None:
    """The finder is what finds them: the whole-frame landmarker alone sees fewer."""
    config = _config()
    config.finder = replace(config.finder, enabled=False)
    sink = ListSink()
    summary = open_recognizer(str(shared_data / "images" / "pyfeat" / "multi_face.jpg"), config, [sink], bundle=require_bundle()).run()
    assert summary.faces < 5


def test_small_face_is_found_and_tracked_with_a_stable_id(shared_data: Path) -> None:
    path = shared_data / "video" / "unlabelled" / "s13.mp4"
    msgs, summary = _analyze(path)
    preds = [m for m in msgs if isinstance(m, Prediction)]
    assert preds, "the small face was never scored"
    assert {p.face for p in preds} == {1} and summary.faces == 1
    assert max(p.bbox[3] - p.bbox[1] for p in preds) < 150  # it is the small face (1080 px frame)
    assert not [m for m in msgs if isinstance(m, Status) and m.event == "face_lost" and m.detail != "end of run"]
    # and without the finder it is not seen at all (what the issue measured)
    config = _config()
    config.finder = replace(config.finder, enabled=False)
    sink = ListSink()
    assert open_recognizer(str(path), config, [sink], bundle=require_bundle()).run().faces == 0


def test_finding_pass_runs_at_its_configured_rate(shared_data: Path) -> None:
    frames = _frames(video(shared_data, "no_face.mp4"))[:60]
    for interval_s, step_ms in ((0.5, 40), (1.0, 40)):
        multi = MultiFaceLandmarker(FaceLandmarkDetector(LandmarkerOptions(), running_mode="video"), FinderOptions(interval_s=10.0, idle_interval_s=interval_s))
        try:
            for i, f in enumerate(frames):
                assert multi.detect_for_video(f, i * step_ms) == []
            span_ms = (len(frames) - 1) * step_ms
            assert multi.finder.passes == int(span_ms // (interval_s * 1000)) + 1  # the first frame, then every interval
        finally:
            multi.close()
    # while a face is tracked, interval_s applies (a face in every frame: one pass per interval)
    frames = _frames(video(shared_data, "single_face.mp4"))[:50]
    multi = MultiFaceLandmarker(FaceLandmarkDetector(LandmarkerOptions(), running_mode="video"), FinderOptions(interval_s=0.6, idle_interval_s=0.1))
    try:
        counts = [len(multi.detect_for_video(f, i * 40)) for i, f in enumerate(frames)]
        assert counts.count(1) == len(frames)  # one face, never duplicated by the finder
        assert multi.finder.passes == int((len(frames) - 1) * 40 // 600) + 1
    finally:
        multi.close()


def test_no_face_video_gives_the_same_status_messages(shared_data: Path) -> None:
    msgs, summary = _analyze(video(shared_data, "no_face.mp4"), no_face_interval_s=0.5)
    assert summary.frames == 95
    statuses = [m for m in msgs if isinstance(m, Status)]
    no_face = [s for s in statuses if s.event == "no_face"]
    assert no_face and no_face[0].frames == 1
    assert not [m for m in msgs if isinstance(m, Prediction)] and not [s for s in statuses if s.event == "face_found"]
    assert statuses[0].event == "started" and statuses[-1].event == "ended"
    assert {s.event for s in statuses} == {"started", "no_face", "ended"}
    assert all(s.faces == 0 for s in statuses)


def _change(seq: list[np.ndarray | None]) -> float:
    diffs = [np.linalg.norm(b - a, axis=-1).ravel() for a, b in zip(seq, seq[1:]) if a is not None and b is not None]
    return float(np.median(np.concatenate(diffs)))


@pytest.mark.parametrize("name", ["mead/neutral.mp4", "wild/angry.mp4"])
def test_single_face_jitter_stays_low(shared_data: Path, name: str) -> None:
    """Median frame-to-frame change of the normalised landmarks with the finder on is within
    15 % of the whole-frame landmarker alone (num_faces 1), far below num_faces 2 (2-3x)."""
    frames = _frames(shared_data / "video" / name)
    with FaceLandmarkDetector(LandmarkerOptions(), running_mode="video") as det:
        before = [det.detect_for_video(f, i * 40) for i, f in enumerate(frames)]
    multi = MultiFaceLandmarker(FaceLandmarkDetector(LandmarkerOptions(), running_mode="video"), FinderOptions())
    try:
        after = [multi.detect_for_video(f, i * 40) for i, f in enumerate(frames)]
    finally:
        multi.close()
    assert max(len(a) for a in after) == 1  # one person, one face
    b = _change([normalize_landmarks(x[0].points) if x else None for x in before])
    a = _change([normalize_landmarks(x[0].points) if x else None for x in after])
    assert a <= 1.15 * b, f"{name}: {a:.5f} with the finder vs {b:.5f} before"


def test_detector_model_comes_from_the_shipped_task_file() -> None:
    finder = FaceFinder()
    try:
        assert finder.find(np.zeros((360, 640, 3), np.uint8)) == []
        assert finder.passes == 1 and finder.detector_calls == 1 + len(tiles(640, 360, finder.options))
    finally:
        finder.close()
