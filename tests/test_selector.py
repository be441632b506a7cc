"""The Numba feature selector against the NumPy reference (normalize_landmarks + indexing)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from realtime_fer.features.selector import FeatureSelector, _similarity_fit, normalize_subset
from realtime_fer.landmarks.normalize import ANCHOR_INDEX, normalize_landmarks, reference_face, similarity_fit
from runtime_helpers import require_bundle

ROOT = Path(__file__).resolve().parents[1]


def _rotation(rng: np.random.Generator) -> np.ndarray:
    q = rng.normal(size=4)
    w, x, y, z = q / np.linalg.norm(q)
    return np.array(
        [
            [w * w + x * x - y * y - z * z, 2 * (x * y - w * z), 2 * (x * z + w * y)],
            [2 * (x * y + w * z), w * w - x * x + y * y - z * z, 2 * (y * z - w * x)],
            [2 * (x * z - w * y), 2 * (y * z + w * x), w * w - x * x - y * y + z * z],
        ]
    )


def _synthetic_faces(n: int, seed: int = 0) -> np.ndarray:
    """(n, 478, 3) float32 pixel-scale faces: the reference face deformed, rotated, scaled, moved."""
    rng = np.random.default_rng(seed)
    ref = reference_face()
    out = np.empty((n, 478, 3), np.float32)
    for i in range(n):
        mesh = (ref + rng.normal(scale=0.03, size=ref.shape)) @ _rotation(rng) * rng.uniform(40, 400) + rng.uniform(-100, 700, 3)
        out[i, :468] = mesh
        out[i, 468:] = mesh[:10] + 1.0  # iris points: present, unused
    return out


@pytest.fixture(scope="module")
def real_faces(shared_data: Path) -> np.ndarray:
    """(F, 478, 3) real landmarks of the faces of the group photo and the posed faces."""
    from realtime_fer.landmarks import FaceLandmarkDetector, LandmarkerOptions

    import cv2

    faces = []
    with FaceLandmarkDetector(LandmarkerOptions(num_faces=8)) as det:
        for name in ("multi_face.jpg", "single_face.jpg", "0-f1-su-ph.jpg", "45-m7-di-ph.jpg"):
            path = shared_data / "images" / "pyfeat" / name
            if path.exists():
                faces += [f.points for f in det.detect(cv2.imread(str(path)))]
    assert len(faces) >= 4, "expected several real faces"
    return np.stack(faces)


def test_horn_fit_equals_svd_fit() -> None:
    rng = np.random.default_rng(1)
    ref = reference_face()
    ref_anchors = ref[ANCHOR_INDEX]
    ref_mean = ref_anchors.mean(axis=0)
    for _ in range(50):
        pts = _synthetic_faces(1, seed=int(rng.integers(1 << 30)))[0].astype(np.float64)
        r_np, s_np, t_np = similarity_fit(pts[ANCHOR_INDEX], ref_anchors)
        r_nb, s_nb, t_nb = _similarity_fit(pts, ANCHOR_INDEX, np.ascontiguousarray(ref_anchors - ref_mean), ref_mean)
        np.testing.assert_allclose(r_nb, r_np, atol=1e-9)
        assert s_nb == pytest.approx(float(s_np), rel=1e-9)
        np.testing.assert_allclose(t_nb, t_np, atol=1e-7)
        assert np.linalg.det(r_nb) == pytest.approx(1.0)


def test_normalize_subset_equals_normalize_landmarks(real_faces: np.ndarray) -> None:
    idx = np.arange(468)
    for pts in list(real_faces) + list(_synthetic_faces(20)):
        np.testing.assert_allclose(normalize_subset(pts, idx), normalize_landmarks(pts), atol=1e-5)


@pytest.mark.parametrize("kernels", ["compiled", "numpy"])
def test_gathered_windows_equal_reference(real_faces: np.ndarray, kernels: str) -> None:
    """Ring buffers + per-emotion gather == normalize_landmarks + indexing, oldest frame first,
    with the compiled kernels and with their numpy stand-ins (used while they compile)."""
    rng = np.random.default_rng(2)
    emotions = {
        "happy": sorted(rng.choice(468, 40, replace=False).tolist()),
        "sad": rng.choice(468, 25, replace=False).tolist(),  # model order need not be sorted
        "surprise": list(range(468)),
    }
    length, faces = 4, 3
    sel = FeatureSelector(emotions, window_length=length, max_faces=faces)
    sel.kernels = kernels
    frames = np.concatenate([real_faces, _synthetic_faces(12, seed=3)])
    # three faces, 7 frames each: slot s sees frames[s::3]; rings wrap around
    seq = {s: [frames[(s + 3 * k) % len(frames)] for k in range(7)] for s in range(faces)}
    for k in range(7):
        sel.push([0, 1, 2], [seq[s][k] for s in range(faces)])
    assert all(sel.ready(s) for s in range(faces))
    out = sel.gather([2, 0])
    for name, lms in emotions.items():
        assert out[name].shape == (2, length, len(lms), 3) and out[name].dtype == np.float32
        assert out[name].flags.c_contiguous
        for row, slot in enumerate([2, 0]):
            expected = normalize_landmarks(np.stack(seq[slot][-length:]))[:, lms]
            np.testing.assert_allclose(out[name][row], expected, atol=1e-5)
    union = sel.gather_union([2, 0])  # what the union graph reads: the same numbers, all landmarks once
    assert union.shape == (2, length, len(sel.union), 3)
    for name, lms in emotions.items():
        np.testing.assert_array_equal(union[:, :, np.searchsorted(sel.union, lms)], out[name])


def test_timed_windows_kernels_numpy_and_offline_agree(real_faces: np.ndarray) -> None:
    """Irregular frame times (a 13-40 fps camera with dropped frames, then a 250 fps burst whose
    extra frames replace the newest), partial windows and blendshapes: the compiled kernels,
    their numpy stand-ins and the offline resampling (interpolation_plan over
    normalize_landmarks) give the same windows."""
    from realtime_fer.features.windows import interpolation_plan, resample

    rng = np.random.default_rng(7)
    frames = np.concatenate([real_faces, _synthetic_faces(20, seed=8)])
    n = 70
    seq = frames[rng.integers(0, len(frames), n)]
    blend = rng.uniform(0, 1, size=(n, 3)).astype(np.float32)
    gaps = np.concatenate([rng.uniform(0.025, 0.075, 50), np.full(20, 0.004)])
    times = np.round(np.cumsum(gaps) * 1000) / 1000
    emotions = {"a": sorted(rng.choice(468, 30, replace=False).tolist()), "b": rng.choice(468, 12, replace=False).tolist()}
    sels = {}
    for kernels in ("compiled", "numpy"):
        sel = FeatureSelector(emotions, window_length=8, max_faces=2, n_blendshapes=3, seconds=0.4, max_fps=120)
        sel.kernels = kernels
        sels[kernels] = sel
    kept: list[int] = []  # the frames the ring keeps (offline reference): a 250 fps frame replaces the newest
    for i in range(n):
        if len(kept) >= 2 and times[kept[-1]] - times[kept[-2]] < sels["numpy"].min_interval:
            kept[-1] = i
        else:
            kept.append(i)
        got = {}
        for kernels, sel in sels.items():
            sel.push([1], [seq[i]], [blend[i]], t=float(times[i]))
            got[kernels] = (sel.gather([1]), sel.gather_union([1]), sel.gather_blendshapes([1]), sel.real_samples(1))
        c, nmp = got["compiled"], got["numpy"]
        assert c[3] == nmp[3] and (c[3] < 8) == (times[i] - times[0] < 0.35 - 1e-4)
        for name in emotions:
            np.testing.assert_allclose(c[0][name], nmp[0][name], atol=2e-5)
        np.testing.assert_allclose(c[1], nmp[1], atol=2e-5)
        np.testing.assert_allclose(c[2], nmp[2], atol=1e-6)
        k = np.array(kept)
        older, newer, w = interpolation_plan(times[k], np.array([len(k) - 1]), 8, 0.05)
        want = resample(normalize_landmarks(seq[k]), older, newer, w)[0][:, sels["numpy"].union]
        np.testing.assert_allclose(c[1][0], want, atol=2e-5)
        np.testing.assert_allclose(c[2][0], resample(blend[k], older, newer, w)[0], atol=1e-6)
    assert sels["compiled"].ring_frames == int(np.ceil(0.4 * 120)) + 3


def test_ring_reset_and_readiness() -> None:
    sel = FeatureSelector({"a": [1, 2, 3]}, window_length=3, max_faces=2)
    faces = _synthetic_faces(5, seed=4)
    sel.push([1], [faces[0]])
    sel.push([1], [faces[1]])
    assert sel.filled(1) == 2 and not sel.ready(1) and sel.filled(0) == 0
    sel.push([1], [faces[2]])
    assert sel.ready(1)
    sel.reset(1)
    assert sel.filled(1) == 0 and not sel.ready(1)
    for f in faces[2:5]:
        sel.push([1], [f])
    np.testing.assert_allclose(sel.gather([1])["a"][0], normalize_landmarks(faces[2:5])[:, [1, 2, 3]], atol=1e-5)
    with pytest.raises(ValueError):
        sel.push([2], [faces[0]])  # no such slot


def test_buffers_are_preallocated() -> None:
    sel = FeatureSelector({"a": [5, 9], "b": [9, 100, 7]}, window_length=2, max_faces=2)
    faces = _synthetic_faces(2, seed=5)
    for _ in range(2):
        sel.push([0, 1], list(faces))
    first = sel.gather([0, 1])
    second = sel.gather([1])
    for name in ("a", "b"):
        assert np.shares_memory(first[name], second[name])  # the same storage every step
    np.testing.assert_array_equal(sel.union, [5, 7, 9, 100])
    np.testing.assert_array_equal(sel.landmarks_of("b"), [9, 100, 7])


def test_selector_for_bundle() -> None:
    bundle = require_bundle()
    sel = FeatureSelector.for_bundle(bundle, max_faces=2)
    assert sel.emotions == tuple(bundle.emotions) and sel.window_length == bundle.window_length
    np.testing.assert_array_equal(sel.union, bundle.landmark_union)
    for name, entry in bundle.emotions.items():
        np.testing.assert_array_equal(sel.landmarks_of(name), entry.landmarks)


def test_compiled_kernels_are_cached_across_processes() -> None:
    """cache=True: a second process loads the machine code instead of compiling it."""
    code = textwrap.dedent(
        """
        from realtime_fer.features import selector as m
        s = m.FeatureSelector({"a": [1, 2]}, 2, 1)
        t = s.warm_up()
        hits = sum(len(k.stats.cache_hits) for k in (m._push_faces, m._gather_windows, m._normalize_one))
        print(hits, round(t, 3))
        """
    )
    runs = [subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120) for _ in range(2)]
    for r in runs:
        assert r.returncode == 0, r.stderr
    hits, seconds = runs[1].stdout.split()
    assert int(hits) >= 3, f"second start did not load from Numba's cache: {runs[1].stdout}"
    assert float(seconds) < 3.0


def test_first_start_computes_while_the_kernels_compile(tmp_path: Path) -> None:
    """With an empty Numba cache, compile_kernels(block=False) returns at once; the selector
    answers from numpy meanwhile and from the kernels after, the same windows both times."""
    code = textwrap.dedent(
        """
        import time, numpy as np
        from realtime_fer.features import selector as m
        from realtime_fer.landmarks.normalize import normalize_landmarks, reference_face
        rng = np.random.default_rng(0)
        faces = np.zeros((6, 478, 3), np.float32)
        faces[:, :468] = reference_face() * 150 + 300 + rng.normal(scale=2.0, size=(6, 468, 3))
        s = m.FeatureSelector({"a": [1, 2, 3, 200], "b": [7, 5]}, 4, 1)
        t0 = time.perf_counter()
        m.compile_kernels(block=False)
        returned = time.perf_counter() - t0
        before = m.kernels_ready()
        for f in faces[:4]:
            s.push([0], [f])
        early = {k: v.copy() for k, v in s.gather([0]).items()}
        m._compile_thread.join(60)
        for f in faces[4:]:
            s.push([0], [f])
        late = s.gather([0])
        ref = normalize_landmarks(faces)
        err_early = max(float(np.abs(early["a"][0] - ref[:4][:, [1, 2, 3, 200]]).max()), float(np.abs(early["b"][0] - ref[:4][:, [7, 5]]).max()))
        err_late = max(float(np.abs(late["a"][0] - ref[2:][:, [1, 2, 3, 200]]).max()), float(np.abs(late["b"][0] - ref[2:][:, [7, 5]]).max()))
        print(returned, before, m.kernels_ready(), err_early, err_late)
        """
    )
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "numba"))
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=180, env=env)
    assert r.returncode == 0, r.stderr
    _, before, after, err_early, err_late = r.stdout.split()
    # not ready right after the call: it did not wait for the compiler (which takes seconds)
    assert before == "False" and after == "True", r.stdout
    assert float(err_early) < 1e-5 and float(err_late) < 1e-5, r.stdout
