"""The live feature selector: landmarks -> normalised, timestamped per-face ring buffers -> model inputs.

Per frame, :meth:`FeatureSelector.push` takes the (478, 3) pixel landmarks of every tracked face
and the frame's source time and, in one Numba-compiled call, normalises each face to the
reference face (the same similarity fit on :data:`~realtime_fer.landmarks.normalize.ANCHORS` as
:func:`~realtime_fer.landmarks.normalize.normalize_landmarks`) and writes only the bundle's
*landmark union* (and the face's blendshape scores) into that face's slot of a preallocated ring
buffer of timestamped frames. The ring holds enough frames to cover a window's span at up to
``max_fps`` frames a second; a frame that comes sooner than ``1 / max_fps`` after the frame
before the newest replaces the newest (so a faster source still covers the span).

Every scoring step, :meth:`FeatureSelector.gather_union` (what the models read) and
:meth:`FeatureSelector.gather` (each emotion's pruned subset, what the attributions read)
resample, again in compiled calls, each face's frames onto the window's T sample times (see
:mod:`realtime_fer.features.windows`, *Windows in seconds*): a window ending at the face's latest
frame ``t`` holds the samples at ``t - (T - 1 - k) * seconds / T``, each linearly interpolated
between the two frames around it, oldest first; samples before the face's first frame hold the
first frame (a *partial* window, :meth:`FeatureSelector.real_samples` < T). Nothing allocates
per frame and no Python loop runs over landmarks.

The rigid fit needs the rotation maximising ``trace(R^T H)`` for a 3x3 cross-covariance ``H``.
Numba's ``np.linalg.svd`` needs SciPy's LAPACK, which this package does not depend on, so the
kernel uses Horn's closed form instead: the rotation is the unit quaternion that is the leading
eigenvector of a symmetric 4x4 matrix built from ``H`` (found by cyclic Jacobi rotations), and
its eigenvalue equals ``sigma1 + sigma2 + sign(det) * sigma3``, the numerator of the optimal
scale. This is the same optimum as the SVD solution, proper rotations only.

The kernels are compiled with ``cache=True``: the first start on a machine compiles them (about
2 s here, see docs/benchmarks.md, *Cold start*); later starts load the machine code from Numba's
cache (Numba writes it beside this module, or in a per-user folder when that is read-only;
``NUMBA_CACHE_DIR`` chooses another). So that even the first start need not wait for the
compiler, :func:`compile_kernels` can compile in the background (a child process at a low
CPU priority writes Numba's cache, then a thread loads it): until it is done, a
selector runs the same computation in numpy (:func:`_push_faces_numpy`,
:func:`_plan_windows_numpy`, :func:`_gather_windows_numpy`, :func:`_resample_rows_numpy`; the fit
by :func:`~realtime_fer.landmarks.normalize.similarity_fit`'s SVD, the same optimum as Horn's,
equal to float32 precision), then switches to the kernels.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Literal, Mapping, Sequence

import numpy as np
from numba import njit

from realtime_fer.features.windows import LEGACY_RATE_HZ, TIME_TOLERANCE_S, interpolation_plan, real_samples
from realtime_fer.landmarks.detector import NUM_LANDMARKS, NUM_MESH_LANDMARKS
from realtime_fer.landmarks.normalize import ANCHOR_INDEX, reference_face, similarity_fit

log = logging.getLogger(__name__)

_JACOBI_SWEEPS = 30


# --------------------------------------------------------------------------------------------
# compiled kernels
# --------------------------------------------------------------------------------------------
@njit(cache=True, nogil=True)
def _leading_eigenpair_4x4(a: np.ndarray) -> tuple[float, np.ndarray]:  # pragma: no cover - compiled
    """Largest eigenvalue and its unit eigenvector of a symmetric 4x4 matrix (cyclic Jacobi)."""
    m = a.copy()
    v = np.eye(4)
    for _ in range(_JACOBI_SWEEPS):
        off = 0.0
        scale = 0.0
        for i in range(4):
            scale += m[i, i] * m[i, i]
            for j in range(i + 1, 4):
                off += m[i, j] * m[i, j]
        if off <= 1e-30 * (scale + 1e-300):
            break
        for p in range(3):
            for q in range(p + 1, 4):
                apq = m[p, q]
                if apq == 0.0:
                    continue
                theta = (m[q, q] - m[p, p]) / (2.0 * apq)
                t = 1.0 / (abs(theta) + np.sqrt(theta * theta + 1.0))
                if theta < 0.0:
                    t = -t
                c = 1.0 / np.sqrt(t * t + 1.0)
                s = t * c
                for k in range(4):  # columns p, q
                    akp = m[k, p]
                    akq = m[k, q]
                    m[k, p] = c * akp - s * akq
                    m[k, q] = s * akp + c * akq
                for k in range(4):  # rows p, q
                    apk = m[p, k]
                    aqk = m[q, k]
                    m[p, k] = c * apk - s * aqk
                    m[q, k] = s * apk + c * aqk
                for k in range(4):
                    vkp = v[k, p]
                    vkq = v[k, q]
                    v[k, p] = c * vkp - s * vkq
                    v[k, q] = s * vkp + c * vkq
    best = 0
    for i in range(1, 4):
        if m[i, i] > m[best, best]:
            best = i
    return m[best, best], v[:, best].copy()


@njit(cache=True, nogil=True)
def _similarity_fit(points: np.ndarray, anchors: np.ndarray, ref_centered: np.ndarray, ref_mean: np.ndarray) -> tuple[np.ndarray, float, np.ndarray]:  # pragma: no cover - compiled
    """``(R, s, t)`` with ``s * p @ R + t`` mapping the anchors of ``points`` onto the reference.

    Args:
        points: (>=468, 3) landmarks of one face (any float dtype).
        anchors: (K,) anchor indices.
        ref_centered: (K, 3) reference anchors minus their mean.
        ref_mean: (3,) mean of the reference anchors.
    """
    k = anchors.shape[0]
    mu = np.zeros(3)
    for i in range(k):
        for c in range(3):
            mu[c] += points[anchors[i], c]
    for c in range(3):
        mu[c] /= k
    h = np.zeros((3, 3))  # H = xs^T xt
    var = 0.0
    for i in range(k):
        x0 = points[anchors[i], 0] - mu[0]
        x1 = points[anchors[i], 1] - mu[1]
        x2 = points[anchors[i], 2] - mu[2]
        var += x0 * x0 + x1 * x1 + x2 * x2
        for c in range(3):
            y = ref_centered[i, c]
            h[0, c] += x0 * y
            h[1, c] += x1 * y
            h[2, c] += x2 * y
    # Horn's symmetric matrix for the column-vector rotation Q = R^T, with S = H.
    sxx, sxy, sxz = h[0, 0], h[0, 1], h[0, 2]
    syx, syy, syz = h[1, 0], h[1, 1], h[1, 2]
    szx, szy, szz = h[2, 0], h[2, 1], h[2, 2]
    n = np.empty((4, 4))
    n[0, 0] = sxx + syy + szz
    n[0, 1] = syz - szy
    n[0, 2] = szx - sxz
    n[0, 3] = sxy - syx
    n[1, 1] = sxx - syy - szz
    n[1, 2] = sxy + syx
    n[1, 3] = szx + sxz
    n[2, 2] = -sxx + syy - szz
    n[2, 3] = syz + szy
    n[3, 3] = -sxx - syy + szz
    for i in range(4):
        for j in range(i + 1, 4):
            n[j, i] = n[i, j]
    lam, q = _leading_eigenpair_4x4(n)
    w, x, y, z = q[0], q[1], q[2], q[3]
    r = np.empty((3, 3))  # R = Q^T
    r[0, 0] = w * w + x * x - y * y - z * z
    r[1, 0] = 2.0 * (x * y - w * z)
    r[2, 0] = 2.0 * (x * z + w * y)
    r[0, 1] = 2.0 * (y * x + w * z)
    r[1, 1] = w * w - x * x + y * y - z * z
    r[2, 1] = 2.0 * (y * z - w * x)
    r[0, 2] = 2.0 * (z * x - w * y)
    r[1, 2] = 2.0 * (z * y + w * x)
    r[2, 2] = w * w - x * x - y * y + z * z
    s = lam / max(var, 1e-12)
    t = np.empty(3)
    for c in range(3):
        t[c] = ref_mean[c] - s * (mu[0] * r[0, c] + mu[1] * r[1, c] + mu[2] * r[2, c])
    return r, s, t


@njit(cache=True, nogil=True)
def _push_faces(
    points: np.ndarray,
    blend_in: np.ndarray,
    slots: np.ndarray,
    times: np.ndarray,
    anchors: np.ndarray,
    ref_centered: np.ndarray,
    ref_mean: np.ndarray,
    union: np.ndarray,
    ring: np.ndarray,
    blend_ring: np.ndarray,
    stamps: np.ndarray,
    head: np.ndarray,
    count: np.ndarray,
    first: np.ndarray,
    min_interval: float,
) -> None:  # pragma: no cover - compiled
    """Normalise faces ``points[i]`` (F, 478, 3) of time ``times[i]`` into ring ``slots[i]``
    (union only; ``blend_in[i]`` into ``blend_ring``); see :func:`_ring_position`."""
    for i in range(points.shape[0]):
        slot = slots[i]
        pos = _ring_position(stamps, head, count, first, slot, times[i], min_interval)
        r, s, t = _similarity_fit(points[i], anchors, ref_centered, ref_mean)
        for u in range(union.shape[0]):
            j = union[u]
            p0 = points[i, j, 0]
            p1 = points[i, j, 1]
            p2 = points[i, j, 2]
            for c in range(3):
                ring[slot, pos, u, c] = s * (p0 * r[0, c] + p1 * r[1, c] + p2 * r[2, c]) + t[c]
        for b in range(blend_ring.shape[2]):
            blend_ring[slot, pos, b] = blend_in[i, b]


@njit(cache=True, nogil=True)
def _ring_position(stamps: np.ndarray, head: np.ndarray, count: np.ndarray, first: np.ndarray, slot: int, t: float, min_interval: float) -> int:  # pragma: no cover - compiled
    """The ring position a frame of time ``t`` goes to, with the ring's bookkeeping updated: a
    new position, or the newest frame's when that one came less than ``min_interval`` after the
    frame before it (it is replaced; the stored frames stay ``min_interval`` apart)."""
    frames = stamps.shape[1]
    n = count[slot]
    if n == 0:
        first[slot] = t
    if n >= 2:
        newest = (head[slot] - 1 + frames) % frames
        before = (head[slot] - 2 + frames) % frames
        if stamps[slot, newest] - stamps[slot, before] < min_interval:
            stamps[slot, newest] = t
            return newest
    pos = head[slot]
    stamps[slot, pos] = t
    head[slot] = (pos + 1) % frames
    if n < frames:
        count[slot] = n + 1
    return pos


@njit(cache=True, nogil=True)
def _plan_windows(stamps: np.ndarray, head: np.ndarray, count: np.ndarray, slots: np.ndarray, step: float, tol: float, older: np.ndarray, newer: np.ndarray, weight: np.ndarray) -> None:  # pragma: no cover - compiled
    """For each face ``slots[b]``, the ring positions and weight of the T samples of its window
    ending at its newest frame (the rule of :func:`~realtime_fer.features.windows.interpolation_plan`):
    ``older[b, k]``, ``newer[b, k]``, ``weight[b, k]``."""
    frames = stamps.shape[1]
    length = older.shape[1]
    for b in range(slots.shape[0]):
        slot = slots[b]
        n = count[slot]
        h = head[slot]
        t_end = stamps[slot, (h - 1 + frames) % frames]
        t_oldest = stamps[slot, (h - n + frames) % frames]
        age = 0  # of the newest frame at or before the sample time (0 = newest)
        for k in range(length - 1, -1, -1):
            s = t_end - (length - 1 - k) * step
            while age < n - 1 and stamps[slot, (h - 1 - age + 2 * frames) % frames] > s + tol:
                age += 1
            pos = (h - 1 - age + 2 * frames) % frames
            ts = stamps[slot, pos]
            if s <= t_oldest + tol or abs(ts - s) <= tol or age == 0:
                older[b, k] = pos
                newer[b, k] = pos
                weight[b, k] = 0.0
            else:
                nxt = (pos + 1) % frames
                older[b, k] = pos
                newer[b, k] = nxt
                gap = stamps[slot, nxt] - ts
                weight[b, k] = (s - ts) / gap if gap > 0 else 0.0


@njit(cache=True, nogil=True)
def _gather_windows(
    ring: np.ndarray,
    slots: np.ndarray,
    older: np.ndarray,
    newer: np.ndarray,
    weight: np.ndarray,
    positions: np.ndarray,
    offsets: np.ndarray,
    flat_out: np.ndarray,
    capacity: int,
) -> None:  # pragma: no cover - compiled
    """Resample each emotion's landmark subset of ``slots``' rings by the plan (oldest sample
    first) into its block of ``flat_out``: emotion ``e`` owns ``capacity * T * L_e * 3`` floats
    starting at ``capacity * T * 3 * offsets[e]``, laid out C-contiguously as (capacity, T, L_e, 3)."""
    length = older.shape[1]
    n_emotions = offsets.shape[0] - 1
    for e in range(n_emotions):
        lo = offsets[e]
        n_lm = offsets[e + 1] - lo
        base = capacity * length * 3 * lo
        for b in range(slots.shape[0]):
            slot = slots[b]
            for t in range(length):
                i0 = older[b, t]
                i1 = newer[b, t]
                w = weight[b, t]
                row = base + (b * length + t) * n_lm * 3
                for l in range(n_lm):
                    u = positions[lo + l]
                    k = row + l * 3
                    for c in range(3):
                        a = ring[slot, i0, u, c]
                        if w == 0.0:
                            flat_out[k + c] = a
                        else:
                            flat_out[k + c] = a + w * (ring[slot, i1, u, c] - a)


@njit(cache=True, nogil=True)
def _resample_rows(rows: np.ndarray, slots: np.ndarray, older: np.ndarray, newer: np.ndarray, weight: np.ndarray, out: np.ndarray) -> None:  # pragma: no cover - compiled
    """``out[b, k] = rows[slots[b], older] + weight * (rows[slots[b], newer] - rows[..., older])``
    for rings ``rows`` (capacity, frames, D): the union windows, or the blendshape windows."""
    length = older.shape[1]
    for b in range(slots.shape[0]):
        slot = slots[b]
        for k in range(length):
            i0 = older[b, k]
            i1 = newer[b, k]
            w = weight[b, k]
            if w == 0.0:
                for d in range(rows.shape[2]):
                    out[b, k, d] = rows[slot, i0, d]
            else:
                for d in range(rows.shape[2]):
                    a = rows[slot, i0, d]
                    out[b, k, d] = a + w * (rows[slot, i1, d] - a)


@njit(cache=True, nogil=True)
def _normalize_one(points: np.ndarray, anchors: np.ndarray, ref_centered: np.ndarray, ref_mean: np.ndarray, index: np.ndarray, out: np.ndarray) -> None:  # pragma: no cover - compiled
    """``out[l] = normalised points[index[l]]`` for one face (used by tests and tools)."""
    r, s, t = _similarity_fit(points, anchors, ref_centered, ref_mean)
    for l in range(index.shape[0]):
        j = index[l]
        for c in range(3):
            out[l, c] = s * (points[j, 0] * r[0, c] + points[j, 1] * r[1, c] + points[j, 2] * r[2, c]) + t[c]


# --------------------------------------------------------------------------------------------
# numpy equivalents, used until the compiled kernels are ready
# --------------------------------------------------------------------------------------------
def _ring_position_numpy(stamps: np.ndarray, head: np.ndarray, count: np.ndarray, first: np.ndarray, slot: int, t: float, min_interval: float) -> int:
    """:func:`_ring_position` in Python."""
    frames = stamps.shape[1]
    n = int(count[slot])
    if n == 0:
        first[slot] = t
    if n >= 2:
        newest = (int(head[slot]) - 1) % frames
        before = (int(head[slot]) - 2) % frames
        if stamps[slot, newest] - stamps[slot, before] < min_interval:
            stamps[slot, newest] = t
            return newest
    pos = int(head[slot])
    stamps[slot, pos] = t
    head[slot] = (pos + 1) % frames
    if n < frames:
        count[slot] = n + 1
    return pos


def _push_faces_numpy(points: np.ndarray, blend_in: np.ndarray, slots: np.ndarray, times: np.ndarray, anchors: np.ndarray, ref_centered: np.ndarray, ref_mean: np.ndarray,
                      union: np.ndarray, ring: np.ndarray, blend_ring: np.ndarray, stamps: np.ndarray, head: np.ndarray, count: np.ndarray, first: np.ndarray,
                      min_interval: float) -> None:
    """:func:`_push_faces` in numpy: the same similarity fit by SVD
    (:func:`~realtime_fer.landmarks.normalize.similarity_fit`), all faces at once."""
    pts = points.astype(np.float64)
    r, s, t = similarity_fit(pts[:, anchors], ref_centered + ref_mean)
    normalised = s[:, None, None] * (pts[:, union] @ r) + t[:, None, :]
    for i in range(points.shape[0]):
        slot = int(slots[i])
        pos = _ring_position_numpy(stamps, head, count, first, slot, float(times[i]), min_interval)
        ring[slot, pos] = normalised[i]
        blend_ring[slot, pos] = blend_in[i]


def _plan_windows_numpy(stamps: np.ndarray, head: np.ndarray, count: np.ndarray, slots: np.ndarray, step: float, tol: float,
                        older: np.ndarray, newer: np.ndarray, weight: np.ndarray) -> None:
    """:func:`_plan_windows` by :func:`~realtime_fer.features.windows.interpolation_plan` over
    each ring's frames in time order."""
    frames = stamps.shape[1]
    length = older.shape[1]
    for b, slot in enumerate(slots):
        n = int(count[slot])
        order = (int(head[slot]) - n + np.arange(n)) % frames  # oldest first
        o, nw, w = interpolation_plan(stamps[slot, order], np.array([n - 1]), length, step)
        older[b] = order[o[0]]
        newer[b] = order[nw[0]]
        weight[b] = w[0]


def _gather_windows_numpy(ring: np.ndarray, slots: np.ndarray, older: np.ndarray, newer: np.ndarray, weight: np.ndarray, positions: np.ndarray, offsets: np.ndarray,
                          batches: Sequence[np.ndarray]) -> None:
    """:func:`_gather_windows` in numpy, writing into the per-emotion views of ``flat_out``."""
    for e, out in enumerate(batches):
        pos = positions[offsets[e] : offsets[e + 1]]
        for b, slot in enumerate(slots):
            a = ring[slot][older[b]][:, pos].astype(np.float64)
            z = ring[slot][newer[b]][:, pos]
            out[b] = a + weight[b][:, None, None] * (z - a)


def _resample_rows_numpy(rows: np.ndarray, slots: np.ndarray, older: np.ndarray, newer: np.ndarray, weight: np.ndarray, out: np.ndarray) -> None:
    """:func:`_resample_rows` in numpy."""
    for b, slot in enumerate(slots):
        a = rows[slot][older[b]].astype(np.float64)
        out[b] = a + weight[b][:, None] * (rows[slot][newer[b]] - a)


_ready = threading.Event()
_compile_lock = threading.Lock()
_compile_thread: threading.Thread | None = None


def kernels_ready() -> bool:
    """True once the compiled kernels are loaded in this process (selectors then use them)."""
    return _ready.is_set()


def _compile_now() -> float:
    with _compile_lock:
        if _ready.is_set():
            return 0.0
        t0 = time.perf_counter()
        sel = FeatureSelector({"warm_up": [0, 1, 2]}, window_length=2, max_faces=1, n_blendshapes=1)
        sel.kernels = "compiled"
        fake = np.zeros((NUM_LANDMARKS, 3), np.float32)
        fake[:NUM_MESH_LANDMARKS] = reference_face() * 100.0 + 200.0
        for k in range(3):
            sel.push([0], [fake], t=0.015 * k)  # spacing off the sample grid: interpolated samples
        sel.gather([0])
        sel.gather_union([0])
        sel.gather_blendshapes([0])
        normalize_subset(fake, sel.union[:1])
        _ready.set()
        elapsed = time.perf_counter() - t0
        log.info("feature selector ready in %.2f s (Numba compile or cache load)", elapsed)
        return elapsed


_KERNEL_NAMES = ("_leading_eigenpair_4x4", "_similarity_fit", "_push_faces", "_ring_position", "_plan_windows", "_gather_windows", "_resample_rows", "_normalize_one")
_SUBPROCESS_COMPILE = "from realtime_fer.features.selector import _compile_now; _compile_now()"
_SUBPROCESS_TIMEOUT_S = 300.0


def _cache_is_warm() -> bool:
    """Numba's cache holds machine code of every kernel for this source file (loading it is a
    fraction of a second; compiling takes seconds). True as well when Numba's cache cannot be
    inspected (then the kernels are compiled or loaded in this process, as before)."""
    try:
        return all(bool(globals()[name]._cache._cache_file._load_index()) for name in _KERNEL_NAMES)
    except Exception:  # noqa: BLE001 - Numba internals differ: do not guess
        return True


def _compile_in_subprocess() -> None:
    """Compile the kernels into Numba's cache in a child process at a low CPU priority (nice 10).

    Numba's compiler is Python that holds the GIL for seconds and wants a core: in the process
    that is already recognizing it stalls the capture and worker threads. A child has its own GIL
    and, at nice 10, gets mostly the CPU time the pipeline leaves. Failures are logged; the caller
    then compiles in this process."""
    import os
    import subprocess
    import sys

    def low_priority() -> None:  # in the child, before it runs Python
        os.nice(10)

    t0 = time.perf_counter()
    try:
        subprocess.run([sys.executable, "-c", _SUBPROCESS_COMPILE], check=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                       timeout=_SUBPROCESS_TIMEOUT_S, preexec_fn=low_priority if hasattr(os, "nice") else None)  # noqa: PLW1509 - no threads run in the child before exec
        log.info("feature selector kernels compiled into Numba's cache by a background process in %.2f s", time.perf_counter() - t0)
    except (OSError, subprocess.SubprocessError) as exc:
        detail = getattr(exc, "stderr", b"") or b""
        log.info("compiling the kernels in a background process failed (%s%s); compiling in this process", type(exc).__name__, (": " + detail.decode(errors="replace").strip().splitlines()[-1]) if detail.strip() else "")


def _compile_in_background() -> None:
    if not _cache_is_warm():
        _compile_in_subprocess()
    _compile_now()  # a cache load now (or, if the child failed, the compile here)


def compile_kernels(block: bool = True) -> float:
    """Compile the kernels (or load them from Numba's cache) for every selector of the process.

    Args:
        block: wait for them (returns the seconds it took; 0 when already ready); ``False``
            returns at once and makes them ready in a daemon thread (selectors use numpy
            meanwhile): from Numba's cache when it holds them, else compiled first by a child
            process at a low CPU priority (:func:`_compile_in_subprocess`), so that the
            compiler neither holds this process's GIL nor takes a core from the pipeline.
    """
    global _compile_thread
    if _ready.is_set():
        return 0.0
    if block:
        return _compile_now()
    with _compile_lock:
        if _compile_thread is None or not _compile_thread.is_alive():
            _compile_thread = threading.Thread(target=_compile_in_background, name="fer-numba-compile", daemon=True)
            _compile_thread.start()
    return 0.0


# --------------------------------------------------------------------------------------------
# Python API
# --------------------------------------------------------------------------------------------
def _reference_terms(reference: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    ref = reference_face() if reference is None else np.asarray(reference, dtype=np.float64)
    anchors = np.ascontiguousarray(ref[ANCHOR_INDEX], dtype=np.float64)
    mean = anchors.mean(axis=0)
    return np.ascontiguousarray(anchors - mean), np.ascontiguousarray(mean)


def normalize_subset(points: np.ndarray, index: Sequence[int] | np.ndarray, reference: np.ndarray | None = None) -> np.ndarray:
    """Compiled equivalent of ``normalize_landmarks(points)[index]`` for one (478|468, 3) face.

    Returns:
        (len(index), 3) float32.
    """
    pts = np.ascontiguousarray(points, dtype=np.float32)
    if pts.ndim != 2 or pts.shape[1] != 3 or pts.shape[0] < NUM_MESH_LANDMARKS:
        raise ValueError(f"expected (478 or 468, 3) landmarks, got shape {pts.shape}")
    idx = np.ascontiguousarray(index, dtype=np.int64)
    ref_c, ref_m = _reference_terms(reference)
    out = np.empty((idx.shape[0], 3), np.float32)
    _normalize_one(pts, ANCHOR_INDEX, ref_c, ref_m, idx, out)
    return out


class FeatureSelector:
    """Preallocated per-face ring buffers of timestamped frames and per-emotion batch arrays.

    Args:
        emotions: emotion -> landmark indices (into the 468-point mesh) that its model reads, in
            the model's input order (``{name: entry.landmarks for name, entry in
            bundle.emotions.items()}``).
        window_length: samples per window (T).
        max_faces: number of ring-buffer slots (faces tracked at once).
        reference: (468, 3) reference face; default: the shipped one.
        n_blendshapes: blendshape scores kept per frame (0: none).
        seconds: a window's span in source seconds; default ``window_length / 25`` (the legacy
            rule: at 25 fps every sample is a frame).
        max_fps: the fastest frame rate whose frames are all kept (faster sources keep frames
            ``1 / max_fps`` apart); sizes the rings.

    Slots are indices ``0 .. max_faces - 1`` that the caller (the face tracker) assigns to
    faces; :meth:`reset` empties one when a new face takes it.
    """

    def __init__(
        self,
        emotions: Mapping[str, Sequence[int]],
        window_length: int,
        max_faces: int,
        reference: np.ndarray | None = None,
        n_blendshapes: int = 0,
        *,
        seconds: float | None = None,
        max_fps: float = 120.0,
    ) -> None:
        if not emotions:
            raise ValueError("no emotions to select features for")
        if window_length < 1 or max_faces < 1:
            raise ValueError("window_length and max_faces must be >= 1")
        if seconds is not None and not (np.isfinite(seconds) and seconds > 0):
            raise ValueError("seconds must be > 0")
        if not (np.isfinite(max_fps) and max_fps > 0):
            raise ValueError("max_fps must be > 0")
        self.emotions: tuple[str, ...] = tuple(emotions)
        self.window_length = int(window_length)
        self.max_faces = int(max_faces)
        self.seconds = float(seconds) if seconds is not None else self.window_length / LEGACY_RATE_HZ
        """A window's span in source seconds."""
        self.step = self.seconds / self.window_length
        """Seconds between two samples of a window."""
        self.min_interval = min(1.0 / float(max_fps), self.step)
        """Stored frames are at least this far apart (a faster frame replaces the newest)."""
        self.ring_frames = int(np.ceil(self.seconds / self.min_interval)) + 3
        """Frames a ring holds: a window's span at ``max_fps``, with margin."""
        per_emotion = [np.asarray(list(emotions[e]), dtype=np.int64) for e in self.emotions]
        for name, idx in zip(self.emotions, per_emotion):
            if idx.size == 0 or idx.min() < 0 or idx.max() >= NUM_MESH_LANDMARKS:
                raise ValueError(f"emotion {name!r}: landmark indices must be in [0, {NUM_MESH_LANDMARKS})")
        self.union: np.ndarray = np.unique(np.concatenate(per_emotion))
        """Sorted landmark indices kept in the ring buffers."""
        self._positions = np.ascontiguousarray(np.concatenate([np.searchsorted(self.union, idx) for idx in per_emotion]), dtype=np.int64)
        sizes = np.array([len(idx) for idx in per_emotion], dtype=np.int64)
        self._offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        self._ref_centered, self._ref_mean = _reference_terms(reference)
        t, cap, frames = self.window_length, self.max_faces, self.ring_frames
        self._ring = np.zeros((cap, frames, len(self.union), 3), dtype=np.float32)
        self._ring_rows = self._ring.reshape(cap, frames, len(self.union) * 3)  # a view
        self._stamps = np.zeros((cap, frames), dtype=np.float64)
        """Source time (seconds) of each ring frame."""
        self._head = np.zeros(cap, dtype=np.int64)
        self._count = np.zeros(cap, dtype=np.int64)
        self._version = 0
        """Bumped by every change of the rings (push, reset, fill): the interpolation plan of
        one scoring step is computed once and reused by its gathers."""
        self._plan_key: tuple | None = None
        """Frames held in each ring."""
        self._first = np.full(cap, np.nan, dtype=np.float64)
        """Time of each face's first frame (``-inf``: a still, full at once; NaN: empty)."""
        self._flat = np.zeros(int(cap * t * 3 * self._offsets[-1]), dtype=np.float32)
        self._batches: dict[str, np.ndarray] = {}
        for e, name in enumerate(self.emotions):
            lo, hi = int(self._offsets[e]), int(self._offsets[e + 1])
            start = cap * t * 3 * lo
            self._batches[name] = self._flat[start : start + cap * t * 3 * (hi - lo)].reshape(cap, t, hi - lo, 3)
        self._points = np.zeros((cap, NUM_LANDMARKS, 3), dtype=np.float32)
        self._slots = np.zeros(cap, dtype=np.int64)
        self._times = np.zeros(cap, dtype=np.float64)
        self._older = np.zeros((cap, t), dtype=np.int64)
        self._newer = np.zeros((cap, t), dtype=np.int64)
        self._weight = np.zeros((cap, t), dtype=np.float64)
        self.n_blendshapes = int(n_blendshapes)
        self._blend_ring = np.zeros((cap, frames, self.n_blendshapes), dtype=np.float32)
        """Per-face blendshape scores, written at the same ring position as the landmarks."""
        self._blend_in = np.zeros((cap, self.n_blendshapes), dtype=np.float32)
        self.kernels: Literal["auto", "compiled", "numpy"] = "auto"
        """``auto``: the compiled kernels once :func:`kernels_ready`, numpy until then;
        ``compiled``: always the kernels (compiled on first use); ``numpy``: never them."""

    def _compiled(self) -> bool:
        return self.kernels == "compiled" or (self.kernels == "auto" and _ready.is_set())

    @classmethod
    def for_bundle(cls, bundle: object, max_faces: int, max_fps: float = 120.0) -> FeatureSelector:
        """A selector for a :class:`~realtime_fer.models.bundle.ModelBundle` (its window span:
        ``window.seconds``, or the legacy ``length / 25``)."""
        emotions = {name: entry.landmarks for name, entry in bundle.emotions.items()}  # type: ignore[attr-defined]
        return cls(
            emotions, bundle.window_length, max_faces, n_blendshapes=len(bundle.blendshapes or ()),  # type: ignore[attr-defined]
            seconds=bundle.window_seconds, max_fps=max_fps,  # type: ignore[attr-defined]
        )

    def landmarks_of(self, emotion: str) -> np.ndarray:
        """The mesh landmark indices gathered for ``emotion``, in its model's input order."""
        e = self.emotions.index(emotion)
        return self.union[self._positions[self._offsets[e] : self._offsets[e + 1]]]

    # -- state ------------------------------------------------------------------------------
    def reset(self, slot: int) -> None:
        """Empty one face's ring buffer (a new face took the slot, or the face was missed)."""
        self._count[slot] = 0
        self._head[slot] = 0
        self._first[slot] = np.nan
        self._version += 1

    def reset_all(self) -> None:
        self._count[:] = 0
        self._head[:] = 0
        self._first[:] = np.nan
        self._version += 1

    def fill(self, slot: int) -> None:
        """Make ``slot``'s window full now: every sample before its first frame holds that frame
        (a still image: its window is the frame repeated T times)."""
        if self._count[slot] == 0:
            raise ValueError(f"slot {slot} holds no frame to fill its window with")
        self._first[slot] = -np.inf
        self._version += 1

    def latest_time(self, slot: int) -> float:
        """Source time of ``slot``'s newest frame (NaN when empty)."""
        if self._count[slot] == 0:
            return float("nan")
        return float(self._stamps[slot, (int(self._head[slot]) - 1) % self.ring_frames])

    def real_samples(self, slot: int) -> int:
        """Samples of ``slot``'s current window (ending at its newest frame) at or after the
        face's first frame: T for a full window, fewer for a partial one, 0 when empty."""
        if self._count[slot] == 0:
            return 0
        return real_samples(self.latest_time(slot), float(self._first[slot]), self.step, self.window_length)

    def filled(self, slot: int) -> int:
        """Real samples of ``slot``'s window (:meth:`real_samples`; at most ``window_length``)."""
        return self.real_samples(slot)

    def ready(self, slot: int) -> bool:
        """True when ``slot``'s window is full (no sample precedes the face's first frame)."""
        return self.real_samples(slot) >= self.window_length

    # -- per frame ----------------------------------------------------------------------------
    def push(self, slots: Sequence[int], points: Sequence[np.ndarray], blendshapes: Sequence[np.ndarray | None] | None = None, t: float | None = None) -> None:
        """Normalise and append one frame for each face: ``points[i]`` (478|468, 3) pixel
        landmarks go to ring ``slots[i]``, with ``blendshapes[i]`` (B,) when the selector keeps
        blendshapes (a face without them gets zeros).

        Args:
            t: the frame's source time in seconds (increasing from frame to frame of a face);
                ``None``: one sample ``step`` after each face's previous frame (frames taken as
                consecutive samples).
        """
        n = len(slots)
        if n == 0:
            return
        if n != len(points) or n > self.max_faces:
            raise ValueError(f"need as many point sets as slots (at most {self.max_faces}); got {n} slots, {len(points)} faces")
        buf = self._points[:n]
        for i, p in enumerate(points):  # one small copy per face, not per landmark
            buf[i, : p.shape[0]] = p
        self._slots[:n] = slots
        if int(self._slots[:n].min()) < 0 or int(self._slots[:n].max()) >= self.max_faces:
            raise ValueError(f"slots must be in [0, {self.max_faces})")
        times = self._times[:n]
        if t is None:
            for i, slot in enumerate(slots):
                last = self.latest_time(slot)
                times[i] = 0.0 if np.isnan(last) else last + self.step
        else:
            times[:] = float(t)
        blend = self._blend_in[:n]
        if self.n_blendshapes:
            for i in range(n):
                b = blendshapes[i] if blendshapes is not None else None
                blend[i] = b if b is not None and len(b) == self.n_blendshapes else 0.0
        self._version += 1
        push = _push_faces if self._compiled() else _push_faces_numpy
        push(buf, blend, self._slots[:n], times, ANCHOR_INDEX, self._ref_centered, self._ref_mean, self.union, self._ring, self._blend_ring,
             self._stamps, self._head, self._count, self._first, self.min_interval)

    # -- per scoring step ---------------------------------------------------------------------
    def _plan(self, slots: Sequence[int]) -> int:
        """Interpolation plan of the windows of ``slots`` into ``_older/_newer/_weight``; returns n."""
        n = len(slots)
        if n > self.max_faces:
            raise ValueError(f"at most {self.max_faces} slots")
        key = (self._version, tuple(int(s) for s in slots))
        if key == self._plan_key:  # the same step's earlier gather planned these windows
            return n
        self._plan_key = None
        self._slots[:n] = slots
        for slot in self._slots[:n]:
            if self._count[slot] == 0:
                raise ValueError(f"slot {int(slot)} holds no frame")
        plan = _plan_windows if self._compiled() else _plan_windows_numpy
        plan(self._stamps, self._head, self._count, self._slots[:n], self.step, TIME_TOLERANCE_S, self._older[:n], self._newer[:n], self._weight[:n])
        self._plan_key = key
        return n

    def gather(self, slots: Sequence[int]) -> dict[str, np.ndarray]:
        """Model inputs for the faces in ``slots`` (each holding at least one frame; a partial
        window repeats the face's first frame).

        Returns:
            emotion -> (len(slots), T, L_e, 3) float32, C-contiguous **views of preallocated
            buffers**, valid until the next :meth:`gather`.
        """
        if len(slots) == 0:
            return {name: arr[:0] for name, arr in self._batches.items()}
        n = self._plan(slots)
        args = (self._slots[:n], self._older[:n], self._newer[:n], self._weight[:n], self._positions, self._offsets)
        if self._compiled():
            _gather_windows(self._ring, *args, self._flat, self.max_faces)
        else:
            _gather_windows_numpy(self._ring, *args, list(self._batches.values()))
        return {name: arr[:n] for name, arr in self._batches.items()}

    def gather_union(self, slots: Sequence[int]) -> np.ndarray:
        """The union windows (len(slots), T, L_union, 3) of the faces in ``slots``, oldest sample
        first (a new array): the input of the union graph (:meth:`BundleScorer.predict_union
        <realtime_fer.models.scorer.BundleScorer.predict_union>`)."""
        out = np.empty((len(slots), self.window_length, len(self.union), 3), np.float32)
        if len(slots):
            self._resample(self._ring_rows, slots, out.reshape(len(slots), self.window_length, -1))
        return out

    def gather_blendshapes(self, slots: Sequence[int]) -> np.ndarray | None:
        """The blendshape windows (len(slots), T, B) of the faces in ``slots``, resampled like the
        landmarks (a new array), or ``None`` when the selector keeps no blendshapes."""
        if not self.n_blendshapes:
            return None
        out = np.empty((len(slots), self.window_length, self.n_blendshapes), np.float32)
        if len(slots):
            self._resample(self._blend_ring, slots, out)
        return out

    def _resample(self, rows: np.ndarray, slots: Sequence[int], out: np.ndarray) -> None:
        n = self._plan(slots)
        resample = _resample_rows if self._compiled() else _resample_rows_numpy
        resample(rows, self._slots[:n], self._older[:n], self._newer[:n], self._weight[:n], out)

    def window(self, slot: int) -> np.ndarray:
        """A copy of ``slot``'s window over the landmark union (T, L_union, 3), oldest sample first."""
        return self.gather_union([slot])[0]

    # -- compilation --------------------------------------------------------------------------
    def warm_up(self, block: bool = True) -> float:
        """Make the compiled kernels ready (:func:`compile_kernels`): compile them, or load them
        from Numba's cache, and run each once. ``block=False`` does it in a background thread
        and returns at once; this selector computes in numpy until they are ready. Returns the
        seconds spent waiting."""
        return compile_kernels(block=block)
